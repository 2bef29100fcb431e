#!/usr/bin/env bash
# Tunes a Linux host for Count: open-file limits for the user running it, and TCP buffers and backlogs for
# many client and peer connections. Idempotent: it writes its own drop-in files (replacing them on each run)
# instead of appending to /etc/sysctl.conf and /etc/security/limits.conf. Run as root.
#
# usage: tune-system.sh [--no-apply]
#   --no-apply  write the files only; they take effect at the next boot (or `sysctl --system`).
# Environment: COUNT_USER (default count), COUNT_NOFILE (default 65536), and COUNT_SYSCTL_FILE /
# COUNT_LIMITS_FILE to write elsewhere than /etc/sysctl.d/90-count.conf and
# /etc/security/limits.d/90-count.conf.
# The file limit applies to login sessions (pam_limits): a systemd unit needs LimitNOFILE= instead, and
# containers take theirs from the runtime (ulimits in deploy/docker-compose.yml).
set -euo pipefail

usage() {
    # The comment block at the top of this file.
    sed -n '2,/^set -euo/{s/^# \{0,1\}//p;}' "$0"
    exit "${1:-0}"
}

apply=yes
case "${1:-}" in
    "") ;;
    --no-apply) apply=no ;;
    -h | --help) usage 0 ;;
    *) usage 2 >&2 ;;
esac

user="${COUNT_USER:-count}"
nofile="${COUNT_NOFILE:-65536}"
sysctl_file="${COUNT_SYSCTL_FILE:-/etc/sysctl.d/90-count.conf}"
limits_file="${COUNT_LIMITS_FILE:-/etc/security/limits.d/90-count.conf}"

if ! [[ "$nofile" =~ ^[0-9]+$ ]]; then
    echo "tune-system: COUNT_NOFILE must be a number, not $nofile" >&2
    exit 2
fi

mkdir -p "$(dirname "$limits_file")" "$(dirname "$sysctl_file")"

cat >"$limits_file" <<LIMITS
# Written by Count's deploy/scripts/tune-system.sh: every segment, block and client socket is a descriptor.
$user soft nofile $nofile
$user hard nofile $nofile
LIMITS

cat >"$sysctl_file" <<'SYSCTL'
# Written by Count's deploy/scripts/tune-system.sh.
# Socket buffers up to 128 MiB, so large writes and replication streams fill fast links.
net.core.rmem_max = 134217728
net.core.wmem_max = 134217728
net.ipv4.tcp_rmem = 4096 65536 134217728
net.ipv4.tcp_wmem = 4096 65536 134217728
# Longer accept queues for bursts of client connections (gunicorn listens with a backlog of 2048).
net.core.somaxconn = 4096
net.ipv4.tcp_max_syn_backlog = 8192
# More local ports for outgoing peer and proxy connections.
net.ipv4.ip_local_port_range = 10240 65535
SYSCTL

echo "tune-system: wrote $limits_file and $sysctl_file" >&2
if [ "$apply" = yes ]; then
    sysctl --quiet --load="$sysctl_file"
    echo "tune-system: applied; the file limit applies to $user's next login session" >&2
fi
