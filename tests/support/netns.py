"""A test network of N hosts on this machine (as root): one network namespace per host, each joined by a veth
pair to a Linux bridge in the root namespace, addressed in a private /24 chosen per run. The root namespace
(the test client) reaches every host at all times; `cut`/`heal`/`isolate` drop traffic between chosen hosts
with iptables inside their namespaces. Everything a run creates carries its owner's pid in its name and is
removed by `Network.close()`, or at the start of a later run if that process died first.

    with create(3) as net:              # or the `netns_network` fixture: netns_network(3)
        a, b, c = net.hosts             # a.name "cnt1f2a-0-1", a.address "10.213.7.2"
        a.run(["python", "-m", "http.server", "--bind", a.address, "8000"])
        net.cut(a, b); net.heal(a, b); net.isolate(c)
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

# The /24s a run may take: 10.213.K.0/24, K chosen free per run; nothing else on a test machine uses them.
ADDRESS_SPACE = ipaddress.ip_network("10.213.0.0/16")
LOCK_PATH = Path("/run/lock/count-netns.lock") if Path("/run/lock").is_dir() else Path("/tmp/count-netns.lock")
# cnt<owner pid, hex>-<sequence in that process, hex>, then -<i> (namespace), b (bridge), v<i> (veth, root side)
# or p<i> (veth, host side). Hex keeps interface names within Linux's 15 characters.
TAG = re.compile(r"^cnt(?P<pid>[0-9a-f]+)-[0-9a-f]+$")
NAME = re.compile(r"^(?P<tag>cnt[0-9a-f]+-[0-9a-f]+)(?:-\d+|b|[vp]\d+)$")
MAX_INTERFACE_NAME = 15
KILL_DEADLINE_SECONDS = 10
_sequence = itertools.count()


class NetnsUnavailable(RuntimeError):
    """This machine cannot build the test network (not root, no `ip netns`, no iptables)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def _iptables_in(namespace: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", namespace, "iptables", "-w", *args],
                          capture_output=True, text=True, check=check, timeout=30)


@dataclass(eq=False)
class Host:
    """One host of a Network: its namespace `name`, `index` (1-based, as NODE_ID counts) and IPv4 `address`."""

    name: str
    index: int
    address: str

    def command_prefix(self) -> list[str]:
        """The argv prefix that runs a command inside this host's namespace."""
        return ["ip", "netns", "exec", self.name]

    def run(self, argv: list[str], env: dict | None = None, **popen_kwargs) -> subprocess.Popen:
        """Start `argv` inside the namespace (`ip netns exec` execs it: the Popen's pid is the command's own).
        `env` is the whole environment, as for Popen; other keyword arguments go to Popen unchanged."""
        return subprocess.Popen([*self.command_prefix(), *argv], env=env, **popen_kwargs)

    def __repr__(self) -> str:
        return f"Host({self.name}, {self.address})"


