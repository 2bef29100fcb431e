"""Which thread pool of a worker serves a request, chosen from its request line before any thread takes it.

Why three pools (each worker, see countdb/api/worker.py):
- **peer**: `/cluster/…` and `/replicate`. A client write or query that reaches a node which does not own all of it
  waits, in its thread, for the owners' answers (/cluster/write, /cluster/points…). With one pool per worker,
  enough concurrent clients fill every thread of every node with such waits, and the peers' requests they wait
  for queue behind them: every node waits on every other until FORWARD_TIMEOUT_SECONDS, and the clients get 503s
  (seen with 40 clients through nginx). Cassandra avoids this with a separate internode port and its own stages;
  Count keeps one port (CLUSTER_NODES and the shipped deployment files name one) and gives internal requests
  their own THREADS threads instead.
- **fast**: writes and probes. Slow queries, or clients that stop reading a large answer, never keep an insert or
  /health waiting (issue 14: hostile and careless connections).
- **query**: everything else, with THREADS compute slots.

Invariant: an internal request never waits for a client's thread. Internal handlers answer from this node alone,
except POST /cluster/repair (an operator's one anti-entropy round, which calls its co-owners' /cluster/digest and
/cluster/cell), so peer threads do not wait on each other in a cycle.
"""

from __future__ import annotations

import enum
import re

INTERNAL_REQUEST = re.compile(rb"[A-Z]{3,7} /(cluster/|replicate[ ?])")
FAST_REQUEST = re.compile(rb"(POST|PUT) /(insert|write|api/v[123]/write|api/v3/write_lp)[ ?]"
                          rb"|GET /(health|ready|metrics)[ ?]")


class Lane(enum.Enum):
    PEER = "peer"
    FAST = "fast"
    QUERY = "query"


def lane_of(request: bytes) -> Lane:
    """The lane of a request, from its first bytes (the request line)."""
    if INTERNAL_REQUEST.match(request):
        return Lane.PEER
    if FAST_REQUEST.match(request):
        return Lane.FAST
    return Lane.QUERY
