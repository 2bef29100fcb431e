"""schemathesis against a running Count node: every operation of /openapi.json, positive and negative cases.

Invariant: a run passes only when no response is a 5xx the document does not list (503/504 are), every status
is documented, every JSON answer matches its schema and content type, and schema-violating requests are refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "negative_data_rejection")
PHASES = ("examples", "coverage", "fuzzing")


def schemathesis_command(url: str, max_examples: int, seed: int | None = None,
                         phases: tuple[str, ...] = PHASES) -> list[str]:
    """The CLI call for the node at `url` (e.g. http://127.0.0.1:8080); `max_examples` cases per operation and
    phase. NOTE: one worker: the node is tested, not the machine, and two cores are shared."""
    command = [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(HERE / "schemathesis.toml"),
               "--no-color", "run", f"{url}/openapi.json", "--checks", ",".join(CHECKS), "--phases", ",".join(phases),
               "--max-examples", str(max_examples), "--workers", "1", "--generation-database", "none",
               "--request-timeout", "30"]
    return command + (["--seed", str(seed)] if seed is not None else [])


def run_schemathesis(url: str, max_examples: int, seed: int | None = None, timeout_seconds: float = 600,
                     phases: tuple[str, ...] = PHASES) -> subprocess.CompletedProcess:
    """Run it to the end (or raise subprocess.TimeoutExpired); returncode 0 means every check held. It runs in a
    temp dir: schemathesis keeps a .schemathesis/ cache in its working directory."""
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "bench.contract.hooks",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent.parent), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory(prefix="count-schemathesis-") as cwd:
        return subprocess.run(schemathesis_command(url, max_examples, seed, phases), env=env, cwd=cwd,
                              capture_output=True, text=True, timeout=timeout_seconds)
