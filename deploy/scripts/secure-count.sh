#!/usr/bin/env bash
# Firewalls Count's port on a node host: only the load balancer(s) and the peer nodes may connect to it.
# Everything else on the host is left alone: the rules live in their own chain, COUNT-API, jumped to only for
# Count's port, so SSH and other services cannot be locked out. Idempotent; run as root.
#
# usage: secure-count.sh --lb ADDR[,ADDR...] --peers ADDR[,ADDR...] [--port PORT] [--docker] [--save] [--dry-run]
#   --lb       load balancer addresses or CIDRs (default $COUNT_LB_ADDRS)
#   --peers    the other Count nodes' addresses (default $COUNT_PEER_ADDRS)
#   --port     Count's port on this host (default $COUNT_PORT, else 8080)
#   --docker   Count runs in Docker with a published port: filter in DOCKER-USER, where published ports are
#              seen (INPUT never sees them); --port is then the container port, 8080.
#   --save     also write the rules to /etc/iptables/rules.v4 and rules.v6 (iptables-persistent).
#   --dry-run  print the iptables commands instead of running them.
# IPv4 addresses go to iptables, IPv6 ones to ip6tables; on each, Count's port is closed to everyone else.
set -euo pipefail

usage() {
    # The comment block at the top of this file.
    sed -n '2,/^set -euo/{s/^# \{0,1\}//p;}' "$0"
    exit "${1:-0}"
}

lb_addrs="${COUNT_LB_ADDRS:-}"
peer_addrs="${COUNT_PEER_ADDRS:-}"
port="${COUNT_PORT:-8080}"
docker=no
save=no
dry_run=no
while [ "$#" -gt 0 ]; do
    case "$1" in
        --lb) lb_addrs="${2:?--lb needs addresses}"; shift 2 ;;
        --peers) peer_addrs="${2:?--peers needs addresses}"; shift 2 ;;
        --port) port="${2:?--port needs a number}"; shift 2 ;;
        --docker) docker=yes; shift ;;
        --save) save=yes; shift ;;
        --dry-run) dry_run=yes; shift ;;
        -h | --help) usage 0 ;;
        *) echo "secure-count: unknown argument $1" >&2; usage 2 >&2 ;;
    esac
done

if [ -z "$lb_addrs" ]; then
    # Without a balancer address no client could reach Count any more.
    echo "secure-count: give the load balancer address(es) with --lb or COUNT_LB_ADDRS" >&2
    exit 2
fi
if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    echo "secure-count: --port must be a port number, not $port" >&2
    exit 2
fi

ipv4=()
ipv6=()
IFS=', ' read -r -a addresses <<<"$lb_addrs $peer_addrs"
for address in "${addresses[@]}"; do
    if [[ "$address" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}(/[0-9]{1,2})?$ ]]; then
        ipv4+=("$address")
    elif [[ "$address" =~ ^[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*(/[0-9]{1,3})?$ ]]; then
        ipv6+=("$address")
    elif [ -n "$address" ]; then
        echo "secure-count: not an IP address or CIDR: $address" >&2
        exit 2
    fi
done

run() {
    if [ "$dry_run" = yes ]; then
        echo "$*"
    else
        "$@"
    fi
}

# secure TOOL ADDRESS...: (re)builds COUNT-API for one address family and hooks it in once.
secure() {
    local tool="$1" parent=INPUT allow=ACCEPT match=(--dport "$port")
    shift
    if [ "$docker" = yes ]; then
        # Published ports are DNAT-ed before filtering: match the original destination port. RETURN hands
        # allowed packets on to Docker's own forwarding rules, as Docker's documentation asks.
        parent=DOCKER-USER
        allow=RETURN
        match=(-m conntrack --ctorigdstport "$port" --ctdir ORIGINAL)
        if [ "$dry_run" = no ] && ! "$tool" -n -L DOCKER-USER >/dev/null 2>&1; then
            echo "secure-count: $tool has no DOCKER-USER chain (is Docker running?); skipped" >&2
            return 0
        fi
    fi
    if [ "$dry_run" = yes ] || ! "$tool" -n -L COUNT-API >/dev/null 2>&1; then
        run "$tool" -N COUNT-API
    fi
    run "$tool" -F COUNT-API
    run "$tool" -A COUNT-API -i lo -j "$allow"
    local address
    for address in "$@"; do
        run "$tool" -A COUNT-API -s "$address" -j "$allow"
    done
    run "$tool" -A COUNT-API -j DROP
    if [ "$dry_run" = yes ] || ! "$tool" -C "$parent" -p tcp "${match[@]}" -j COUNT-API 2>/dev/null; then
        run "$tool" -I "$parent" 1 -p tcp "${match[@]}" -j COUNT-API
    fi
}

secure iptables "${ipv4[@]}"
if [ "$dry_run" = yes ] || command -v ip6tables >/dev/null; then
    secure ip6tables "${ipv6[@]}"
fi

if [ "$save" = yes ]; then
    if [ "$dry_run" = yes ]; then
        echo "iptables-save > /etc/iptables/rules.v4"
        echo "ip6tables-save > /etc/iptables/rules.v6"
    else
        mkdir -p /etc/iptables
        iptables-save >/etc/iptables/rules.v4
        ip6tables-save >/etc/iptables/rules.v6
    fi
fi
echo "secure-count: port $port reachable only from: ${ipv4[*]} ${ipv6[*]}" >&2
