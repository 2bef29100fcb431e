"""The cluster agent: one process per node (started by the gunicorn master) that heartbeats the peers, delivers
hints to nodes that are back, and runs anti-entropy with each co-owner.

Invariant: the agent only talks HTTP, to its own node and to peers, and writes two files the workers read
(members.json, agent.json): every change to stored data goes through a node's own request handlers.
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
from countdb.cluster.digests import differing_cells, missing_tombstones, rows_missing
from countdb.cluster.hints import Hint, HintStore
from countdb.cluster.members import Member, write_members
from countdb.cluster.peers import PeerClient, PeerError
from countdb.cluster.wire import ARROW_STREAM, PARQUET, decode_stream, encode_segment, encode_stream
from countdb.config import Settings
from countdb.datadir import DataDir
from countdb.obs import metrics

log = logging.getLogger(__name__)

AGENT_FILE = "agent.json"
SEGMENT_ROWS = 250_000
HINTS_PER_REQUEST = 200
CELLS_PER_REQUEST = 32


class Agent:
    def __init__(self, settings: Settings, datadir: DataDir, peers: PeerClient):
        self.settings = settings
        self.datadir = datadir
        self.peers = peers
        self.hints = HintStore(datadir.hints)
        self.me = settings.node_index
        self.members = {node: Member(node, address, 0.0, None) for node, address in enumerate(settings.cluster_nodes)}
        self.repairs: dict = {}
        self._lock = threading.Lock()

    def is_up(self, node: int) -> bool:
        member = self.members[node]
        return node == self.me or time.time() - member.last_contact <= self.settings.failure_timeout_seconds

    def heartbeat(self) -> None:
        """Ask every peer for its heartbeat at once; record who answered, then publish the view."""
        # NOTE: a slow answer is still an answer: a peer counts as down only after FAILURE_TIMEOUT without one,
        # so one heartbeat may wait up to half of that (a loaded machine answers late, not never).
        timeout = min(self.settings.forward_timeout_seconds, self.settings.failure_timeout_seconds / 2)
        calls = {node: self.peers.pool.submit(self.peers.call, node, "GET", "/cluster/heartbeat",
                                              timeout_seconds=timeout)
                 for node in self.members if node != self.me}
        wait(calls.values())
        now = time.time()
        self.members[self.me] = Member(self.me, self.settings.cluster_nodes[self.me], now, PROTOCOL_VERSION)
        for node, call in calls.items():
            previous = self.members[node]
            try:
                answer = call.result().json()
            except (PeerError, ValueError) as error:
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
            self.members[node] = Member(node, previous.address, now, PROTOCOL_VERSION)
        write_members(self.datadir.cluster_state, list(self.members.values()))
        metrics.CLUSTER_MEMBERS_UP.set(sum(self.is_up(node) for node in self.members))

    def deliver_hints(self) -> None:
        """Send each node that is up the hints held for it, oldest first; stop at its first failure."""
        for target, count in self.hints.counts().items():
            metrics.CLUSTER_HINTS_PENDING.labels(str(target + 1)).set(count)
            if not count or not self.is_up(target):
                continue
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
                for hint in batch:
                    self.hints.delivered(hint)
                metrics.CLUSTER_HINTS_DELIVERED.inc(len(batch))
            metrics.CLUSTER_HINTS_PENDING.labels(str(target + 1)).set(len(self.hints.pending(target)))

    def anti_entropy(self) -> None:
        """Compare with every co-owner that is up and push what either side lacks."""
        started = time.time()
        report = {}
        for peer in self.members:
            if peer == self.me or not self.is_up(peer):
                continue
            try:
                report[str(peer + 1)] = self.repair_with(peer)
            except PeerError as error:
                report[str(peer + 1)] = {"error": str(error)}
                log.warning("anti-entropy with node %d stopped: %s", peer + 1, error)
        self.repairs = {"started": started, "finished": time.time(), "peers": report}
        self.write_state()

    def repair_with(self, peer: int) -> dict:
        """One round with `peer`: tombstones first (so no deleted point is copied back to life), then the
        digest cells that differ, narrowing each to the rows one side lacks. Returns what moved."""
        mine = self._post(self.me, "/cluster/digest", {"peer": peer}).json()
        theirs = self._post(peer, "/cluster/digest", {"peer": self.me}).json()
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
            here = decode_stream(self._post(self.me, "/cluster/cell", {**request, "peer": peer}).content)
            there = decode_stream(self._post(peer, "/cluster/cell", {**request, "peer": self.me}).content)
            pushed += self._push(peer, rows_missing(here, there))
            pulled += self._push(self.me, rows_missing(there, here))
        if cells:
            log.info("anti-entropy with node %d: %d cells differed; pushed %d points, pulled %d",
                     peer + 1, len(cells), pushed, pulled)
        return {"cells_compared": len(mine["cells"]), "cells_differing": len(cells), "points_pushed": pushed,
                "points_pulled": pulled, "tombstones_sent": len(missing_tombstones(mine["tombstones"],
                                                                                   theirs["tombstones"]))}

    def _push(self, node: int, rows) -> int:
        for start in range(0, rows.num_rows, SEGMENT_ROWS):
            data, address = encode_segment(rows.slice(start, SEGMENT_ROWS))
            self.peers.call(node, "POST", "/replicate", data, {"address": address},
                            headers={"Content-Type": PARQUET})
            metrics.CLUSTER_SEGMENTS_PUSHED.inc()
            metrics.CLUSTER_SEGMENT_BYTES.inc(len(data))
        metrics.CLUSTER_POINTS_REPAIRED.inc(rows.num_rows)
        return rows.num_rows

    def _post(self, node: int, path: str, document: dict):
        return self.peers.call(node, "POST", path, orjson.dumps(document), headers={"Content-Type": "application/json"})

    def write_state(self) -> None:
        folder = self.datadir.cluster_state
        temporary = folder / f".{AGENT_FILE}.{os.getpid()}"
        temporary.write_text(json.dumps({"anti_entropy": self.repairs}))
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
    """Heartbeats and hint delivery every HEARTBEAT_INTERVAL on one thread, anti-entropy every
    ANTI_ENTROPY_INTERVAL_SECONDS on another (a long repair must never delay a heartbeat)."""
    settings = agent.settings

    def beat() -> None:
        while not stop.is_set():
            started = time.monotonic()
            _guarded(agent.heartbeat)
            _guarded(agent.deliver_hints)
            stop.wait(max(0.0, settings.heartbeat_interval_seconds - (time.monotonic() - started)))

    def repair() -> None:
        while not stop.wait(settings.anti_entropy_interval_seconds):
            _guarded(agent.anti_entropy)

    threads = [threading.Thread(target=beat, name="heartbeat", daemon=True),
               threading.Thread(target=repair, name="anti-entropy", daemon=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