@dataclass(eq=False)
class Network:
    """N hosts on one bridge. `gateway` is the root namespace's own address on the bridge."""

    tag: str
    subnet: ipaddress.IPv4Network
    gateway: str
    hosts: list[Host] = field(default_factory=list)
    _forward_rules: list[list[str]] = field(default_factory=list)
    _cuts: set[frozenset] = field(default_factory=set)
    _closed: bool = False

    @property
    def bridge(self) -> str:
        return f"{self.tag}b"

    def cluster_nodes(self, port: int) -> str:
        """CLUSTER_NODES for a node on `port` of every host, in host order (NODE_ID i = hosts[i - 1])."""
        return ",".join(f"{host.address}:{port}" for host in self.hosts)

    def cut(self, a: Host, b: Host) -> None:
        """Drop every packet between hosts a and b, both directions; both stay reachable from the root
        namespace and from every other host. Idempotent."""
        if a is b or frozenset((a, b)) in self._cuts:
            return
        for here, there in ((a, b), (b, a)):
            _iptables_in(here.name, "-I", "INPUT", "-s", there.address, "-j", "DROP")
            _iptables_in(here.name, "-I", "OUTPUT", "-d", there.address, "-j", "DROP")
        self._cuts.add(frozenset((a, b)))

    def heal(self, a: Host, b: Host) -> None:
        """Undo cut(a, b). Idempotent."""
        if frozenset((a, b)) not in self._cuts:
            return
        for here, there in ((a, b), (b, a)):
            _iptables_in(here.name, "-D", "INPUT", "-s", there.address, "-j", "DROP")
            _iptables_in(here.name, "-D", "OUTPUT", "-d", there.address, "-j", "DROP")
        self._cuts.discard(frozenset((a, b)))

    def isolate(self, a: Host) -> None:
        """Cut host a from every other host (the root namespace still reaches it)."""
        for other in self.hosts:
            if other is not a:
                self.cut(a, other)

    def heal_all(self) -> None:
        """Undo every cut."""
        for pair in list(self._cuts):
            self.heal(*pair)

    def close(self) -> None:
        """Kill every process still inside the hosts' namespaces, then delete veths, bridge, namespaces and
        forwarding rules. Runs every step even when one fails; raises at the end if any failed."""
        if self._closed:
            return
        self._closed = True
        errors = _remove(self.tag, [host.name for host in self.hosts], self._forward_rules)
        if errors:
            raise RuntimeError(f"netns cleanup of {self.tag} left things behind: {errors}")

    def __enter__(self) -> "Network":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def require_netns() -> None:
    """Skip the calling test when this machine cannot build a test network; in CI (CI=true) fail instead,
    since CI runs as root with iproute2 and iptables installed (.ci/install-system-packages.sh)."""
    try:
        _check_capable()
    except NetnsUnavailable as missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"network namespaces are required in CI: {missing}")
        pytest.skip(f"network namespaces unavailable: {missing}")


def _check_capable() -> None:
    if os.geteuid() != 0:
        raise NetnsUnavailable("the tests must run as root to create network namespaces")
    for tool, probe in (("ip", ["ip", "netns", "list"]), ("iptables", ["iptables", "--version"])):
        try:
            done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
        except FileNotFoundError:
            raise NetnsUnavailable(f"`{tool}` is not installed (Debian packages iproute2, iptables)") from None
        if done.returncode:
            raise NetnsUnavailable(f"`{' '.join(probe)}` failed: {done.stderr.strip()}")


def create(n: int) -> Network:
    """Build a network of n hosts (1 <= n <= 250) and return it; the caller must close() it (or use `with`).
    Removes leftovers of dead runs first. Raises NetnsUnavailable when the machine cannot do it."""
    if not 1 <= n <= 250:
        raise ValueError(f"n must be 1..250, got {n}")
    _check_capable()
    tag = f"cnt{os.getpid():x}-{next(_sequence):x}"
    assert len(f"{tag}v{n}") <= MAX_INTERFACE_NAME, tag
    with _allocation_lock():
        remove_stale()
        subnet = _free_subnet()
        gateway = str(subnet.network_address + 1)
        network = Network(tag, subnet, gateway)
        _ip("link", "add", network.bridge, "type", "bridge")
        _ip("addr", "add", f"{gateway}/{subnet.prefixlen}", "dev", network.bridge)
    try:
        _ip("link", "set", network.bridge, "up")
        network._forward_rules = _allow_bridged_forwarding(network.bridge, tag)
        for index in range(1, n + 1):
            host = Host(f"{tag}-{index}", index, str(subnet.network_address + 1 + index))
            _ip("netns", "add", host.name)
            network.hosts.append(host)  # from here on close() removes it, whatever fails next
            _connect(network, host)
    except BaseException:
        network.close()
        raise
    return network


