"""`python -m bench.contract schemathesis|fuzz …`: the long contract and fuzz runs (bench/README.md).

schemathesis: starts a fresh count-server (bench/server.py) and runs every operation with --max-examples cases
(default 1000) and a new seed; fuzz: bench/contract/fuzz.py with its own options (--seconds per target…).
Exit status 1 when anything failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench.contract import fuzz
from bench.contract.schemathesis_run import run_schemathesis
from bench.server import CountServer


def schemathesis_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.contract schemathesis")
    parser.add_argument("--max-examples", type=int, default=1000, help="cases per operation and phase")
    parser.add_argument("--seed", type=int, help="default: a new one (printed in the output)")
    parser.add_argument("--work-dir", type=Path, help="DATA_DIR and server log (default: a new temp dir)")
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="of the whole run, seconds")
    args = parser.parse_args(argv)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="count-contract-"))
    server = CountServer(work_dir / "data", work_dir / "server.log", {"QUERY_TIMEOUT_SECONDS": "5"}).start()
    try:
        result = run_schemathesis(server.url, args.max_examples, args.seed, args.timeout)
    finally:
        server.stop()
    print(result.stdout + result.stderr)
    tracebacks = (work_dir / "server.log").read_text(errors="replace").count("Traceback")
    print(f"server log: {work_dir / 'server.log'} ({tracebacks} tracebacks)")
    return 1 if result.returncode or tracebacks else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["schemathesis"]:
        return schemathesis_main(argv[1:])
    if argv[:1] == ["fuzz"]:
        return fuzz.main(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
