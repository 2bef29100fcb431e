"""Time buckets for step= queries: step durations, fill policies, and filling the empty buckets of a series.

Invariant: buckets are aligned to the Unix epoch (`ts - ts % step_ms`) and labelled by their start, so the
same step always cuts time at the same instants, whatever the query's start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from countdb.errors import InvalidInput

UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
MAX_STEP_MS = 100 * 366 * 86_400_000
FILLS = ("none", "null", "previous", "linear")
# NOTE: at most 18 ASCII digits a part: int() refuses over 4,300 digits with ValueError (issue 14: was a 500)
_DURATION = re.compile(r"(?:([0-9]{1,18})(ms|s|m|h|d|w))")


def parse_step(text: str) -> int:
    """A duration such as `10s`, `1m`, `1h30m`, `1d` (units ms s m h d w) in milliseconds; InvalidInput naming
    `step` otherwise. A bare number is refused: seconds (Prometheus) and milliseconds (Count) would both be
    plausible readings."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + unit for n, unit in parts) != text.strip():
        raise InvalidInput(f"step: {text!r} is not a duration such as 10s, 1m, 1h or 1d (units: "
                           f"{', '.join(UNIT_MS)})", field="step")
    step_ms = sum(int(n) * UNIT_MS[unit] for n, unit in parts)
    if not 0 < step_ms <= MAX_STEP_MS:
        raise InvalidInput(f"step: {text!r} must be between 1ms and 100 years", field="step")
    return step_ms


@dataclass(frozen=True)
class Fill:
    """What an empty bucket answers: nothing (`none`), null, the previous bucket's value, a straight line
    between its neighbours (`linear`), or a constant `number`."""

    policy: str
    number: float | None = None


def parse_fill(text: str | None) -> Fill:
    if text is None or text.lower() in FILLS:
        return Fill((text or "none").lower())
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if number != number or number in (float("inf"), float("-inf")):
        raise InvalidInput(f"fill: {text!r} is not one of {', '.join(FILLS)} or a finite number", field="fill")
    return Fill("number", number)


def bucket_of(ts_ms: int, step_ms: int) -> int:
    return ts_ms - ts_ms % step_ms


def bucket_count(start_ms: int, end_ms: int, step_ms: int) -> int:
    """How many buckets [start_ms, end_ms] touches."""
    return (bucket_of(end_ms, step_ms) - bucket_of(start_ms, step_ms)) // step_ms + 1


def fill_buckets(timestamps: pa.Array, values: pa.Array, start_ms: int, end_ms: int, step_ms: int,
                 fill: Fill) -> tuple[pa.Array, pa.Array]:
    """Every bucket from bucket_of(start_ms) to bucket_of(end_ms), given the non-empty ones (timestamps: sorted
    bucket starts inside that span; values: their aggregates, possibly null). Empty buckets get `fill`;
    `previous` and `linear` leave null where no bucket precedes (or, for linear, follows) with a value."""
    first = bucket_of(start_ms, step_ms)
    grid = pa.arange(first, bucket_of(end_ms, step_ms) + 1, step_ms)
    present = pc.is_in(grid, value_set=timestamps)
    filled = pc.replace_with_mask(pa.nulls(len(grid), pa.float64()), present, values.cast(pa.float64()))
    if fill.policy == "number":
        filled = pc.if_else(present, filled, pa.scalar(fill.number, pa.float64()))
    elif fill.policy == "previous":
        filled = _forward(filled, present)
    elif fill.policy == "linear":
        filled = _linear(grid, filled, present)
    return grid, filled


def _forward(filled: pa.Array, present: pa.Array) -> pa.Array:
    """Each empty bucket takes the value of the nearest earlier non-empty one (a null aggregate stays null)."""
    return pc.if_else(present, filled, pc.fill_null_forward(filled))


def _linear(grid: pa.Array, filled: pa.Array, present: pa.Array) -> pa.Array:
    """Each empty bucket between two valued buckets lies on the straight line through them."""
    known = pc.if_else(pc.is_valid(filled), grid, pa.scalar(None, pa.int64()))
    before_ts, after_ts = pc.fill_null_forward(known), pc.fill_null_backward(known)
    before, after = pc.fill_null_forward(filled), pc.fill_null_backward(filled)
    span = pc.subtract(after_ts, before_ts).cast(pa.float64())
    slope = pc.divide(pc.subtract(after, before), pc.if_else(pc.equal(span, 0.0), 1.0, span))
    line = pc.add(before, pc.multiply(slope, pc.subtract(grid, before_ts).cast(pa.float64())))
    return pc.if_else(present, filled, line)
