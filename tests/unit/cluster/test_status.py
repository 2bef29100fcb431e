"""What `countdb cluster status` prints: the members table, and a membership change with its progress and ETA."""

from countdb.cluster.status import render_status

NOW = 1_000.0


def status(ring: dict) -> dict:
    members = [{"node": n, "address": f"n{n}:1", "self": n == 1, "state": "up", "in_ring": n != 4,
                "last_contact": NOW - 0.5, "error": "", "ring_share": 0.25, "hints_pending": 0} for n in (1, 2, 3, 4)]
    return {"members": members, "majority": True, "replication_factor": 2, "write_consistency": "quorum",
            "anti_entropy": {}, "ring": ring}


def test_a_settled_cluster_shows_no_change_and_a_node_that_left_is_marked():
    text = render_status(status({"phase": "settled", "settled": ["n1:1"], "target": ["n1:1"], "move": {}}), NOW)
    assert "membership change" not in text
    assert "up, not in the ring" in text.splitlines()[4]


def test_a_move_in_progress_shows_its_phase_points_bytes_and_eta():
    move = {"phase": "moving", "started": NOW - 30, "rounds_done": 0, "rounds": 2, "peers": 3, "peers_done": 2,
            "points": 1200, "bytes": 34567, "cells_differing": 0}
    ring = {"phase": "moving", "settled": ["n1:1", "n2:1", "n3:1"], "target": ["n1:1", "n2:1", "n3:1", "n4:1"],
            "move": move}
    text = render_status(status(ring), NOW)
    assert "membership change: moving (from 3 nodes to 4: n1:1, n2:1, n3:1, n4:1)" in text
    assert "2 of at most 6 node pairs done, 1200 points (34567 bytes) moved in 30 s, about 60 s left" in text


def test_settling_shows_what_was_dropped_and_what_waits_for_a_flush():
    ring = {"phase": "settling", "settled": ["n1:1"], "target": ["n1:1", "n2:1"],
            "move": {"phase": "settling", "dropped_points": 5000, "waiting_for_flush": 12}}
    assert "5000 points dropped, 12 waiting for their flush" in render_status(status(ring), NOW)


def test_a_node_still_catching_up_is_marked_and_a_caught_up_one_is_not():
    document = status({"phase": "settled", "settled": ["n1:1"], "target": ["n1:1"], "move": {}})
    document["members"][1]["caught_up"] = False
    document["members"][2]["caught_up"] = True
    lines = render_status(document, NOW).splitlines()
    assert "up, catching up" in lines[2] and "catching up" not in lines[3]
