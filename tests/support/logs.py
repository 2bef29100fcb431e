"""Reading a test server's JSON log lines (countdb/obs/logging.py) back as dicts."""

from __future__ import annotations

import json


def json_lines(server) -> list[dict]:
    """Every JSON log line the server has written so far (gunicorn's plain start-up lines are skipped)."""
    events = []
    for line in server.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def access_lines(server) -> list[dict]:
    return [event for event in json_lines(server) if event.get("logger") == "countdb.access"]
