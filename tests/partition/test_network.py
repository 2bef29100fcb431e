"""The test network itself (tests/support/netns.py): hosts reach each other and the test, a cut drops exactly
the traffic between two hosts, healing restores it, and nothing is left behind."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests

from support.netns import HostNetwork, remove_leftovers, require_namespaces, _run


@pytest.fixture
def network():
    require_namespaces()
    remove_leftovers()
    made = HostNetwork(3)
    servers = [subprocess.Popen(host.argv([sys.executable, "-m", "http.server", "8000", "--bind", host.address]),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for host in made.hosts]
    try:
        deadline = time.monotonic() + 15
        while not all(_reachable(made, None, i) for i in range(3)):
            assert time.monotonic() < deadline, "the namespace servers did not come up"
            time.sleep(0.1)
        yield made
    finally:
        for server in servers:
            server.kill()
            server.wait()
        made.destroy()


def _reachable(network: HostNetwork, source: int | None, target: int) -> bool:
    url = f"http://{network.hosts[target].address}:8000/"
    if source is None:
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False
    probe = network.hosts[source].argv(["curl", "-s", "-o", "/dev/null", "-m", "1", "-w", "%{http_code}", url])
    return subprocess.run(probe, capture_output=True, text=True, timeout=10).stdout == "200"


def test_a_cut_drops_traffic_between_two_hosts_only_and_heals(network):
    assert all(_reachable(network, a, b) for a in range(3) for b in range(3) if a != b)
    network.cut(0, 1)
    assert not _reachable(network, 0, 1) and not _reachable(network, 1, 0)
    assert _reachable(network, 0, 2) and _reachable(network, 2, 1)
    assert all(_reachable(network, None, i) for i in range(3))  # the test still reaches every host
    network.heal(0, 1)
    assert _reachable(network, 0, 1) and _reachable(network, 1, 0)


def test_destroy_leaves_no_namespace_or_link_behind():
    require_namespaces()
    made = HostNetwork(2)
    names = [host.namespace for host in made.hosts] + [made.bridge]
    made.destroy()
    listed = _run("ip", "netns", "list").stdout + _run("ip", "-o", "link", "show").stdout
    assert not any(name in listed for name in names)
