"""Layout: where series live while the membership changes. Two rings: `settled`, the one every stored point is
placed by, and `target`, CLUSTER_NODES without the nodes that left. They are the same ring except during a
membership change, which goes through these phases (cluster/transition.py decides when each starts):

    waiting    this node's target differs from the settled ring; writes go to the owners in both rings
    moving     every node agrees on the target: anti-entropy streams each series to its new owners
    moved      this node finished a full round of that streaming
    switched   every node has moved: reads use the target ring (writes still go to both)
    settling   every node has switched: writes go to the target ring; this node drops what it no longer owns
    settled    the target ring is the settled ring (the normal state)

Invariant: every acknowledged point is, at every moment, on a write quorum of the owners of the ring reads use:
until `switched` writes need a quorum in both rings and reads use the settled one; from `switched` reads use the
target ring, which the streaming filled; a node drops a series only once no node reads or writes it there.
The agent writes node_state/cluster/ring.json; every worker reads it (reloaded when it changes).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from countdb.cluster.ring import Ring
from countdb.datadir import fsync_dir

LAYOUT_FILE = "ring.json"
PHASES = ("waiting", "moving", "moved", "switched", "settling", "settled")
RELOAD_SECONDS = 0.2


def phase_rank(phase: str) -> int:
    return PHASES.index(phase)


@dataclass(frozen=True)
class RingState:
    """What the agent persists: the settled and target rings' addresses, the addresses that left, the phase."""

    settled: tuple[str, ...]
    target: tuple[str, ...]
    left: tuple[str, ...] = ()
    phase: str = "settled"
    changed: float = field(default=0.0, compare=False)  # Unix seconds of the last phase change

    def to_json(self) -> dict:
        return {"settled": list(self.settled), "target": list(self.target), "left": list(self.left),
                "phase": self.phase, "changed": self.changed}

    @classmethod
    def from_json(cls, document: dict) -> "RingState":
        phase = document.get("phase", "settled")
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        return cls(tuple(document["settled"]), tuple(document["target"]), tuple(document.get("left", ())), phase,
                   document.get("changed", 0.0))

    def entering(self, phase: str) -> "RingState":
        return replace(self, phase=phase, changed=time.time())


