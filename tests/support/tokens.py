"""Access tokens for server tests, made the way an operator makes them: `countdb token create` beside the node."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def countdb_token(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "countdb", "token", *args, "--data-dir", str(data_dir)],
                          input=stdin, capture_output=True, text=True, timeout=60, env=os.environ.copy())


def create_token(data_dir: Path, name: str, scopes: str) -> str:
    """A new token with `scopes` (e.g. "read,write"); the command prints it alone on stdout."""
    made = countdb_token(data_dir, "create", name, "--scopes", scopes)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()
