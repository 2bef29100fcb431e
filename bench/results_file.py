"""Where a benchmark phase's raw results go: results/<UTC date>-<host>-<name>.json."""

from __future__ import annotations

import json
import socket
from datetime import datetime, timezone
from pathlib import Path


def write_results(results_dir: Path, name: str, results: dict) -> dict:
    """Write `results` as <date>-<host>-<name>.json in `results_dir`; returns them with `written` (the path)."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    results_dir.mkdir(parents=True, exist_ok=True)
    out = results_dir / f"{stamp}-{socket.gethostname()}-{name}.json"
    out.write_text(json.dumps(results, indent=2))
    return {**results, "written": str(out)}
