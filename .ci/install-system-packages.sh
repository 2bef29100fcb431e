#!/usr/bin/env bash
# Installs the Debian packages the tests need: nginx and haproxy for the real-traffic proxy tests
# (tests/deploy), shellcheck for the shell scripts, openssl for throw-away TLS certificates, curl and jq, which
# deploy/scripts/monitor-count.sh uses, prometheus for promtool (checks deploy/prometheus.yml), wrk for the
# benchmark smoke test (tests/bench), iproute2 and iptables for the network-partition tests (tests/partition: a
# network namespace per cluster node, iptables DROP rules to cut them apart), and chromium with chromium-driver
# for the web console's browser tests. Idempotent and quiet (apt's output is shown only if it fails); run as root
# on Debian bookworm.
set -euo pipefail

packages=(nginx haproxy shellcheck openssl curl jq ca-certificates prometheus wrk iproute2 iptables chromium
          chromium-driver)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
[ "${#missing[@]}" -eq 0 ] && exit 0

log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
# --no-install-recommends: nginx's recommends are a web-server setup the tests do not use.
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-system-packages: apt-get failed for: ${missing[*]}" >&2
    exit 1
fi
echo "install-system-packages: installed ${missing[*]}"
