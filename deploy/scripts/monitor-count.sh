#!/usr/bin/env bash
# Checks every Count node's /health and alerts when a node is not healthy (anything but HTTP 200, or no
# answer) or reports a cluster_size below the expected one. Run it from cron or a systemd timer.
#
# usage: monitor-count.sh [NODE...]
#   NODE  host:port or a base URL (http://count-1:8080); default: $COUNT_NODES (space-separated), else
#         count-1:8080 count-2:8080 count-3:8080.
# Environment:
#   COUNT_EXPECTED_CLUSTER_SIZE  alert below this cluster_size (default: the number of nodes checked)
#   COUNT_ALERT_COMMAND          run through `sh -c` once per alert, with the message on stdin and in
#                                $COUNT_ALERT_MESSAGE, e.g. 'mail -s "Count alert" ops@example.com'
#                                (default: print the alert to stderr)
#   COUNT_HEALTH_TIMEOUT         seconds per request (default 5)
# Exits 0 when all is well, 1 after raising any alert, 2 on a usage error. Needs curl and jq.
set -euo pipefail

usage() {
    # The comment block at the top of this file.
    sed -n '2,/^set -euo/{s/^# \{0,1\}//p;}' "$0"
    exit "${1:-0}"
}

case "${1:-}" in -h | --help) usage 0 ;; esac
for tool in curl jq; do
    command -v "$tool" >/dev/null || { echo "monitor-count: $tool is required" >&2; exit 2; }
done

nodes=("$@")
if [ "${#nodes[@]}" -eq 0 ]; then
    read -r -a nodes <<<"${COUNT_NODES:-count-1:8080 count-2:8080 count-3:8080}"
fi
expected="${COUNT_EXPECTED_CLUSTER_SIZE:-${#nodes[@]}}"
timeout="${COUNT_HEALTH_TIMEOUT:-5}"
alerts=0

alert() {
    local message="$1"
    alerts=$((alerts + 1))
    if [ -n "${COUNT_ALERT_COMMAND:-}" ]; then
        COUNT_ALERT_MESSAGE="$message" sh -c "$COUNT_ALERT_COMMAND" <<<"$message" ||
            echo "monitor-count: the alert command failed for: $message" >&2
    else
        echo "ALERT: $message" >&2
    fi
}

check_node() {
    local node="$1" url body status cluster_size
    case "$node" in
        http://* | https://*) url="${node%/}/health" ;;
        *) url="http://$node/health" ;;
    esac
    body="$(mktemp)"
    # curl prints 000 when there is no HTTP answer at all (refused, timed out).
    status="$(curl --silent --max-time "$timeout" --output "$body" --write-out '%{http_code}' "$url" || true)"
    if [ "$status" != 200 ]; then
        alert "Count node $node is unhealthy (HTTP $status from $url)"
    elif ! cluster_size="$(jq -er '.cluster_size | numbers | floor' "$body" 2>/dev/null)"; then
        alert "Count node $node answered /health without a numeric cluster_size"
    elif [ "$cluster_size" -lt "$expected" ]; then
        alert "Count node $node sees cluster_size $cluster_size, expected $expected"
    fi
    rm -f "$body"
}

for node in "${nodes[@]}"; do
    check_node "$node"
done

if [ "$alerts" -gt 0 ]; then
    exit 1
fi
