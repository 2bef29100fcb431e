"""A test network of hosts on this machine: one network namespace per host, each with its own address on a Linux
bridge in the root namespace, and `iptables -j DROP` rules inside the namespaces to cut chosen hosts apart while
the test (in the root namespace) still reaches every host. Needs root and iproute2/iptables (.ci installs them).

Names carry this process's pid, so parallel runs don't clash and leftovers of a dead run (processes included) are
removed at start. Traffic stays inside namespaces this run made, on a private /24 of 10.213.0.0/16 that no address
or route of the machine overlaps, chosen under a lock shared by concurrent runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PREFIX = "cnt"
ADDRESS_SPACE = ipaddress.ip_network("10.213.0.0/16")
LOCK_PATH = Path("/run/lock" if Path("/run/lock").is_dir() else "/tmp") / "count-netns.lock"
KILL_DEADLINE_SECONDS = 10
_runs = itertools.count()


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def require_namespaces() -> None:
    """Skip (fail in CI) unless this process may make network namespaces."""
    problem = None
    if os.geteuid() != 0:
        problem = "network-namespace tests need root"
    elif not shutil.which("ip") or not shutil.which("iptables"):
        problem = "network-namespace tests need iproute2 and iptables (.ci/install-system-packages.sh)"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)


def remove_leftovers() -> None:
    """Delete the namespaces (killing what still runs in them), links and FORWARD rules of earlier runs whose
    process is gone."""
    with _lock():
        _remove_leftovers()


def _remove_leftovers() -> None:
    names = [line.split()[0] for line in _run("ip", "netns", "list", check=False).stdout.splitlines() if line.strip()]
    links = re.findall(r"^\d+: ([^:@]+)", _run("ip", "-o", "link", "show", check=False).stdout, re.MULTILINE)
    for name in names + links:
        match = re.fullmatch(rf"{PREFIX}(\d+)r\d+[bnhi]\d*", name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            if name in names:
                _kill_processes_in(name)
                _run("ip", "netns", "del", name, check=False)
            else:
                _run("ip", "link", "del", name, check=False)
    for tag, delete in _forward_rules():
        owner = re.fullmatch(rf"{PREFIX}(\d+)r\d+", tag).group(1)
        if not os.path.exists(f"/proc/{owner}"):
            _run(*delete, check=False)


def _kill_processes_in(namespace: str) -> None:
    """SIGKILL every process inside the namespace and wait until none is left: a namespace (and its veth) lives
    on, nameless, while a process is in it."""
    deadline = time.monotonic() + KILL_DEADLINE_SECONDS
    while pids := [int(pid) for pid in _run("ip", "netns", "pids", namespace, check=False).stdout.split()]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} in {namespace} survived SIGKILL")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


@contextlib.contextmanager
def _lock():
    """Serialises leftover removal and subnet choice between concurrent runs on this machine."""
    with open(LOCK_PATH, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 of ADDRESS_SPACE that no address or route of the root namespace overlaps (another run's bridge
    included), tried from a pid-derived start so concurrent runs rarely probe the same ones."""
    taken = []
    for entry in json.loads(_run("ip", "-j", "-4", "addr", "show").stdout or "[]"):
        taken += [ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False) for a in entry["addr_info"]]
    for entry in json.loads(_run("ip", "-j", "-4", "route", "show", "table", "all").stdout or "[]"):
        if entry.get("dst", "default") != "default":
            taken.append(ipaddress.ip_network(entry["dst"], strict=False))
    candidates = list(ADDRESS_SPACE.subnets(new_prefix=24))
    start = os.getpid() % len(candidates)
    for subnet in candidates[start:] + candidates[:start]:
        if not any(subnet.overlaps(other) for other in taken):
            return subnet
    raise RuntimeError(f"no free /24 left in {ADDRESS_SPACE} for a test network")


def _iptables_backends() -> list[str]:
    """The iptables backends whose rules apply here: nftables, and legacy x_tables only when tables of it are
    loaded (listing them would load them)."""
    legacy = Path("/proc/net/ip_tables_names")
    backends = ["iptables-nft"]
    if legacy.exists() and legacy.read_text().strip():
        backends.append("iptables-legacy")
    return [backend for backend in backends if shutil.which(backend)]


def _forward_rules() -> list[tuple[str, list[str]]]:
    """(run tag, argv deleting it) for each FORWARD rule a run added (_accept_bridged_forwarding)."""
    rules = []
    for iptables in _iptables_backends():
        for line in _run(iptables, "-w", "-S", "FORWARD", check=False).stdout.splitlines():
            tag = re.search(rf'--comment "?({PREFIX}\d+r\d+)"?', line)
            if tag and line.startswith("-A "):
                rules.append((tag.group(1), [iptables, "-w", "-D", *line.split()[1:]]))
    return rules


