"""deploy/scripts/*.sh: shellcheck-clean and strict, and each behaves as its usage says. Docker and countdb are
replaced by recording stand-ins on PATH (the process edge); monitor-count.sh also runs against real Count."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.tools import require_tool

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((REPO / "deploy" / "scripts").glob("*.sh"))
SHELL_FILES = [*SCRIPTS, REPO / ".ci" / "install-system-packages.sh"]
SCRIPT = {path.name: path for path in SCRIPTS}


def run(script: str, *args: str, env: dict | None = None, path_prefix: Path | None = None):
    environment = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    if path_prefix is not None:
        environment["PATH"] = f"{path_prefix}:{environment['PATH']}"
    environment.update(env or {})
    return subprocess.run(["bash", str(SCRIPT[script]), *args], capture_output=True, text=True, env=environment,
                          timeout=60)


def stand_in(folder: Path, name: str, body: str = "") -> Path:
    """An executable `name` on a PATH folder that appends its arguments (one JSON list per line) to calls.log."""
    folder.mkdir(exist_ok=True)
    program = folder / name
    program.write_text(f'#!/usr/bin/env bash\nprintf \'%s\\0\' {name} "$@" | python3 -c \'import json,sys; '
                       f'print(json.dumps(sys.stdin.read().split("\\0")[:-1]))\' >> "{folder}/calls.log"\n{body}\n')
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    return program


def calls(folder: Path) -> list[list[str]]:
    log = folder / "calls.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


# ---- every script ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", SHELL_FILES, ids=lambda p: p.name)
def test_shellcheck_passes(path):
    result = subprocess.run([require_tool("shellcheck"), "--severity=style", str(path)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("path", SHELL_FILES, ids=lambda p: p.name)
def test_scripts_are_strict_and_executable(path):
    lines = path.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines
    assert path.stat().st_mode & stat.S_IXUSR


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_help_prints_the_usage(path):
    result = run(path.name, "--help" if path.name != "backup-count.sh" else "-h")
    assert result.returncode == 0 and "usage: " + path.name in result.stdout


# ---- monitor-count.sh ------------------------------------------------------------------------------------------

class FakeNode:
    """A stand-in node answering /health with a chosen status and body."""

    def __init__(self, status: int, body: dict):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                payload = json.dumps(outer.body).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.status, self.body = status, body
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_nodes():
    nodes = []

    def make(status=200, cluster_size=3):
        node = FakeNode(status, {"status": "healthy" if status == 200 else "unhealthy", "cluster_size": cluster_size})
        nodes.append(node)
        return node.address

    yield make
    for node in nodes:
        node.close()


def monitor(*nodes: str, alerts: Path, **env: str):
    require_tool("curl")
    require_tool("jq")
    return run("monitor-count.sh", *nodes, env={"COUNT_ALERT_COMMAND": f"cat >> {alerts}; echo >> {alerts}", **env})


def test_monitor_is_quiet_when_every_node_is_healthy(fake_nodes, tmp_path):
    alerts = tmp_path / "alerts"
    result = monitor(fake_nodes(), fake_nodes(), fake_nodes(), alerts=alerts)
    assert result.returncode == 0, result.stderr
    assert not alerts.exists()


def test_monitor_alerts_on_an_unhealthy_or_unreachable_node(fake_nodes, tmp_path):
    alerts = tmp_path / "alerts"
    sick = fake_nodes(status=503)
    result = monitor(fake_nodes(), sick, "127.0.0.1:9", alerts=alerts)
    assert result.returncode == 1
    lines = alerts.read_text().splitlines()
    assert any(f"{sick} is unhealthy (HTTP 503" in line for line in lines)
    assert any("127.0.0.1:9 is unhealthy (HTTP 000" in line for line in lines)
    assert len([line for line in lines if line]) == 2


def test_monitor_alerts_when_cluster_size_drops_below_the_expected_size(fake_nodes, tmp_path):
    alerts = tmp_path / "alerts"
    result = monitor(fake_nodes(cluster_size=2), alerts=alerts, COUNT_EXPECTED_CLUSTER_SIZE="3")
    assert result.returncode == 1
    assert "cluster_size 2, expected 3" in alerts.read_text()


def test_monitor_alert_command_gets_the_message_in_its_environment(fake_nodes, tmp_path):
    alerts = tmp_path / "alerts"
    result = run("monitor-count.sh", fake_nodes(status=500),
                 env={"COUNT_ALERT_COMMAND": f'printf "%s" "$COUNT_ALERT_MESSAGE" > {alerts}'})
    assert result.returncode == 1
    assert "unhealthy (HTTP 500" in alerts.read_text()


def test_monitor_against_a_real_count_node(server, tmp_path):
    alerts = tmp_path / "alerts"
    healthy = monitor(server.url, alerts=alerts, COUNT_EXPECTED_CLUSTER_SIZE="1")
    assert healthy.returncode == 0 and not alerts.exists(), healthy.stderr
    # A single node reports cluster_size 1: expecting three is an alert.
    assert monitor(server.url, alerts=alerts, COUNT_EXPECTED_CLUSTER_SIZE="3").returncode == 1
    assert "cluster_size 1, expected 3" in alerts.read_text()


# ---- backup-count.sh and restore-count.sh ----------------------------------------------------------------------

def test_backup_of_a_local_node_calls_countdb_backup_into_a_timestamped_folder(tmp_path):
    bin_dir = tmp_path / "bin"
    stand_in(bin_dir, "countdb")
    result = run("backup-count.sh", "-d", str(tmp_path / "backups"), "local", path_prefix=bin_dir,
                 env={"DATA_DIR": str(tmp_path / "data"), "NODE_ID": "node-7"})
    assert result.returncode == 0, result.stderr
    run_dir = Path(result.stdout.strip())
    assert run_dir.parent == tmp_path / "backups" and run_dir.is_dir()
    assert calls(bin_dir) == [["countdb", "backup", str(run_dir / "node-7")]]


def test_backup_of_containers_runs_countdb_beside_each_with_its_data_read_only(tmp_path):
    bin_dir = tmp_path / "bin"
    stand_in(bin_dir, "docker", 'if [ "$1" = inspect ]; then echo count:test; fi')
    result = run("backup-count.sh", "-d", str(tmp_path / "backups"), "count-node-1", "count-node-2",
                 path_prefix=bin_dir)
    assert result.returncode == 0, result.stderr
    run_dir = result.stdout.strip()
    runs = [call for call in calls(bin_dir) if call[1] == "run"]
    assert len(runs) == 2
    for call, node in zip(runs, ["count-node-1", "count-node-2"]):
        assert ["--volumes-from", f"{node}:ro"] == call[call.index("--volumes-from"):][:2]
        assert f"{run_dir}:/backup" in call
        assert call[-4:] == ["count:test", "countdb", "backup", f"/backup/{node}"]


def test_backup_without_nodes_is_a_usage_error(tmp_path):
    result = run("backup-count.sh", "-d", str(tmp_path))
    assert result.returncode == 2 and "at least one node" in result.stderr


def test_restore_of_a_container_stops_it_restores_then_waits_for_health(tmp_path):
    bin_dir = tmp_path / "bin"
    stand_in(bin_dir, "docker", """case "$1 $2" in
        "inspect --format") case "$3" in *Health*) echo healthy ;; *) echo count:test ;; esac ;;
    esac""")
    backup = tmp_path / "backup" / "count-node-2"
    backup.mkdir(parents=True)
    result = run("restore-count.sh", str(backup), "count-node-2", path_prefix=bin_dir)
    assert result.returncode == 0, result.stderr
    verbs = [call[1] for call in calls(bin_dir)]
    assert verbs == ["inspect", "stop", "run", "start", "inspect"]
    stop, run_call = calls(bin_dir)[1], calls(bin_dir)[2]
    assert stop == ["docker", "stop", "--time", "30", "count-node-2"]
    assert f"{backup}:/backup:ro" in run_call
    assert ["--volumes-from", "count-node-2"] == run_call[run_call.index("--volumes-from"):][:2]
    assert run_call[-5:] == ["countdb", "restore", "/backup", "--data-dir", "/data"]


def test_restore_fails_when_the_node_does_not_come_back_healthy(tmp_path):
    bin_dir = tmp_path / "bin"
    stand_in(bin_dir, "docker", """case "$3" in *Health*) echo unhealthy ;; *) echo count:test ;; esac""")
    backup = tmp_path / "backup"
    backup.mkdir()
    result = run("restore-count.sh", str(backup), "count-node-1", path_prefix=bin_dir)
    assert result.returncode == 1 and "unhealthy after the restore" in result.stderr


def test_restore_of_a_local_node_calls_countdb_restore(tmp_path):
    bin_dir = tmp_path / "bin"
    stand_in(bin_dir, "countdb")
    backup = tmp_path / "backup"
    backup.mkdir()
    result = run("restore-count.sh", str(backup), "local", path_prefix=bin_dir, env={"DATA_DIR": "/srv/count"})
    assert result.returncode == 0, result.stderr
    assert calls(bin_dir) == [["countdb", "restore", str(backup), "--data-dir", "/srv/count"]]


def test_restore_refuses_a_missing_backup(tmp_path):
    result = run("restore-count.sh", str(tmp_path / "nope"), "local", env={"DATA_DIR": str(tmp_path)})
    assert result.returncode == 2 and "no backup directory" in result.stderr


def countdb_has(command: str) -> bool:
    countdb = shutil.which("countdb") or str(Path(sys.executable).parent / "countdb")
    return subprocess.run([countdb, command, "--help"], capture_output=True).returncode == 0


@pytest.mark.skipif(not countdb_has("backup") or not countdb_has("restore"),
                    reason="`countdb backup` / `countdb restore` are not implemented yet")
def test_backup_and_restore_round_trip_a_real_node(count_server, tmp_path):
    source = count_server()
    assert source.post("/insert", json={"series": "backup.me", "timestamp": 1_000, "value": 7.0}).status_code == 201
    bin_dir = Path(sys.executable).parent
    backed_up = run("backup-count.sh", "-d", str(tmp_path / "backups"), "local", path_prefix=bin_dir,
                    env={"DATA_DIR": str(source.data_dir), "NODE_ID": "source"})
    assert backed_up.returncode == 0, backed_up.stderr
    restored_dir = tmp_path / "restored"
    restored = run("restore-count.sh", str(Path(backed_up.stdout.strip()) / "source"), "local",
                   path_prefix=bin_dir, env={"DATA_DIR": str(restored_dir)})
    assert restored.returncode == 0, restored.stderr
    copy = count_server(data_dir=restored_dir)
    assert copy.get("/query/range/backup.me", params={"start": 0, "end": 2_000}).json() == [
        {"timestamp": 1_000, "value": 7.0}]


# ---- tune-system.sh --------------------------------------------------------------------------------------------

def test_tune_system_writes_its_drop_in_files_idempotently(tmp_path):
    env = {"COUNT_SYSCTL_FILE": str(tmp_path / "sysctl.d" / "90-count.conf"),
           "COUNT_LIMITS_FILE": str(tmp_path / "limits.d" / "90-count.conf"), "COUNT_USER": "countdb"}
    first = run("tune-system.sh", "--no-apply", env=env)
    assert first.returncode == 0, first.stderr
    limits = Path(env["COUNT_LIMITS_FILE"]).read_text()
    sysctl = Path(env["COUNT_SYSCTL_FILE"]).read_text()
    assert "countdb soft nofile 65536" in limits and "countdb hard nofile 65536" in limits
    settings = dict(line.split(" = ") for line in sysctl.splitlines() if " = " in line)
    assert settings["net.core.rmem_max"] == settings["net.core.wmem_max"] == "134217728"
    assert settings["net.ipv4.tcp_rmem"].split()[-1] == "134217728"
    assert run("tune-system.sh", "--no-apply", env=env).returncode == 0
    assert Path(env["COUNT_LIMITS_FILE"]).read_text() == limits  # replaced, not appended to
    assert Path(env["COUNT_SYSCTL_FILE"]).read_text() == sysctl


def test_tune_system_rejects_a_bad_limit(tmp_path):
    result = run("tune-system.sh", "--no-apply", env={"COUNT_NOFILE": "lots",
                                                      "COUNT_LIMITS_FILE": str(tmp_path / "l"),
                                                      "COUNT_SYSCTL_FILE": str(tmp_path / "s")})
    assert result.returncode == 2 and not (tmp_path / "l").exists()


# ---- secure-count.sh -------------------------------------------------------------------------------------------

def test_secure_opens_the_port_only_to_the_balancer_and_peers():
    result = run("secure-count.sh", "--lb", "10.0.1.10", "--peers", "10.0.2.10,10.0.2.11 fd00::12", "--dry-run")
    assert result.returncode == 0, result.stderr
    rules = result.stdout.splitlines()
    v4 = [rule for rule in rules if rule.startswith("iptables ")]
    assert v4 == ["iptables -N COUNT-API", "iptables -F COUNT-API",
                  "iptables -A COUNT-API -i lo -j ACCEPT",
                  "iptables -A COUNT-API -s 10.0.1.10 -j ACCEPT",
                  "iptables -A COUNT-API -s 10.0.2.10 -j ACCEPT",
                  "iptables -A COUNT-API -s 10.0.2.11 -j ACCEPT",
                  "iptables -A COUNT-API -j DROP",
                  "iptables -I INPUT 1 -p tcp --dport 8080 -j COUNT-API"]
    v6 = [rule for rule in rules if rule.startswith("ip6tables ")]
    assert "ip6tables -A COUNT-API -s fd00::12 -j ACCEPT" in v6 and v6[-2] == "ip6tables -A COUNT-API -j DROP"
    # Only Count's port is touched: no policy change that could lock out SSH.
    assert not [rule for rule in rules if " -P " in rule]


def test_secure_filters_published_docker_ports_in_docker_user():
    result = run("secure-count.sh", "--lb", "10.0.1.10", "--docker", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert ("iptables -I DOCKER-USER 1 -p tcp -m conntrack --ctorigdstport 8080 --ctdir ORIGINAL -j COUNT-API"
            in result.stdout.splitlines())


@pytest.mark.parametrize("args, error", [
    (["--peers", "10.0.2.10"], "load balancer"),
    (["--lb", "10.0.1.10", "--peers", "count-2"], "not an IP address"),
    (["--lb", "10.0.1.10", "--port", "http"], "port number"),
])
def test_secure_refuses_what_would_lock_out_clients_or_is_not_an_address(args, error):
    result = run("secure-count.sh", *args, "--dry-run")
    assert result.returncode == 2 and error in result.stderr
