"""The cluster agent: one process per node (started by the gunicorn master) that heartbeats the peers, delivers
hints to nodes that are back, runs anti-entropy with each co-owner, and carries this node through membership
changes (cluster/layout.py): it streams series to their new owners and has its node drop what it gave away.

Invariant: the agent only talks HTTP, to its own node and to peers, and writes the files the workers read
(members.json, agent.json, ring.json): every change to stored data goes through a node's own request handlers.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import wait

import orjson
import pyarrow as pa

from countdb.cluster.auth import PROTOCOL_VERSION
from countdb.cluster.deletes import DELETE_PATH
from countdb.cluster.digests import differing_cells, missing_tombstones, rows_missing, stamped_before
from countdb.cluster.hints import Hint, HintStore
from countdb.cluster.layout import RingState, read_state, target_addresses, write_state
from countdb.cluster.members import Member, write_members
from countdb.cluster.peers import PeerClient, PeerError
from countdb.cluster.transition import PeerView, Transition, participants
from countdb.cluster.wire import ARROW_STREAM, PARQUET, decode_stream, encode_segment, encode_stream
from countdb.config import Settings
from countdb.datadir import DataDir
from countdb.obs import metrics

log = logging.getLogger(__name__)

AGENT_FILE = "agent.json"
LEAVE_FILE = "leave.json"
HANDOFF_PATH = "/cluster/handoff"
SEGMENT_ROWS = 250_000
HINTS_PER_REQUEST = 200
CELLS_PER_REQUEST = 32
PAUSE_PER_ROUND_SECOND = 9.0
"""A round's pause is at least this many times as long as the last whole round took, so anti-entropy takes about a
tenth of the time at most (its digests hash every point two nodes share, which grows with the data), until the
pause reaches MAX_PAUSE_INTERVALS intervals: a store that large needs a longer ANTI_ENTROPY_INTERVAL_SECONDS."""
MAX_PAUSE_INTERVALS = 4


class Agent:
    def __init__(self, settings: Settings, datadir: DataDir, peers: PeerClient):
        self.settings = settings
        self.datadir = datadir
        self.peers = peers
        self.hints = HintStore(datadir.hints)
        self.me = settings.node_index
        self.members = {node: Member(node, address, 0.0, None) for node, address in enumerate(settings.cluster_nodes)}
        self.repairs: dict = {}
        self.compared_with_all = False  # an anti-entropy round reached every peer since this agent started
        self.hints_for_me: dict[int, int] = {}  # per peer that answered its last heartbeat: hints it holds for us
        self.move: dict = {}
        self.ring_state: RingState | None = read_state(datadir.cluster_state)
        # NOTE: every worker must have seen "switched" before a node drops anything; a few heartbeats cover
        # the workers' reload of ring.json and the requests they had in flight
        self.transition = Transition(settings.cluster_nodes, self.me,
                                     grace_seconds=max(2.0, 4 * settings.heartbeat_interval_seconds))
        self._lock = threading.Lock()

    def is_up(self, node: int) -> bool:
        member = self.members[node]
        return node == self.me or time.time() - member.last_contact <= self.settings.failure_timeout_seconds

    def heartbeat(self) -> None:
        """Ask every peer for its heartbeat at once; record who answered, publish the view, then take the next
        step of a membership change if every node is ready for it."""
        # NOTE: a slow answer is still an answer: a peer counts as down only after FAILURE_TIMEOUT without one,
        # so one heartbeat may wait up to half of that (a loaded machine answers late, not never).
        timeout = min(self.settings.forward_timeout_seconds, self.settings.failure_timeout_seconds / 2)
        calls = {node: self.peers.pool.submit(self.peers.call, node, "GET", "/cluster/heartbeat",
                                              timeout_seconds=timeout)
                 for node in self.members if node != self.me}
        wait(calls.values())
        now = time.time()
        views: dict[int, PeerView | None] = {}
        for node, call in calls.items():
            previous = self.members[node]
            self.hints_for_me.pop(node, None)
            try:
                answer = call.result().json()
                views[node] = PeerView.from_heartbeat(answer)
                # NOTE: a peer too old to say counts as holding some
                self.hints_for_me[node] = int(answer.get("hints_for_you", 1))
            except (PeerError, ValueError, KeyError, TypeError) as error:
                self.members[node] = Member(node, previous.address, previous.last_contact, previous.protocol,
                                            str(error))
                continue
            if answer.get("protocol") != PROTOCOL_VERSION:
                problem = (f"node {node + 1} speaks cluster protocol {answer.get('protocol')}, this node "
                           f"{PROTOCOL_VERSION}: it is treated as down until both run compatible versions")
                if previous.error != problem:
                    log.error("%s", problem)
                self.members[node] = Member(node, previous.address, previous.last_contact, answer.get("protocol"),
                                            problem)
                continue
            if not self.is_up(node):
                log.info("node %d (%s) is up", node + 1, previous.address)
            self.members[node] = Member(node, previous.address, now, PROTOCOL_VERSION,
                                        caught_up=answer.get("caught_up") is True)
        self.members[self.me] = Member(self.me, self.settings.cluster_nodes[self.me], now, PROTOCOL_VERSION,
                                       caught_up=self.caught_up())
        write_members(self.datadir.cluster_state, list(self.members.values()))
        metrics.CLUSTER_MEMBERS_UP.set(sum(self.is_up(node) for node in self.members))
        self.follow_ring({node: view for node, view in views.items() if self.members[node].last_contact == now})

    def follow_ring(self, views: dict[int, PeerView | None]) -> None:
        """Decide this node's ring state from this round's answers (`views` holds the peers that answered)."""
        nodes = self.settings.cluster_nodes
        with self._lock:
            state = self.ring_state
            if state is None:
                state = self._first_state(views)
                if state is None:
                    return
            if self._leave_requested() and nodes[self.me] not in state.left:
                log.info("node %d leaves the cluster: its series move to the other nodes", self.me + 1)
                state = RingState(state.settled, state.target, tuple(a for a in nodes if a in {*state.left, nodes[self.me]}),
                                  state.phase, state.changed)
            new = self.transition.advance(state, views, sum(self.hints.counts().values()), time.time())
            if new != self.ring_state:
                self._save(new)

    def _first_state(self, views: dict[int, PeerView | None]) -> RingState | None:
        """A node with no ring.json takes the settled ring its peers report (a node joining a running cluster),
        or, when a majority answered and none reports one (a new cluster, or one that never changed), the
        nodes of CLUSTER_NODES; None until one of the two holds."""
        nodes = self.settings.cluster_nodes
        reported = [view for view in views.values() if view is not None]
        if reported:
            settled = max({view.settled for view in reported}, key=[view.settled for view in reported].count)
            left = tuple(a for a in nodes if any(a in view.left for view in reported))
            target = target_addresses(nodes, left)
            return RingState(settled, target, left, "settled" if settled == target else "waiting", time.time())
        if len(views) + 1 > len(nodes) // 2:
            return RingState(nodes, nodes)
        return None

    def _save(self, state: RingState) -> None:
        if self.ring_state is None or state.phase != self.ring_state.phase:
            log.info("membership change: %s (settled ring %s, target ring %s)", state.phase,
                     ",".join(state.settled), ",".join(state.target))
        write_state(self.datadir.cluster_state, state)
        self.ring_state = state

    def caught_up(self) -> bool:
        """Whether this node holds every point acknowledged for its series, as far as it can tell: since it
        started, an anti-entropy round compared it with every peer (a node back from downtime, or with an empty
        data directory, lacks what was written meanwhile), and every peer answered its last heartbeat holding no
        hint for it. Until then one-series reads ask the other owners too (cluster/reads.py). A write hinted
        after that heartbeat is seen by the next one."""
        return self.compared_with_all and all(self.hints_for_me.get(node) == 0 for node in self._ring_peers())

    def _ring_peers(self) -> list[int]:
        """The other nodes of the ring this node serves (a node that left is no longer one), or of CLUSTER_NODES
        before a ring is decided."""
        nodes, state = self.settings.cluster_nodes, self.ring_state
        serving = set(nodes) if state is None else set(state.settled) | set(state.target)
        return [node for node, address in enumerate(nodes) if node != self.me and address in serving]

    def _leave_requested(self) -> bool:
        return (self.datadir.cluster_state / LEAVE_FILE).exists()

    def deliver_hints(self) -> None:
        """Send each node that is up the hints held for it, oldest first; stop at its first failure."""
        for target, count in self.hints.counts().items():
            metrics.CLUSTER_HINTS_PENDING.labels(str(target + 1)).set(count)
            if not count or not self.is_up(target):
                continue
            started, delivered = time.monotonic(), 0
            for batch in hint_batches(self.hints.pending(target)):
                try:
                    if batch[0].is_delete:
                        self.peers.call(target, "POST", DELETE_PATH, orjson.dumps(batch[0].delete_request()))
                    else:  # NOTE: many writes in one request: /cluster/write stores each with its own stamp
                        self.peers.call(target, "POST", "/cluster/write",
                                        encode_stream(pa.concat_tables([hint.points() for hint in batch])),
                                        headers={"Content-Type": ARROW_STREAM})
                except PeerError as error:
                    log.warning("hint delivery to node %d paused: %s", target + 1, error.cause)
                    break
                self.hints.delivered(batch)
                metrics.CLUSTER_HINTS_DELIVERED.inc(len(batch))
                delivered += len(batch)
            if delivered:
                log.info("delivered %d hints to node %d in %.1f s", delivered, target + 1, time.monotonic() - started)
            metrics.CLUSTER_HINTS_PENDING.labels(str(target + 1)).set(len(self.hints.pending(target)))

    def next_round_seconds(self) -> float:
        """Anti-entropy's pause: a heartbeat while the membership changes; else ANTI_ENTROPY_INTERVAL_SECONDS, or
        PAUSE_PER_ROUND_SECOND times the last whole round when that is longer (up to MAX_PAUSE_INTERVALS
        intervals)."""
        interval = self.settings.anti_entropy_interval_seconds
        if self.ring_state is not None and self.ring_state.phase != "settled":
            return min(self.settings.heartbeat_interval_seconds, interval)
        return min(max(interval, PAUSE_PER_ROUND_SECOND * self._last_round_seconds()), MAX_PAUSE_INTERVALS * interval)

    def _last_round_seconds(self) -> float:
        """How long the last anti-entropy round took; 0 for none yet, or one cut short by a peer that did not
        answer (it says nothing of what a round costs)."""
        last = self.repairs
        if not last or any("error" in part for part in last["peers"].values()):
            return 0.0
        return last["finished"] - last["started"]

    def step(self) -> None:
        """One round of the anti-entropy thread: streaming while series move, dropping while settling, else
        anti-entropy with every co-owner."""
        state = self.ring_state
        if state is not None and state.phase == "moving":
            self.stream_moves(state)
        elif state is not None and state.phase == "settling":
            self.hand_off(state)
        else:
            self.anti_entropy()

    def stream_moves(self, state: RingState) -> None:
        """Two full rounds with every node of both rings (cluster/layout.py co_owned: a series' settled owners
        push it to its target owners); then this node has moved. The first round copies what the settled
        owners held when the change began; anything written since went to both rings' owners, so what the
        second round still finds is writes in flight, logged."""
        peers = participants(self.settings.cluster_nodes, state, self.me)
        self.move = {"phase": "moving", "started": time.time(), "rounds_done": 0, "rounds": 2,
                     "peers": len(peers), "peers_done": 0, "points": 0, "bytes": 0, "cells_differing": 0}
        for round_number in range(2):
            differing = 0
            for peer in peers:
                try:
                    report = self.repair_with(peer)
                except PeerError as error:
                    log.warning("moving series with node %d stopped (retried next round): %s", peer + 1, error)
                    self.move["error"] = str(error)
                    self.write_state()
                    return
                differing += report["cells_differing"]
                self.move["peers_done"] += 1
                self.move["points"] += report["points_pushed"] + report["points_pulled"]
                self.write_state()
            self.move.update(rounds_done=round_number + 1, cells_differing=differing)
            if differing == 0:
                break
        log.info("moved this node's series to their new owners: %d points, %d bytes (%d cells still differed in "
                 "the last round: writes in flight)", self.move["points"], self.move["bytes"], differing)
        with self._lock:
            current = self.ring_state
            if current is not None and current.phase == "moving" and current.target == state.target:
                self._save(current.entering("moved"))
        self.write_state()

    def hand_off(self, state: RingState) -> None:
        """Have this node drop the series it no longer owns; settled once nothing of them is left."""
        if time.time() - state.changed < self.transition.grace_seconds:
            return
        try:
            answer = self._post(self.me, HANDOFF_PATH, {}).json()
        except PeerError as error:
            log.warning("dropping the series this node gave away failed (retried next round): %s", error)
            return
        self.move = {"phase": "settling", "dropped_points": self.move.get("dropped_points", 0) + answer["dropped"],
                     "waiting_for_flush": answer["unflushed"]}
        self.write_state()
        if answer["unflushed"]:
            return  # NOTE: points still in a WAL: the node flushes them now and the next round drops them
        with self._lock:
            current = self.ring_state
            if current is not None and current.phase == "settling":
                self._save(RingState(current.target, current.target, current.left, "settled", time.time()))

    def anti_entropy(self) -> None:
        """Compare with every co-owner that is up and push what either side lacks, among the points stamped
        more than FORWARD_TIMEOUT_SECONDS ago: a newer write's copies may still be on their way to their owners
        (or become hints), and comparing them made every round under steady writes push points that were about
        to arrive anyway (measured: half of a 3-node cluster's CPU during an ingest, at 5 s rounds)."""
        started = time.time()
        report = {}
        settled_before = time.time_ns() - int(self.settings.forward_timeout_seconds * 1e9)
        for peer in self.members:
            if peer == self.me or not self.is_up(peer):
                continue
            try:
                report[str(peer + 1)] = self.repair_with(peer, settled_before)
            except PeerError as error:
                report[str(peer + 1)] = {"error": str(error)}
                log.warning("anti-entropy with node %d stopped: %s", peer + 1, error)
        self.repairs = {"started": started, "finished": time.time(), "peers": report}
        if all("error" not in report.get(str(node + 1), {"error": "down"}) for node in self._ring_peers()):
            self.compared_with_all = True
        self.write_state()

    def repair_with(self, peer: int, settled_before: int | None = None) -> dict:
        """One round with `peer`: tombstones first (so no deleted point is copied back to life), then the
        digest cells that differ, narrowing each to the rows one side lacks; only points stamped before
        `settled_before` when given (a move's rounds and an operator's repair compare everything). Returns what
        moved."""
        mine = self._post(self.me, "/cluster/digest", {"peer": peer, "before": settled_before}).json()
        theirs = self._post(peer, "/cluster/digest", {"peer": self.me, "before": settled_before}).json()
        for node, tombstones in ((peer, missing_tombstones(mine["tombstones"], theirs["tombstones"])),
                                 (self.me, missing_tombstones(theirs["tombstones"], mine["tombstones"]))):
            for series, start, end, seq in tombstones:
                self._post(node, DELETE_PATH, {"series": series, "start": start, "end": end, "seq": seq})
        cells = differing_cells(mine["cells"], theirs["cells"])
        pushed = pulled = 0
        # NOTE: the cells of one month are asked for CELLS_PER_REQUEST at a time: a node refilled from nothing
        # differs in every cell, and one request per cell made that hundreds of round trips and flushes.
        for month, partitions in cell_batches(cells):
            request = {"month": month, "partitions": partitions}
            here = self._cell(self.me, {**request, "peer": peer}, settled_before)
            there = self._cell(peer, {**request, "peer": self.me}, settled_before)
            pushed += self._push(peer, rows_missing(here, there))
            pulled += self._push(self.me, rows_missing(there, here))
        if cells:
            log.info("anti-entropy with node %d: %d cells differed; pushed %d points, pulled %d",
                     peer + 1, len(cells), pushed, pulled)
        return {"cells_compared": len(mine["cells"]), "cells_differing": len(cells), "points_pushed": pushed,
                "points_pulled": pulled, "tombstones_sent": len(missing_tombstones(mine["tombstones"],
                                                                                   theirs["tombstones"]))}

    def _cell(self, node: int, request: dict, settled_before: int | None) -> pa.Table:
        return stamped_before(decode_stream(self._post(node, "/cluster/cell", request).data), settled_before)

    def _push(self, node: int, rows) -> int:
        for start in range(0, rows.num_rows, SEGMENT_ROWS):
            data, address = encode_segment(rows.slice(start, SEGMENT_ROWS))
            self.peers.call(node, "POST", "/replicate", data, {"address": address},
                            headers={"Content-Type": PARQUET})
            metrics.CLUSTER_SEGMENTS_PUSHED.inc()
            metrics.CLUSTER_SEGMENT_BYTES.inc(len(data))
            if "bytes" in self.move:
                self.move["bytes"] += len(data)
        metrics.CLUSTER_POINTS_REPAIRED.inc(rows.num_rows)
        return rows.num_rows

    def _post(self, node: int, path: str, document: dict):
        return self.peers.call(node, "POST", path, orjson.dumps(document), headers={"Content-Type": "application/json"})

    def write_state(self) -> None:
        folder = self.datadir.cluster_state
        temporary = folder / f".{AGENT_FILE}.{os.getpid()}"
        temporary.write_text(json.dumps({"anti_entropy": self.repairs, "move": self.move}))
        os.replace(temporary, folder / AGENT_FILE)


def hint_batches(hints: list[Hint]) -> list[list[Hint]]:
    """Pending hints in delivery order, grouped: consecutive point hints together up to HINTS_PER_REQUEST, each
    delete alone (a delete must land between the writes around it)."""
    batches: list[list[Hint]] = []
    for hint in hints:
        if hint.is_delete or not batches or batches[-1][0].is_delete or len(batches[-1]) >= HINTS_PER_REQUEST:
            batches.append([hint])
        else:
            batches[-1].append(hint)
    return batches


def cell_batches(cells: list[tuple[str, int]]) -> list[tuple[str, list[int]]]:
    """Differing cells as (month, up to CELLS_PER_REQUEST partitions) requests."""
    by_month: dict[str, list[int]] = {}
    for month, partition in cells:
        by_month.setdefault(month, []).append(partition)
    return [(month, partitions[i:i + CELLS_PER_REQUEST]) for month, partitions in sorted(by_month.items())
            for i in range(0, len(partitions), CELLS_PER_REQUEST)]


def _guarded(step) -> None:
    """Run one step of a loop; an unexpected error is logged with its traceback and the loop goes on."""
    try:
        step()
    except Exception:
        log.exception("cluster agent: %s failed; retrying next round", step.__name__)


def read_agent_state(datadir: DataDir) -> dict:
    """What the agent last reported (its last anti-entropy round); {} before its first."""
    try:
        return json.loads((datadir.cluster_state / AGENT_FILE).read_text())
    except (OSError, ValueError):
        return {}


def run(agent: Agent, stop: threading.Event) -> None:
    """Heartbeats every HEARTBEAT_INTERVAL on one thread, hint delivery on another, anti-entropy (and a membership
    change's streaming and drop) on a third: neither a long repair nor a backlog of hints may delay a heartbeat.
    NOTE: hints delivered on the heartbeat's thread once held it for longer than FAILURE_TIMEOUT after a node came
    back from a restart; every node then counted its peers down and refused writes as a minority."""
    settings = agent.settings

    def beat() -> None:
        while not stop.is_set():
            started = time.monotonic()
            _guarded(agent.heartbeat)
            stop.wait(max(0.0, settings.heartbeat_interval_seconds - (time.monotonic() - started)))

    def deliver() -> None:
        while not stop.wait(settings.heartbeat_interval_seconds):
            _guarded(agent.deliver_hints)

    def repair() -> None:
        while not stop.wait(agent.next_round_seconds()):
            _guarded(agent.step)

    threads = [threading.Thread(target=beat, name="heartbeat", daemon=True),
               threading.Thread(target=deliver, name="hint-delivery", daemon=True),
               threading.Thread(target=repair, name="anti-entropy", daemon=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
