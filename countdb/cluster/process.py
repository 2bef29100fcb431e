"""The cluster agent process: reads the settings, announces itself to the gunicorn master, runs the agent until
SIGTERM/SIGINT or until its parent (the master) is gone."""

from __future__ import annotations

import logging
import logging.config
import os
import threading

from countdb.cluster.agent import Agent, run
from countdb.cluster.hints import HintStore
from countdb.cluster.layout import read_state
from countdb.cluster.peers import PeerClient, local_address
from countdb.config import Settings
from countdb.datadir import DataDir
from countdb.obs.logging import logging_config
from countdb.obs.readiness import announce_ready, stop_on_signals, wait_until_stopped

log = logging.getLogger(__name__)


def ring_problem(folder, nodes: tuple[str, ...]) -> str | None:
    """Why this node's ring state can't go with CLUSTER_NODES (None when it can): every node of the settled
    ring holds data, so none may be dropped from the list before it has left."""
    try:
        state = read_state(folder)
    except ValueError as error:
        return str(error)
    missing = [] if state is None else [address for address in state.settled if address not in nodes]
    if missing:
        return (f"CLUSTER_NODES lacks {', '.join(missing)}, which still hold series of the cluster: run "
                f"`countdb cluster leave` on a node before taking it out of the list")
    return None


def main() -> None:
    settings = Settings.from_env()
    logging.config.dictConfig(logging_config(settings.log_level))
    parent, stop = os.getppid(), stop_on_signals()
    datadir = DataDir(settings.data_dir).create()
    HintStore(datadir.hints).remove_leftovers()
    problem = ring_problem(datadir.cluster_state, settings.cluster_nodes)
    if problem:
        log.error("the cluster agent can't start: %s", problem)
        raise SystemExit(2)
    peers = PeerClient(settings.cluster_nodes, settings.node_index, settings.cluster_secret,
                       settings.forward_timeout_seconds, local_address(settings.bind_host, settings.bind_port))
    agent = Agent(settings, datadir, peers)
    # NOTE: one round before the master starts its workers, so a (re)started node knows who is up before its
    # first request: otherwise it would answer writes 503 (minority) until its first heartbeat, and a proxy
    # would take it out of rotation for nothing during a rolling restart (issue 12).
    agent.heartbeat()
    worker = threading.Thread(target=run, args=(agent, stop), name="cluster-agent", daemon=True)
    worker.start()
    announce_ready(0)
    log.info("cluster agent of node %d of %d: heartbeat every %g s, failure after %g s",
             settings.node_index + 1, len(settings.cluster_nodes), settings.heartbeat_interval_seconds,
             settings.failure_timeout_seconds)
    wait_until_stopped(stop, parent, log, "the cluster agent")
    peers.close()