def _connect(network: Network, host: Host) -> None:
    """A veth pair from the bridge into the host's namespace, with the host's address; loopback up."""
    outside, inside = f"{network.tag}v{host.index}", f"{network.tag}p{host.index}"
    _ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", host.name)
    _ip("link", "set", outside, "master", network.bridge, "up")
    _ip("-n", host.name, "link", "set", "lo", "up")
    _ip("-n", host.name, "addr", "add", f"{host.address}/{network.subnet.prefixlen}", "dev", inside)
    _ip("-n", host.name, "link", "set", inside, "up")


def _allow_bridged_forwarding(bridge: str, tag: str) -> list[list[str]]:
    """With br_netfilter loaded, frames crossing the bridge pass the root namespace's iptables FORWARD chain,
    which hosts running Docker set to DROP. Accept this bridge's traffic first in every iptables backend whose
    FORWARD chain is not a bare ACCEPT; returns the rules added, as argv to delete them."""
    sysctl = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    if not sysctl.exists() or sysctl.read_text().strip() != "1":
        return []
    added = []
    for iptables in _iptables_backends():
        listing = subprocess.run([iptables, "-w", "-S", "FORWARD"], capture_output=True, text=True, timeout=30)
        if listing.returncode or listing.stdout.strip() == "-P FORWARD ACCEPT":
            continue
        rule = ["FORWARD", "-i", bridge, "-o", bridge, "-m", "comment", "--comment", tag, "-j", "ACCEPT"]
        subprocess.run([iptables, "-w", "-I", *rule], capture_output=True, text=True, check=True, timeout=30)
        added.append([iptables, "-w", "-D", *rule])
    return added


def _iptables_backends() -> list[str]:
    """The iptables backends whose rules apply here: nftables, and legacy x_tables only if tables of it are
    loaded (listing them would load them)."""
    legacy = Path("/proc/net/ip_tables_names")
    backends = ["iptables-nft"]
    if legacy.exists() and legacy.read_text().strip():
        backends.append("iptables-legacy")
    return [backend for backend in backends if shutil.which(backend)]