def target_addresses(nodes: tuple[str, ...], left: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(address for address in nodes if address not in left)


class UnknownMember(ValueError):
    """A ring names an address this node's CLUSTER_NODES does not list."""


def ring_of(nodes: tuple[str, ...], addresses: tuple[str, ...] | list[str]) -> Ring:
    """The ring of `addresses`, numbered by their positions in `nodes`; raises UnknownMember."""
    unknown = [address for address in addresses if address not in nodes]
    if unknown:
        raise UnknownMember(f"{', '.join(unknown)} not in this node's CLUSTER_NODES")
    return _cached_ring(nodes, frozenset(nodes.index(address) for address in addresses))


_rings: dict[tuple, Ring] = {}
_rings_lock = threading.Lock()


def _cached_ring(nodes: tuple[str, ...], active: frozenset[int]) -> Ring:
    with _rings_lock:
        ring = _rings.get((nodes, active))
        if ring is None:
            if len(_rings) > 16:
                _rings.clear()
            ring = _rings[(nodes, active)] = Ring.build(nodes, active)
        return ring


@dataclass(frozen=True)
class Layout:
    nodes: tuple[str, ...]
    settled: Ring
    target: Ring
    phase: str
    replication_factor: int

    @classmethod
    def of(cls, nodes: tuple[str, ...], state: RingState | None, replication_factor: int) -> "Layout":
        """The layout of `state`; None (no agent decision yet): every listed node, settled."""
        if state is None:
            ring = ring_of(nodes, nodes)
            return cls(nodes, ring, ring, "settled", replication_factor)
        target = ring_of(nodes, state.target)
        settled = ring_of(nodes, state.settled)
        if settled == target:
            return cls(nodes, settled, target, "settled", replication_factor)
        # NOTE: a node restarted with another CLUSTER_NODES finds its last state "settled": the change begins
        return cls(nodes, settled, target, "waiting" if state.phase == "settled" else state.phase, replication_factor)

    @property
    def changing(self) -> bool:
        return self.phase != "settled"

    def _before(self, phase: str) -> bool:
        return phase_rank(self.phase) < phase_rank(phase)

    def write_rings(self) -> tuple[Ring, ...]:
        """The rings whose owners get every write and delete: both until this node settles its share."""
        return (self.settled, self.target) if self._before("settling") and self.changing else (self.target,)

    def quorum_rings(self) -> tuple[Ring, ...]:
        """The rings in which a write needs WRITE_CONSISTENCY copies: both until reads use the target."""
        return (self.settled, self.target) if self._before("switched") and self.changing else (self.target,)

    @property
    def read_ring(self) -> Ring:
        return self.settled if self._before("switched") and self.changing else self.target

    @property
    def merges_selections(self) -> bool:
        """Whether many-series reads merge other nodes' points with this node's by stamp instead of adding them:
        during a change a node may hold copies of series another node answers for."""
        return self.changing

    def owners(self, key: str) -> tuple[int, ...]:
        """Every node a write of `key` goes to: the owners in each write ring, settled ring's first."""
        found: list[int] = []
        for ring in self.write_rings():
            found += [node for node in ring.owners(key, self.replication_factor) if node not in found]
        return tuple(found)

    def keeps(self, key: str, node: int) -> bool:
        """Whether `node` stores points of `key` sent to it: anything until it settles, then what it owns."""
        return any(node in ring.owners(key, self.replication_factor) for ring in self.write_rings())

    def co_owned(self, key: str, node: int, peer: int) -> bool:
        """Whether anti-entropy between `node` and `peer` covers `key`: both own it in a ring writes use, or,
        while series move, one owns it in the settled ring and the other in the target ring."""
        if self.changing and self._before("switched"):
            owners = self.owners(key)
        else:
            owners = self.target.owners(key, self.replication_factor)
        return node in owners and peer in owners

    def voters(self) -> frozenset[int]:
        """The nodes a majority is counted over: the target ring's."""
        return self.target.active

    def kept_rows(self, table: pa.Table, node: int) -> pa.Table:
        """The rows of `table` (a `series` column) that `node` keeps: a node that settled drops the copies a
        coordinator still one phase behind sends it of series it gave away."""
        if table.num_rows == 0:
            return table
        column = table["series"]
        if not pa.types.is_dictionary(column.type):
            column = column.dictionary_encode()
        # NOTE: decided per dictionary entry and taken by index, no string copied: a coordinator's copy keeps its
        # request's whole dictionary, series of other owners included, though none of their rows (measured: a
        # cast of every copy's keys to strings was most of a peer's CPU for a write).
        kept = np.concatenate([
            np.fromiter((self.keeps(key, node) for key in chunk.dictionary.to_pylist()), bool,
                        len(chunk.dictionary))[chunk.indices.to_numpy(zero_copy_only=False)]
            for chunk in column.chunks])
        return table if kept.all() else table.filter(pa.array(kept))


def read_state(folder: Path) -> RingState | None:
    try:
        return RingState.from_json(json.loads((folder / LAYOUT_FILE).read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{folder / LAYOUT_FILE} is unreadable ({error}); restore it from a backup or remove "
                         f"it to let this node take the ring its peers report") from None


def write_state(folder: Path, state: RingState) -> None:
    """Atomically and durably replace ring.json (the agent's decision the workers follow)."""
    temporary = folder / f".{LAYOUT_FILE}.{os.getpid()}"
    with open(temporary, "w") as handle:
        handle.write(json.dumps(state.to_json()))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, folder / LAYOUT_FILE)
    fsync_dir(folder)


class LayoutFile:
    """The layout as one worker sees it, reloaded when ring.json changes. Thread-safe."""

    def __init__(self, folder: Path, nodes: tuple[str, ...], replication_factor: int):
        self.folder = folder
        self.nodes = nodes
        self.replication_factor = replication_factor
        self._lock = threading.Lock()
        self._checked = 0.0
        self._mtime = -1.0
        self._layout = Layout.of(nodes, None, replication_factor)

    def __call__(self) -> Layout:
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= RELOAD_SECONDS:
                self._checked = now
                self._reload()
            return self._layout

    def _reload(self) -> None:
        try:
            mtime = (self.folder / LAYOUT_FILE).stat().st_mtime
        except OSError:
            return
        if mtime != self._mtime:
            try:
                state = read_state(self.folder)
            except ValueError:
                return  # NOTE: the agent refuses to run on an unreadable file and says why; keep the last layout
            self._mtime = mtime
            self._layout = Layout.of(self.nodes, state, self.replication_factor)
