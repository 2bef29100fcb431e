"""How `countdb cluster status` shows GET /cluster/status: one table, as `nodetool status` does.

Invariant: a pure function of the status document and the time, so what operators read is tested as text.
"""

from __future__ import annotations


def render_status(status: dict, now: float) -> str:
    """The members table, then one line on writes and one per peer on the last anti-entropy round."""
    rows = [("node", "address", "state", "last contact", "ring share", "hints pending")]
    for member in status["members"]:
        contact = member["last_contact"]
        rows.append((f"{member['node']}{' (this)' if member['self'] else ''}", member["address"], member["state"],
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
