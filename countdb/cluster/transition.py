"""Transition: when a node moves from one phase of a membership change to the next (cluster/layout.py lists
them), decided by its agent after each heartbeat round from what every node of both rings reported.

Invariant: a node advances only on what all nodes of both rings reported in the same round (a node that did not
answer holds everyone back), and only forward: waiting -> moving needs every node to agree on both rings and to
hold no hints (a hinted write may be on no owner yet, and streaming only moves what owners hold); switched and
settling need every node at least one phase behind. moving -> moved and settling -> settled are the agent's
own work (a finished streaming round; a finished drop), not decided here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from countdb.cluster.layout import PHASES, RingState, phase_rank, target_addresses


@dataclass(frozen=True)
class PeerView:
    """What a peer's heartbeat said of its ring state."""

    settled: tuple[str, ...]
    target: tuple[str, ...]
    left: tuple[str, ...]
    phase: str
    hints_pending: int

    @classmethod
    def from_heartbeat(cls, answer: dict) -> "PeerView | None":
        """None for a peer that reports no ring (a version before membership changes, or before its first
        decision)."""
        ring = answer.get("ring")
        if not isinstance(ring, dict) or ring.get("phase") not in PHASES:
            return None
        return cls(tuple(ring["settled"]), tuple(ring["target"]), tuple(ring.get("left", ())), ring["phase"],
                   int(answer.get("hints_pending", 0)))

    def rank_towards(self, target: tuple[str, ...]) -> int:
        """How far this peer is in a change to `target`: a peer already settled on it is done."""
        if self.settled == target and self.phase == "settled":
            return phase_rank("settled")
        return phase_rank(self.phase) if self.target == target else -1


def learned_left(nodes: tuple[str, ...], state: RingState, views: dict[int, PeerView | None]) -> tuple[str, ...]:
    """The addresses that left, as this node knows them and as any peer reported them, in list order."""
    known = set(state.left)
    for view in views.values():
        if view is not None:
            known.update(view.left)
    return tuple(address for address in nodes if address in known)


def participants(nodes: tuple[str, ...], state: RingState, me: int) -> list[int]:
    """The peers every step of the change waits for: the nodes of both rings."""
    members = set(state.settled) | set(state.target)
    return [number for number, address in enumerate(nodes) if address in members and number != me]


class Transition:
    """One agent's decisions; remembers since when every peer has switched (the grace before dropping)."""

    def __init__(self, nodes: tuple[str, ...], me: int, grace_seconds: float):
        self.nodes = nodes
        self.me = me
        self.grace_seconds = grace_seconds
        self._switched_since: float | None = None

    def advance(self, state: RingState, views: dict[int, PeerView | None], hints_pending: int,
                now: float) -> RingState:
        """The state after this heartbeat round (the same object when nothing changes)."""
        left = learned_left(self.nodes, state, views)
        if left != state.left:
            state = replace(state, left=left)
        target = target_addresses(self.nodes, left)
        if state.phase == "settled" or (target == state.settled and state.phase != "settling"):
            if target != state.settled:
                return replace(state, target=target).entering("waiting")
            # NOTE: a change undone before anything was dropped (the node that was joining left): nothing moved
            return state if state.phase == "settled" else replace(state, target=target).entering("settled")
        if target != state.target and state.phase != "settling":
            # NOTE: the target changed mid-change (another leave): start over from the settled ring
            return replace(state, target=target).entering("waiting")
        peers = participants(self.nodes, state, self.me)
        ranks = [self._rank(views.get(peer), state) for peer in peers]
        if state.phase == "waiting":
            quiet = hints_pending == 0 and all(views[peer].hints_pending == 0 for peer in peers
                                                if views.get(peer) is not None)
            if quiet and min(ranks, default=phase_rank("settled")) >= phase_rank("waiting"):
                return state.entering("moving")
        elif state.phase == "moved" and min(ranks, default=phase_rank("settled")) >= phase_rank("moved"):
            return state.entering("switched")
        elif state.phase == "switched":
            if min(ranks, default=phase_rank("settled")) < phase_rank("switched"):
                self._switched_since = None
            elif self._switched_since is None:
                self._switched_since = now
            elif now - self._switched_since >= self.grace_seconds:
                self._switched_since = None
                return state.entering("settling")
        return state

    @staticmethod
    def _rank(view: PeerView | None, state: RingState) -> int:
        """A peer's phase in this change; -1 when it did not answer or is on another change."""
        if view is None or view.settled not in (state.settled, state.target):
            return -1
        return view.rank_towards(state.target)
