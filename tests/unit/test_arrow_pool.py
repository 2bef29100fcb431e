"""The gunicorn master's allocator choice (issue 2: worker RSS): Arrow's C++ code (the Parquet writer) takes
the system allocator only if ARROW_DEFAULT_MEMORY_POOL is set before pyarrow is first imported, which
countdb.obs.memory does; the server's config module must import it before anything that imports pyarrow."""

from __future__ import annotations

import os
import subprocess
import sys


def test_the_server_config_gives_arrow_the_system_allocator(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "ARROW_DEFAULT_MEMORY_POOL"}
    env.update(DATA_DIR=str(tmp_path), PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    code = "import countdb.api.gunicorn_conf, pyarrow; print(pyarrow.default_memory_pool().backend_name)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "system"
