#!/usr/bin/env bash
# Backs up Count nodes with `countdb backup` while they keep running.
#
# usage: backup-count.sh [-d BACKUP_ROOT] NODE...
#   NODE    a Docker container running Count (see `docker ps`): `countdb backup` runs in a throw-away
#           container of the same image with the node's /data mounted read-only, so the node's own read-only
#           filesystem and volume are left alone; or `local`: a node run without containers, whose
#           DATA_DIR is set in this environment. (Kubernetes: kubectl exec count-0 -- countdb backup DEST.)
#   -d      where backups go (default $COUNT_BACKUP_ROOT, else /backups/count). Each run writes
#           BACKUP_ROOT/<UTC time>/<node>/ (for `local`: NODE_ID, else the host name) and prints
#           BACKUP_ROOT/<UTC time>.
# Nodes also come from $COUNT_NODES (space-separated) when none are given. A cluster: name every node; the run
# folder then holds every point acknowledged before the first backup began (docs/operations.md).
set -euo pipefail

usage() {
    # The comment block at the top of this file.
    sed -n '2,/^set -euo/{s/^# \{0,1\}//p;}' "$0"
    exit "${1:-0}"
}

backup_root="${COUNT_BACKUP_ROOT:-/backups/count}"
while getopts ":d:h" option; do
    case "$option" in
        d) backup_root="$OPTARG" ;;
        h) usage 0 ;;
        *) usage 2 >&2 ;;
    esac
done
shift $((OPTIND - 1))

nodes=("$@")
if [ "${#nodes[@]}" -eq 0 ] && [ -n "${COUNT_NODES:-}" ]; then
    read -r -a nodes <<<"$COUNT_NODES"
fi
if [ "${#nodes[@]}" -eq 0 ]; then
    echo "backup-count: name at least one node (a container name, or local)" >&2
    usage 2 >&2
fi

run_dir="$backup_root/$(date -u +%Y-%m-%dT%H-%M-%SZ)"
mkdir -p "$run_dir"
run_dir="$(cd "$run_dir" && pwd)"  # docker --volume needs an absolute path

backup_container() {
    local container="$1" image
    image="$(docker inspect --format '{{.Config.Image}}' "$container")"
    # Root in the helper reads /data whatever its owner; it needs no network.
    docker run --rm --network none --user 0:0 \
        --volumes-from "$container:ro" \
        --volume "$run_dir:/backup" \
        "$image" countdb backup "/backup/$container" >&2  # its report goes with the progress; stdout is the run folder
}

backup_local() {
    if [ -z "${DATA_DIR:-}" ]; then
        echo "backup-count: set DATA_DIR to the node's data directory for a local backup" >&2
        exit 2
    fi
    # countdb reads DATA_DIR (and the rest of its settings) from the environment.
    countdb backup "$run_dir/${NODE_ID:-$HOSTNAME}" >&2
}

for node in "${nodes[@]}"; do
    echo "backup-count: backing up $node" >&2
    if [ "$node" = local ]; then
        backup_local
    else
        backup_container "$node"
    fi
done

echo "$run_dir"
