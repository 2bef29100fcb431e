"""The durability check every crash and backup test ends with: each acknowledged point is there exactly once."""

from __future__ import annotations


def assert_exactly_once(node, acked: dict[str, list[int]], *, end_ms: int, label: str = "") -> None:
    """Every timestamp in `acked[series]` is returned once by /query/range over [0, end_ms], with the value the
    tests write (the timestamp as a float), and no timestamp twice."""
    for series, timestamps in acked.items():
        assert timestamps, f"{label}{series}: no acknowledged writes"
        got = node.get(f"/query/range/{series}", params={"start": 0, "end": end_ms}).json()
        returned = [p["timestamp"] for p in got]
        assert len(returned) == len(set(returned)), f"{label}{series}: duplicated points"
        missing = set(timestamps) - set(returned)
        assert not missing, f"{label}{series}: {len(missing)} acknowledged points lost, e.g. {sorted(missing)[:5]}"
        assert all(p["value"] == float(p["timestamp"]) for p in got)