def _accept_bridged_forwarding(bridge: str, tag: str) -> list[list[str]]:
    """With br_netfilter loaded, frames crossing the bridge go through the root namespace's iptables FORWARD
    chain, which Docker hosts set to DROP: hosts could not reach each other. Accept this bridge's traffic first in
    each backend whose chain is not a bare ACCEPT; returns the argv that delete the rules added."""
    hook = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    if not hook.exists() or hook.read_text().strip() != "1":
        return []
    added = []
    for iptables in _iptables_backends():
        if _run(iptables, "-w", "-S", "FORWARD", check=False).stdout.strip() in ("", "-P FORWARD ACCEPT"):
            continue
        rule = ["FORWARD", "-i", bridge, "-o", bridge, "-m", "comment", "--comment", tag, "-j", "ACCEPT"]
        _run(iptables, "-w", "-I", *rule)
        added.append([iptables, "-w", "-D", *rule])
    return added


@dataclass
class Host:
    index: int
    namespace: str
    address: str

    def argv(self, command: list[str]) -> list[str]:
        """`command` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.namespace, *command]

    def iptables(self, *rule: str, check: bool = True) -> None:
        _run("ip", "netns", "exec", self.namespace, "iptables", *rule, check=check)


@dataclass
class HostNetwork:
    size: int
    hosts: list[Host] = field(default_factory=list)
    cuts: set[tuple[int, int]] = field(default_factory=set)
    forward_rules: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # NOTE: a run number too: the kernel deletes a namespace's veth asynchronously, so a name can't be reused
        # at once; interface names stay within Linux's 15 characters.
        tag = f"{PREFIX}{os.getpid()}r{next(_runs)}"
        self.bridge = f"{tag}b"
        try:
            with _lock():  # the bridge's address marks its /24 as taken for the next run that looks
                self.subnet = _free_subnet()
                self.gateway = str(self.subnet.network_address + 1)
                _run("ip", "link", "add", self.bridge, "type", "bridge")
                _run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _run("ip", "link", "set", self.bridge, "up")
            self.forward_rules = _accept_bridged_forwarding(self.bridge, tag)
            for index in range(self.size):
                host = Host(index, f"{tag}n{index}", str(self.subnet.network_address + 10 + index))
                outside, inside = f"{tag}h{index}", f"{tag}i{index}"
                _run("ip", "netns", "add", host.namespace)
                self.hosts.append(host)
                _run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
                _run("ip", "link", "set", inside, "netns", host.namespace)
                _run("ip", "link", "set", outside, "master", self.bridge, "up")
                _run("ip", "-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", inside)
                _run("ip", "-n", host.namespace, "link", "set", inside, "up")
                _run("ip", "-n", host.namespace, "link", "set", "lo", "up")
        except BaseException:
            self.destroy()
            raise

    def cut(self, a: int, b: int) -> None:
        """Drop every packet between hosts a and b, both ways; each still reaches the others and the test."""
        for one, other in ((a, b), (b, a)):
            self.hosts[one].iptables("-A", "INPUT", "-s", self.hosts[other].address, "-j", "DROP")
            self.hosts[one].iptables("-A", "OUTPUT", "-d", self.hosts[other].address, "-j", "DROP")
        self.cuts.add((min(a, b), max(a, b)))

    def heal(self, a: int, b: int) -> None:
        for one, other in ((a, b), (b, a)):
            self.hosts[one].iptables("-D", "INPUT", "-s", self.hosts[other].address, "-j", "DROP", check=False)
            self.hosts[one].iptables("-D", "OUTPUT", "-d", self.hosts[other].address, "-j", "DROP", check=False)
        self.cuts.discard((min(a, b), max(a, b)))

    def isolate(self, a: int) -> None:
        """Cut host a from every other host (the test still reaches it)."""
        for other in range(self.size):
            if other != a:
                self.cut(a, other)

    def heal_all(self) -> None:
        for a, b in list(self.cuts):
            self.heal(a, b)

    def destroy(self) -> None:
        """Kill what still runs in the hosts, then delete namespaces, bridge and FORWARD rules: nothing is left."""
        for host in self.hosts:
            _kill_processes_in(host.namespace)
            _run("ip", "netns", "del", host.namespace, check=False)  # its veth end goes with it, and the pair
        _run("ip", "link", "del", self.bridge, check=False)
        for delete in self.forward_rules:
            _run(*delete, check=False)
        self.hosts, self.forward_rules = [], []
