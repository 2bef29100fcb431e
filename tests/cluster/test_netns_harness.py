"""tests/support/netns.py, the network the partition tests run on: a tiny HTTP server in each namespace is
reachable from the root namespace and from every other host; cut/heal/isolate drop exactly the traffic they
name (as timeouts, like a real partition, not refusals); nothing outlives close(), a crashed run's leftovers
are removed by the next one, and a real Count server runs inside a namespace under its own address."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests
from support import netns

HTTP_PORT = 8000
# Run inside a namespace: GET each URL given and print one outcome per URL, "ok", "timeout" or the error.
PROBE = textwrap.dedent("""
    import socket, sys, urllib.request
    for url in sys.argv[1:]:
        try:
            urllib.request.urlopen(url, timeout=float(%r)).read()
            print("ok")
        except OSError as error:
            reason = getattr(error, "reason", error)
            print("timeout" if isinstance(reason, (socket.timeout, TimeoutError)) else repr(reason))
""")
PROBE_TIMEOUT_SECONDS = 1.0


def probe(source: netns.Host, targets: list[netns.Host], port: int = HTTP_PORT, path: str = "/") -> list[str]:
    """GET every target from inside `source`'s namespace (one Python process per call); one outcome each."""
    urls = [f"http://{target.address}:{port}{path}" for target in targets]
    process = source.run([sys.executable, "-c", PROBE % PROBE_TIMEOUT_SECONDS, *urls],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return out.split()


def from_root(host: netns.Host) -> int:
    return requests.get(f"http://{host.address}:{HTTP_PORT}/", timeout=5).status_code


def serve_http(host: netns.Host, folder: Path) -> subprocess.Popen:
    process = host.run([sys.executable, "-m", "http.server", "--bind", host.address, str(HTTP_PORT),
                        "--directory", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        try:
            from_root(host)
            return process
        except requests.ConnectionError:
            assert process.poll() is None and time.monotonic() < deadline, f"http.server did not start in {host}"
            time.sleep(0.05)


@pytest.fixture
def web(netns_network, tmp_path):
    """Three hosts, each running `python -m http.server` on its own address."""
    network = netns_network(3)
    servers = [serve_http(host, tmp_path) for host in network.hosts]
    yield network
    for server in servers:
        server.kill()
        server.wait(10)


def test_every_host_is_reachable_from_the_root_namespace_and_from_every_other_host(web):
    assert [from_root(host) for host in web.hosts] == [200, 200, 200]
    for host in web.hosts:
        assert probe(host, web.hosts) == ["ok", "ok", "ok"], host
    addresses = [host.address for host in web.hosts]
    assert len(set(addresses)) == 3 and all(netns.ipaddress.ip_address(a) in web.subnet for a in addresses)
    assert web.gateway not in addresses


def test_cut_drops_traffic_between_two_hosts_only_and_heal_restores_it(web):
    a, b, c = web.hosts
    web.cut(a, b)
    assert probe(a, [b, c]) == ["timeout", "ok"]
    assert probe(b, [a, c]) == ["timeout", "ok"]
    assert probe(c, [a, b]) == ["ok", "ok"]
    assert [from_root(host) for host in web.hosts] == [200, 200, 200]
    web.cut(b, a)  # the same pair: nothing more to do
    web.heal(a, b)
    assert probe(a, [b]) == ["ok"] and probe(b, [a]) == ["ok"]


def test_isolate_cuts_a_host_from_all_others_while_the_root_namespace_still_reaches_it(web):
    a, b, c = web.hosts
    web.isolate(a)
    assert probe(a, [b, c]) == ["timeout", "timeout"]
    assert probe(b, [a, c]) == ["timeout", "ok"]
    assert from_root(a) == 200
    web.heal_all()
    assert probe(a, [b, c]) == ["ok", "ok"]


def test_cluster_nodes_lists_every_host_in_node_id_order(netns_network):
    network = netns_network(3)
    assert network.cluster_nodes(8080) == ",".join(f"{host.address}:8080" for host in network.hosts)
    assert [host.index for host in network.hosts] == [1, 2, 3]


def test_concurrent_networks_get_distinct_names_and_subnets(netns_network):
    first, second = netns_network(2), netns_network(2)
    assert first.subnet != second.subnet and not first.subnet.overlaps(second.subnet)
    assert not {h.name for h in first.hosts} & {h.name for h in second.hosts}
    assert first.bridge != second.bridge


def leftovers(tag: str) -> dict:
    """Every trace of a run in the root namespace: namespaces, interfaces, FORWARD rules."""
    namespaces = [line.split()[0] for line in netns._ip("netns", "list").stdout.splitlines()]
    links = [link["ifname"] for link in json.loads(netns._ip("-j", "link", "show").stdout)]
    rules = [owner for owner, _ in netns._tagged_forward_rules()]
    return {"namespaces": [n for n in namespaces if n.startswith(tag)],
            "links": [n for n in links if n.startswith(tag)], "rules": [r for r in rules if r == tag]}


def test_close_kills_processes_and_removes_every_trace():
    netns.require_netns()
    network = netns.create(2)
    try:
        sleeper = network.hosts[0].run(["sleep", "600"])
        assert sorted(leftovers(network.tag)["namespaces"]) == [host.name for host in network.hosts]
        assert len(leftovers(network.tag)["links"]) == 3  # bridge and two veths
    finally:
        network.close()
    assert sleeper.wait(10) == -signal.SIGKILL
    assert leftovers(network.tag) == {"namespaces": [], "links": [], "rules": []}
    network.close()  # twice is harmless


def test_a_failing_test_still_leaves_nothing_behind():
    netns.require_netns()
    tag = None
    with pytest.raises(ZeroDivisionError):
        with netns.create(2) as network:
            tag = network.tag
            network.hosts[1].run(["sleep", "600"])
            1 / 0
    assert leftovers(tag) == {"namespaces": [], "links": [], "rules": []}


CRASHING_RUN = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, %r)
    from support import netns
    network = netns.create(2)
    network.cut(*network.hosts)
    network.hosts[0].run(["sleep", "600"])
    print(network.tag, flush=True)
    time.sleep(600)
""")


def test_leftovers_of_a_killed_run_are_removed_at_the_next_start():
    netns.require_netns()
    tests_dir = str(Path(__file__).resolve().parents[1])
    crashed = subprocess.Popen([sys.executable, "-c", CRASHING_RUN % tests_dir], stdout=subprocess.PIPE, text=True)
    try:
        tag = crashed.stdout.readline().strip()
    finally:
        crashed.kill()
        crashed.wait(10)
    assert tag.startswith(f"cnt{crashed.pid:x}-")
    assert len(leftovers(tag)["namespaces"]) == 2  # kill -9 left them, and the sleeper inside
    assert tag in netns.remove_stale()
    assert leftovers(tag) == {"namespaces": [], "links": [], "rules": []}
    own = netns.create(1)  # a live run's network is never taken for a stale one
    try:
        assert own.tag not in netns.remove_stale() and leftovers(own.tag)["namespaces"]
    finally:
        own.close()


def test_without_root_it_skips_with_the_reason_and_fails_in_ci(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="must run as root"):
        netns.require_netns()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required in CI.*must run as root"):
        netns.require_netns()


def test_without_iproute2_it_names_the_missing_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no `ip`
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="iproute2"):
        netns.require_netns()


def test_a_count_server_runs_inside_a_namespace_on_its_own_address(netns_network, count_server):
    network = netns_network(2)
    node_host, other = network.hosts
    node = netns.start_count_node(count_server, node_host, port=8080, NODE_ID=node_host.index)
    assert node.url == f"http://{node_host.address}:8080"
    assert node.get("/health").json()["node_id"] == 1
    assert node.post("/insert", json={"series": "netns.up", "timestamp": 1_000, "value": 1.5}).status_code == 201
    assert probe(other, [node_host], port=8080, path="/health") == ["ok"]
    network.isolate(node_host)
    assert probe(other, [node_host], port=8080, path="/health") == ["timeout"]
    # The test client in the root namespace still reaches it.
    assert node.get("/query/range/netns.up", params={"start": 0, "end": 2_000}).json() == [
        {"timestamp": 1_000, "value": 1.5}]
    assert node.stop() == 0