@contextlib.contextmanager
def _allocation_lock():
    """Serialises stale cleanup and subnet choice between concurrent test runs on this machine."""
    with open(LOCK_PATH, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 of ADDRESS_SPACE that no address or route of the root namespace overlaps; starts at a
    pid-derived offset so concurrent runs rarely probe the same ones."""
    taken = []
    for listing in (_ip("-j", "-4", "addr", "show").stdout, _ip("-j", "-4", "route", "show", "table", "all").stdout):
        for entry in json.loads(listing or "[]"):
            for address in entry.get("addr_info", []):
                taken.append(ipaddress.ip_network(f"{address['local']}/{address['prefixlen']}", strict=False))
            destination = entry.get("dst", "default")
            if destination != "default":
                taken.append(ipaddress.ip_network(destination, strict=False))
    candidates = list(ADDRESS_SPACE.subnets(new_prefix=24))
    start = os.getpid() % len(candidates)
    for subnet in candidates[start:] + candidates[:start]:
        if not any(subnet.overlaps(other) for other in taken):
            return subnet
    raise NetnsUnavailable(f"no free /24 left in {ADDRESS_SPACE}")


def remove_stale() -> list[str]:
    """Remove namespaces, interfaces and forwarding rules left by test runs whose process is gone (a crashed
    or killed pytest); returns the tags removed. Nothing of a live process is touched."""
    namespaces = [line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line.strip()]
    links = [link["ifname"] for link in json.loads(_ip("-j", "link", "show").stdout or "[]")]
    tags = {match["tag"] for match in map(NAME.match, [*namespaces, *links]) if match}
    rules = _tagged_forward_rules()
    tags |= {tag for tag, _ in rules}
    stale = sorted(tag for tag in tags if not Path(f"/proc/{int(TAG.match(tag)['pid'], 16)}").exists())
    for tag in stale:
        _remove(tag, [name for name in namespaces if name.startswith(f"{tag}-")],
                [rule for owner, rule in rules if owner == tag])
    return stale


def _tagged_forward_rules() -> list[tuple[str, list[str]]]:
    """(tag, argv that deletes it) for every FORWARD rule a run added (_allow_bridged_forwarding)."""
    rules = []
    for iptables in _iptables_backends():
        listing = subprocess.run([iptables, "-w", "-S", "FORWARD"], capture_output=True, text=True, timeout=30)
        for line in listing.stdout.splitlines():
            comment = re.search(r'--comment "?(cnt[0-9a-f]+-[0-9a-f]+)"?', line)
            if comment and line.startswith("-A "):
                rules.append((comment[1], [iptables, "-w", "-D", *line.split()[1:]]))
    return rules


def _remove(tag: str, namespaces: list[str], forward_rules: list[list[str]]) -> list[str]:
    """Kill what runs in the namespaces, delete the run's veths (both ends at once), its bridge, the namespaces
    and the forwarding rules. Each step runs even if an earlier one failed; returns the failures."""
    errors = []
    for namespace in namespaces:
        try:
            _kill_processes_in(namespace)
        except (OSError, subprocess.SubprocessError, RuntimeError) as error:
            errors.append(f"processes in {namespace}: {error}")
    present = [link["ifname"] for link in json.loads(_ip("-j", "link", "show").stdout or "[]")]
    links = [name for name in present if (match := NAME.match(name)) and match["tag"] == tag]
    # veths first (deleting one end deletes its peer inside the namespace), the bridge last.
    for link in sorted(links, key=lambda name: name.endswith("b")):
        deleted = _ip("link", "del", link, check=False)
        if deleted.returncode and "Cannot find device" not in deleted.stderr:
            errors.append(f"link {link}: {deleted.stderr.strip()}")
    for namespace in namespaces:
        deleted = _ip("netns", "del", namespace, check=False)
        if deleted.returncode and "No such file" not in deleted.stderr:
            errors.append(f"netns {namespace}: {deleted.stderr.strip()}")
    for rule in forward_rules:
        deleted = subprocess.run(rule, capture_output=True, text=True, timeout=30)
        if deleted.returncode:
            errors.append(f"{' '.join(rule)}: {deleted.stderr.strip()}")
    return errors


def _kill_processes_in(namespace: str) -> None:
    """SIGKILL every process in the namespace and wait until none is left (a deadline, then RuntimeError)."""
    deadline = time.monotonic() + KILL_DEADLINE_SECONDS
    while True:
        listing = _ip("netns", "pids", namespace, check=False)
        pids = [int(pid) for pid in listing.stdout.split()] if listing.returncode == 0 else []
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} survived SIGKILL")
        time.sleep(0.05)


@pytest.fixture
def netns_network():
    """Factory: netns_network(n) -> a Network of n hosts, removed at the end of the test whatever happens.
    Skips (fails in CI) where namespaces are unavailable."""
    require_netns()
    networks: list[Network] = []

    def build(n: int) -> Network:
        network = create(n)
        networks.append(network)
        return network

    yield build
    errors = []
    for network in networks:
        try:
            network.close()
        except RuntimeError as error:
            errors.append(str(error))
    assert not errors, errors


def start_count_node(count_server, host: Host, port: int = 8080, **env):
    """A real Count server (the `count_server` factory of tests/conftest.py) inside `host`'s namespace, bound
    to host.address:port (each namespace has its own ports, so every node may use the same one). `env` as for
    count_server, e.g. CLUSTER_ENABLED=true, CLUSTER_NODES=network.cluster_nodes(port), NODE_ID=host.index.
    Returns the started CountServer; its url is http://<address>:<port>, reachable from the root namespace."""
    return count_server(command_prefix=host.command_prefix(), BIND_ADDRESS=f"{host.address}:{port}", **env)
