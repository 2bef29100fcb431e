"""How `countdb cluster status` shows GET /cluster/status: one table, as `nodetool status` does.

Invariant: a pure function of the status document and the time, so what operators read is tested as text.
"""

from __future__ import annotations


def render_status(status: dict, now: float) -> str:
    """The members table, then one line on writes and one per peer on the last anti-entropy round."""
    rows = [("node", "address", "state", "last contact", "ring share", "hints pending")]
    for member in status["members"]:
        contact = member["last_contact"]
        state = member["state"]
        if state == "up" and member.get("caught_up") is False:
            state += ", catching up"  # one-series reads ask its co-owners too (docs/cluster.md)
        if not member.get("in_ring", True):
            state += ", not in the ring"
        rows.append((f"{member['node']}{' (this)' if member['self'] else ''}", member["address"], state,
                     "never" if not contact else f"{max(0.0, now - contact):.1f} s ago",
                     f"{100 * member['ring_share']:.1f} %", str(member["hints_pending"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    for member in status["members"]:
        if member["error"]:
            lines.append(f"node {member['node']}: {member['error']}")
    writes = "accepted" if status["majority"] else "REFUSED (this node reaches fewer than a majority)"
    lines.append(f"replication factor {status['replication_factor']}, write consistency "
                 f"{status['write_consistency']}: writes {writes}")
    lines += ring_lines(status.get("ring") or {}, now)
    rounds = status.get("anti_entropy") or {}
    if not rounds:
        lines.append("anti-entropy: no round finished yet")
    for peer, report in sorted((rounds.get("peers") or {}).items()):
        ago = f"{max(0.0, now - rounds['finished']):.0f} s ago"
        if "error" in report:
            lines.append(f"anti-entropy with node {peer} ({ago}): stopped: {report['error']}")
        else:
            lines.append(f"anti-entropy with node {peer} ({ago}): {report['cells_differing']} of "
                         f"{report['cells_compared']} cells differed; pushed {report['points_pushed']} points, "
                         f"pulled {report['points_pulled']}, sent {report['tombstones_sent']} deletes")
    return "\n".join(lines)


def ring_lines(ring: dict, now: float) -> list[str]:
    """The membership change in progress, if any: its phase, the rings, and the move's progress and ETA."""
    if not ring or ring.get("phase", "settled") == "settled":
        return []
    lines = [f"membership change: {ring['phase']} (from {len(ring['settled'])} nodes to {len(ring['target'])}: "
             f"{', '.join(ring['target'])})"]
    move = ring.get("move") or {}
    if move.get("phase") == "moving" and move.get("peers"):
        done, total = move["peers_done"], move["rounds"] * move["peers"]
        elapsed = max(0.0, now - move["started"])
        eta = f", about {elapsed * (total - done) / done:.0f} s left" if 0 < done < total else ""
        lines.append(f"moving series: round {move['rounds_done'] + 1} of at most {move['rounds']}, "
                     f"{done} of at most {total} node pairs done, {move['points']} points ({move['bytes']} bytes) "
                     f"moved in {elapsed:.0f} s{eta}")
        if move.get("error"):
            lines.append(f"moving series: last attempt stopped: {move['error']}")
    if move.get("phase") == "settling":
        lines.append(f"dropping the series this node gave away: {move['dropped_points']} points dropped, "
                     f"{move['waiting_for_flush']} waiting for their flush")
    return lines
