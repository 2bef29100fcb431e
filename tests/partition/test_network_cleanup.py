"""The test network (tests/support/netns.py) beyond one clean run: destroy() leaves nothing even with processes
still inside, two networks at once get disjoint subnets, a killed run's leftovers (its processes too) are removed
by the next run, and hosts reach each other on machines whose FORWARD chain drops bridged traffic (Docker hosts)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from support.netns import HostNetwork, _forward_rules, _run, remove_leftovers, require_namespaces

PORT = 8000


def traces(tag: str) -> list[str]:
    """Every namespace, link and FORWARD rule of the run `tag` (cnt<pid>r<n>) still on the machine."""
    names = _run("ip", "netns", "list").stdout.split() + _run("ip", "-o", "link", "show").stdout.split()
    rules = [rule_tag for rule_tag, _ in _forward_rules()]
    return [name.rstrip(":") for name in names if name.startswith(tag)] + [r for r in rules if r == tag]


def tag_of(network: HostNetwork) -> str:
    return network.bridge[:-1]


def serve(host) -> subprocess.Popen:
    server = subprocess.Popen(host.argv([sys.executable, "-m", "http.server", str(PORT), "--bind", host.address]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        try:
            requests.get(f"http://{host.address}:{PORT}/", timeout=1)
            return server
        except requests.RequestException:
            assert server.poll() is None and time.monotonic() < deadline, f"http.server did not start in {host}"
            time.sleep(0.05)


def reaches(source, target) -> bool:
    url = f"http://{target.address}:{PORT}/"
    probe = source.argv(["curl", "-s", "-o", "/dev/null", "-m", "1", "-w", "%{http_code}", url])
    return subprocess.run(probe, capture_output=True, text=True, timeout=10).stdout == "200"


def test_destroy_kills_what_still_runs_inside_and_leaves_nothing():
    require_namespaces()
    network = HostNetwork(2)
    try:
        sleeper = subprocess.Popen(network.hosts[1].argv(["sleep", "600"]))
        assert len(traces(tag_of(network))) >= 3  # bridge, two namespaces (and their veths)
    finally:
        network.destroy()
    # Without the kill the namespace, its veth and the sleeper would outlive the run, nameless.
    assert sleeper.wait(10) == -signal.SIGKILL
    assert traces(tag_of(network)) == []


def test_two_networks_at_once_get_disjoint_subnets_and_both_work():
    require_namespaces()
    first = HostNetwork(1)
    try:
        second = HostNetwork(1)
        try:
            assert not first.subnet.overlaps(second.subnet)
            servers = [serve(first.hosts[0]), serve(second.hosts[0])]  # each answers the test at its address
            for server in servers:
                server.kill()
                server.wait(10)
        finally:
            second.destroy()
    finally:
        first.destroy()


CRASHING_RUN = textwrap.dedent("""
    import subprocess, sys, time
    sys.path.insert(0, {tests!r})
    from support.netns import HostNetwork
    network = HostNetwork(2)
    subprocess.Popen(network.hosts[0].argv(["sleep", "600"]))
    print(network.bridge[:-1], flush=True)
    time.sleep(600)
""")


def test_leftovers_of_a_killed_run_and_their_processes_are_removed_by_the_next_run():
    require_namespaces()
    tests = str(Path(__file__).resolve().parents[1])
    crashed = subprocess.Popen([sys.executable, "-c", CRASHING_RUN.format(tests=tests)], stdout=subprocess.PIPE,
                               text=True)
    try:
        tag = crashed.stdout.readline().strip()
    finally:
        crashed.kill()  # kill -9: no cleanup ran
        crashed.wait(10)
    assert tag == f"cnt{crashed.pid}r0" and traces(tag)
    namespace = f"{tag}n0"
    orphans = [int(pid) for pid in _run("ip", "netns", "pids", namespace).stdout.split()]
    assert orphans, "the crashed run's sleeper should still be running in its namespace"
    remove_leftovers()
    assert traces(tag) == []
    assert not any(os.path.exists(f"/proc/{pid}") and "sleep" in Path(f"/proc/{pid}/cmdline").read_text()
                   for pid in orphans)


def test_hosts_reach_each_other_where_the_forward_chain_drops_bridged_traffic():
    """Docker sets the FORWARD policy to DROP and loads br_netfilter, which sends bridged frames through FORWARD.
    Simulated here for this process's bridges only, with a DROP rule matching their names."""
    require_namespaces()
    hook = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    if not hook.exists() or hook.read_text().strip() != "1":
        pytest.skip("br_netfilter does not pass bridged frames to iptables here: FORWARD cannot drop them")
    mine = f"cnt{os.getpid()}r+"
    drop = ["FORWARD", "-i", mine, "-o", mine, "-j", "DROP"]
    _run("iptables", "-w", "-A", *drop)
    try:
        network = HostNetwork(2)
        try:
            server = serve(network.hosts[1])
            try:
                assert reaches(network.hosts[0], network.hosts[1])
            finally:
                server.kill()
                server.wait(10)
        finally:
            network.destroy()
    finally:
        _run("iptables", "-w", "-D", *drop)
    assert traces(tag_of(network)) == []  # its ACCEPT rule went with it
