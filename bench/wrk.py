"""Run wrk with one of the bench/lua scripts and turn its output into numbers.

Why wrk: a C load generator with keep-alive connections measures the server, not a Python client. The Lua
`done()` hook prints one BENCH_JSON line (exact percentiles, unexpected statuses); `--latency`'s table is
parsed too, as a cross-check that both agree.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

LUA_DIR = Path(__file__).parent / "lua"
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_DISTRIBUTION = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)


class WrkError(RuntimeError):
    """wrk failed or printed no BENCH_JSON line."""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk_version() -> str | None:
    if not wrk_available():
        return None
    result = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    return (result.stdout + result.stderr).splitlines()[0].strip() if (result.stdout + result.stderr) else None


def wrk_command(url: str, script: str, script_args: list[str], connections: int, duration_seconds: float,
                threads: int = 2, timeout_seconds: float = 10.0) -> list[str]:
    """The wrk command line for one run with a bench/lua script (`--latency` for the cross-check table)."""
    return ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{duration_seconds:g}s",
            "--latency", f"--timeout={timeout_seconds:g}s", "-s", str(LUA_DIR / script), url, "--", *script_args]


def parse_wrk(returncode: int, stdout: str, stderr: str) -> dict:
    """What one finished wrk run measured (see `summarize`); WrkError when it failed or printed no report."""
    line = next((l for l in stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if returncode != 0 or line is None:
        raise WrkError(f"wrk exited {returncode}: {stderr.strip() or stdout[-2000:]}")
    return summarize(json.loads(line[len("BENCH_JSON "):]), stdout)


def run_wrk(url: str, script: str, script_args: list[str], connections: int, duration_seconds: float,
            threads: int = 2, timeout_seconds: float = 10.0) -> dict:
    """One wrk run; returns requests/s, latency percentiles in ms and counts of unexpected answers and errors."""
    command = wrk_command(url, script, script_args, connections, duration_seconds, threads, timeout_seconds)
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration_seconds + 60)
    return parse_wrk(result.returncode, result.stdout, result.stderr)


def summarize(raw: dict, stdout: str) -> dict:
    """Requests/s and ms percentiles from the Lua report; the --latency table is kept for comparison."""
    seconds = raw["duration_us"] / 1e6
    latency = raw["latency_us"]
    table = {f"p{p}": round(float(v) * _UNITS_MS[unit], 3) for p, v, unit in _DISTRIBUTION.findall(stdout)}
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "requests_per_s": round(raw["requests"] / seconds, 1) if seconds else 0.0,
        "expected_per_s": round((raw["requests"] - raw["unexpected"]) / seconds, 1) if seconds else 0.0,
        "latency_ms": {key: round(value / 1000, 3) for key, value in latency.items()},
        "latency_table_ms": table,
        "unexpected_status": raw["unexpected"],
        "unexpected_statuses": raw["unexpected_statuses"],
        "socket_errors": raw["errors"],
    }
