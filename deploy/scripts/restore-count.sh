#!/usr/bin/env bash
# Restores one Count node from a backup made by backup-count.sh, with `countdb restore`.
#
# usage: restore-count.sh BACKUP NODE
#   BACKUP  a node's backup directory, e.g. /backups/count/2025-01-15T02-00-00Z/count-node-1
#   NODE    a Docker container running Count: it is stopped (it drains and flushes), `countdb restore`
#           writes into its /data volume from a throw-away container of the same image, then it is started
#           again and the script waits until Docker reports it healthy; or `local`: restores into
#           $DATA_DIR on this host, where the node must already be stopped. What the data directory held
#           is kept in its pre-restore-<UTC time>/ folder; delete that once the node looks right.
# A cluster: stop every node, run this for each node with its own backup from the same run of backup-count.sh,
# then let them start (docs/operations.md, "Backup and restore"); to restore into a cluster of another size,
# restore the original number of nodes first, then add or remove nodes (docs/cluster.md).
# Environment: COUNT_STOP_TIMEOUT (seconds given to stop, default 30), COUNT_HEALTH_TIMEOUT (seconds to wait
# for health after the start, default 300).
set -euo pipefail

usage() {
    # The comment block at the top of this file.
    sed -n '2,/^set -euo/{s/^# \{0,1\}//p;}' "$0"
    exit "${1:-0}"
}

case "${1:-}" in -h | --help) usage 0 ;; esac
[ "$#" -eq 2 ] || usage 2 >&2
backup="$1"
node="$2"
stop_timeout="${COUNT_STOP_TIMEOUT:-30}"
health_timeout="${COUNT_HEALTH_TIMEOUT:-300}"

if [ ! -d "$backup" ]; then
    echo "restore-count: no backup directory at $backup" >&2
    exit 2
fi
backup="$(cd "$backup" && pwd)"  # docker --volume needs an absolute path

wait_healthy() {
    local container="$1" status waited=0
    while [ "$waited" -lt "$health_timeout" ]; do
        status="$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$container")"
        case "$status" in
            healthy) return 0 ;;
            unhealthy | exited | dead)
                echo "restore-count: $container is $status after the restore; see: docker logs $container" >&2
                return 1 ;;
        esac
        sleep 5
        waited=$((waited + 5))
    done
    echo "restore-count: $container not healthy after ${health_timeout}s; see: docker logs $container" >&2
    return 1
}

restore_container() {
    local container="$1" image
    image="$(docker inspect --format '{{.Config.Image}}' "$container")"
    echo "restore-count: stopping $container" >&2
    docker stop --time "$stop_timeout" "$container" >/dev/null
    # The image's own user (10001) writes the files, so the node owns what it restarts with.
    docker run --rm --network none \
        --volumes-from "$container" \
        --volume "$backup:/backup:ro" \
        "$image" countdb restore /backup --data-dir /data
    echo "restore-count: starting $container" >&2
    docker start "$container" >/dev/null
    wait_healthy "$container"
}

restore_local() {
    if [ -z "${DATA_DIR:-}" ]; then
        echo "restore-count: set DATA_DIR to the (stopped) node's data directory" >&2
        exit 2
    fi
    countdb restore "$backup" --data-dir "$DATA_DIR"
}

if [ "$node" = local ]; then
    restore_local
else
    restore_container "$node"
fi
echo "restore-count: restored $node from $backup" >&2
