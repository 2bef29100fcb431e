"""The PromQL syntax tree: immutable nodes the parser builds and the evaluator walks.

Invariant: every node the parser returns is one the evaluator supports; anything else was refused while parsing.
"""

from __future__ import annotations

from dataclasses import dataclass

from countdb.query.selectors import Matcher


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class VectorSelector:
    matchers: tuple[Matcher, ...]
    offset_ms: int = 0


@dataclass(frozen=True)
class MatrixSelector:
    vector: VectorSelector
    range_ms: int


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple


@dataclass(frozen=True)
class Aggregate:
    op: str
    expr: object
    param: object | None
    labels: tuple[str, ...]
    without: bool


@dataclass(frozen=True)
class Matching:
    on: bool  # True: on(labels); False: ignoring(labels)
    labels: tuple[str, ...]
    group: str | None  # "left", "right" or None (one-to-one)
    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class Binary:
    op: str
    lhs: object
    rhs: object
    matching: Matching | None
    bool_modifier: bool = False


@dataclass(frozen=True)
class Unary:
    expr: object


@dataclass(frozen=True)
class String:
    value: str
