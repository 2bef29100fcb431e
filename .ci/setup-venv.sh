#!/usr/bin/env bash
# Creates ./.venv (installing Debian's python3-venv first if this Python lacks venv) and installs Count
# into it, with the extras named in $1 (e.g. "test"). Sourced by .ci/serve and .ci/test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x .venv/bin/python ]; then
    if ! python3 -m venv .venv >/dev/null 2>&1; then
        rm -rf .venv
        as_root=(); [ "$(id -u)" -eq 0 ] || as_root=(sudo)
        "${as_root[@]}" apt-get update -qq && "${as_root[@]}" apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv .venv
    fi
fi
extras="${1:-}"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras:+[$extras]}" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
