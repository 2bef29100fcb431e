"""A test network of hosts on this machine: one network namespace per host, each with its own address on a Linux
bridge in the root namespace, and `iptables -j DROP` rules inside the namespaces to cut chosen hosts apart while
the test (in the root namespace) still reaches every host. Needs root and iproute2/iptables (.ci installs them).

Names carry this process's pid, so parallel runs don't clash and leftovers of a dead run are removed at start.
Traffic stays inside namespaces this run made, on a private /24 that exists only there.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

import pytest

PREFIX = "cnt"
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
    """Delete the namespaces and bridges of earlier runs whose process is gone."""
    names = _run("ip", "netns", "list", check=False).stdout.split()
    links = re.findall(r"^\d+: ([^:@]+)", _run("ip", "-o", "link", "show", check=False).stdout, re.MULTILINE)
    for name in names + links:
        match = re.fullmatch(rf"{PREFIX}(\d+)r\d+[bnhi]\d*", name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            if name in names:
                _run("ip", "netns", "del", name, check=False)
            else:
                _run("ip", "link", "del", name, check=False)


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

    def __post_init__(self) -> None:
        # NOTE: a run number too: the kernel deletes a namespace's veth asynchronously, so a name can't be reused
        # at once; interface names stay within Linux's 15 characters.
        tag = f"{PREFIX}{os.getpid()}r{next(_runs)}"
        subnet = f"10.213.{os.getpid() % 250}"
        self.bridge = f"{tag}b"
        self.gateway = f"{subnet}.1"
        try:
            _run("ip", "link", "add", self.bridge, "type", "bridge")
            _run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _run("ip", "link", "set", self.bridge, "up")
            for index in range(self.size):
                host = Host(index, f"{tag}n{index}", f"{subnet}.{10 + index}")
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
        for host in self.hosts:
            _run("ip", "netns", "del", host.namespace, check=False)  # its veth end goes with it, and the pair
        _run("ip", "link", "del", self.bridge, check=False)
        self.hosts = []
