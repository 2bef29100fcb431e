"""A recursive-descent PromQL parser for the supported subset (see docs/prometheus.md).

Invariant: parse_promql returns an ast tree or raises InvalidInput(field="query") saying where and why,
including the name of any PromQL feature Count does not evaluate.
"""

from __future__ import annotations

import re

from countdb.errors import InvalidInput
from countdb.query.promql import ast
from countdb.query.selectors import NAME_TAG, Matcher

AGGREGATIONS = {"sum", "avg", "min", "max", "count", "topk", "bottomk", "quantile", "stddev", "stdvar"}
PARAM_AGGREGATIONS = {"topk", "bottomk", "quantile"}
# function name → argument kinds: "v" instant vector, "m" range vector, "s" scalar, "str" string; "?" optional
FUNCTIONS = {
    **{name: ("m",) for name in ("rate", "irate", "increase", "delta", "idelta", "deriv", "sum_over_time",
                                 "avg_over_time", "min_over_time", "max_over_time", "count_over_time",
                                 "last_over_time", "stddev_over_time", "stdvar_over_time", "present_over_time",
                                 "changes", "resets")},
    "quantile_over_time": ("s", "m"),
    "histogram_quantile": ("s", "v"),
    "abs": ("v",), "ceil": ("v",), "floor": ("v",), "sqrt": ("v",), "exp": ("v",), "ln": ("v",),
    "log2": ("v",), "log10": ("v",), "round": ("v", "s?"), "clamp": ("v", "s", "s"), "clamp_min": ("v", "s"),
    "clamp_max": ("v", "s"), "label_replace": ("v", "str", "str", "str", "str"), "time": (), "vector": ("s",),
    "scalar": ("v",),
}
_PRECEDENCE = [("or",), ("and", "unless"), ("==", "!=", "<=", ">=", "<", ">"), ("+", "-"), ("*", "/", "%", "atan2")]
_SET_OPERATORS = {"or", "and", "unless"}
_COMPARISONS = {"==", "!=", "<=", ">=", "<", ">"}
_TOKEN = re.compile(r"""\s*(?:
    (?P<duration>(?:\d+(?:ms|[smhdwy]))+(?![\w.]))
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|(?i:inf|nan)(?![\w:]))
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:.]*)
  | (?P<op>=~|!~|==|!=|<=|>=|[-+*/%^(){}\[\],=<>@])
)""", re.VERBOSE)
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000,
            "y": 31_536_000_000}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b", "f": "\f",
            "v": "\v"}


def parse_duration_ms(text: str) -> int:
    """`5m`, `1h30m`, `250ms` → milliseconds; InvalidInput if not a PromQL duration."""
    parts = re.findall(r"(\d+)(ms|[smhdwy])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise InvalidInput(f"bad duration {text!r}", field="query")
    return sum(int(n) * _UNIT_MS[u] for n, u in parts)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "" or text[pos:].lstrip().startswith("#"):
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise InvalidInput(f"query: unexpected character at {pos + 1}: {text[pos:pos + 10]!r}", field="query")
        out.append((match.lastgroup, match.group(match.lastgroup), match.start(match.lastgroup)))
        pos = match.end()
    out.append(("end", "", len(text)))
    return out


def _unquote(raw: str) -> str:
    if raw[0] == "`":
        return raw[1:-1]
    out, i, body = [], 0, raw[1:-1]
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def parse_promql(text: str):
    """The syntax tree of `text`; InvalidInput(field="query") for bad syntax or an unsupported feature."""
    parser = _Parser(text)
    node = parser.expression(0)
    parser.expect("end")
    return node


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, str, int]:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def next(self) -> tuple[str, str, int]:
        token = self.peek()
        self.pos += 1
        return token

    def accept(self, value: str) -> bool:
        kind, text, _ = self.peek()
        if kind in ("op", "ident") and text == value:
            self.pos += 1
            return True
        return False

    def expect(self, what: str, value: str | None = None) -> str:
        kind, text, at = self.next()
        if kind != what or (value is not None and text != value):
            found = repr(text) if text else "the end of the query"
            self.fail(at, f"expected {value!r}, found {found}" if value else f"expected a {what}, found {found}")
        return text

    def fail(self, at: int, problem: str):
        raise InvalidInput(f"query: parse error at character {at + 1}: {problem}", field="query")

    def unsupported(self, at: int, feature: str):
        raise InvalidInput(f"query: {feature} is not supported by Count (character {at + 1})", field="query")

    def expression(self, level: int):
        if level == len(_PRECEDENCE):
            return self.unary()
        lhs = self.expression(level + 1)
        while True:
            kind, op, at = self.peek()
            if op not in _PRECEDENCE[level] or kind not in ("op", "ident"):
                return lhs
            self.next()
            if op in _SET_OPERATORS or op == "atan2":
                self.unsupported(at, f"the {op!r} operator")
            bool_modifier = self.accept("bool")
            if bool_modifier and op not in _COMPARISONS:
                self.fail(at, "bool applies only to comparison operators")
            matching = self.matching()
            lhs = ast.Binary(op, lhs, self.expression(level + 1), matching, bool_modifier)

    def unary(self):
        """A sign binds looser than ^ (-2 ^ 2 is -4), as in Prometheus."""
        kind, text, _ = self.peek()
        if kind == "op" and text in "+-":
            self.next()
            operand = self.unary()
            if text == "+":
                return operand
            return ast.Number(-operand.value) if isinstance(operand, ast.Number) else ast.Unary(operand)
        return self.power()

    def power(self):
        base = self.postfix(self.primary())
        if self.peek()[1] == "^" and self.peek()[0] == "op":
            self.next()
            matching = self.matching()
            return ast.Binary("^", base, self.unary(), matching)  # right-associative
        return base

    def matching(self) -> ast.Matching | None:
        kind, text, _ = self.peek()
        if text not in ("on", "ignoring"):
            return None
        self.next()
        labels = self.label_list()
        group, include = None, ()
        if self.peek()[1] in ("group_left", "group_right"):
            group = self.next()[1].removeprefix("group_")
            include = self.label_list() if self.peek()[1] == "(" else ()
        return ast.Matching(text == "on", labels, group, include)

    def label_list(self) -> tuple[str, ...]:
        self.expect("op", "(")
        labels = []
        while not self.accept(")"):
            labels.append(self.expect("ident"))
            if not self.accept(","):
                self.expect("op", ")")
                break
        return tuple(labels)

    def postfix(self, node):
        while True:
            kind, text, at = self.peek()
            if kind == "op" and text == "[":
                if not isinstance(node, ast.VectorSelector) or node.offset_ms:
                    self.unsupported(at, "a subquery or range of a non-selector")
                self.next()
                duration = self.expect("duration")
                if self.peek()[1].startswith(":"):
                    self.unsupported(at, "a subquery")
                self.expect("op", "]")
                node = ast.MatrixSelector(node, parse_duration_ms(duration))
            elif kind == "ident" and text == "offset":
                self.next()
                sign = -1 if self.accept("-") else 1
                offset = sign * parse_duration_ms(self.expect("duration"))
                if isinstance(node, ast.VectorSelector):
                    node = ast.VectorSelector(node.matchers, offset)
                elif isinstance(node, ast.MatrixSelector):
                    node = ast.MatrixSelector(ast.VectorSelector(node.vector.matchers, offset), node.range_ms)
                else:
                    self.fail(at, "offset applies only to a selector")
            elif kind == "op" and text == "@":
                self.unsupported(at, "the @ modifier")
            else:
                return node

    def primary(self):
        kind, text, at = self.next()
        if kind == "number":
            return ast.Number(float(int(text, 16)) if text[:2].lower() == "0x" else float(text))
        if kind == "duration":
            self.fail(at, f"unexpected duration {text!r}")
        if kind == "string":
            return ast.String(_unquote(text))
        if kind == "op" and text == "(":
            node = self.expression(0)
            self.expect("op", ")")
            return node
        if kind == "op" and text == "{":
            return ast.VectorSelector(tuple(self.matchers(named=False)))
        if kind != "ident":
            self.fail(at, f"unexpected {text or 'end of query'!r}")
        if text in AGGREGATIONS:
            return self.aggregation(text)
        if self.peek()[1] == "(" and self.peek()[0] == "op":
            return self.call(text, at)
        if text in ("bool", "by", "without", "on", "ignoring", "group_left", "group_right", "offset"):
            self.fail(at, f"unexpected keyword {text!r}")
        matchers = [Matcher(NAME_TAG, "=", text)]
        if self.accept("{"):
            matchers += self.matchers(named=True)
        return ast.VectorSelector(tuple(matchers))

    def matchers(self, named: bool) -> list[Matcher]:
        """The {…} matchers; without a metric name before them, one must not match the empty string."""
        out = []
        while not self.accept("}"):
            name = self.expect("ident")
            kind, op, at = self.next()
            if op not in ("=", "!=", "=~", "!~"):
                self.fail(at, f"expected a matcher operator after {name!r}")
            out.append(Matcher(name, op, _unquote(self.expect("string"))))
            if not self.accept(","):
                self.expect("op", "}")
                break
        if not named and not any(m.op in ("=", "=~") and m.value not in ("", ".*")
                                 or m.op in ("!=", "!~") and m.value == "" for m in out):
            self.fail(self.peek()[2], "a vector selector must contain at least one non-empty matcher")
        return out

    def aggregation(self, op: str):
        labels, without = (), False
        if self.peek()[1] in ("by", "without"):
            without = self.next()[1] == "without"
            labels = self.label_list()
        self.expect("op", "(")
        param = None
        if op in PARAM_AGGREGATIONS:
            param = self.expression(0)
            self.expect("op", ",")
        expr = self.expression(0)
        self.expect("op", ")")
        if self.peek()[1] in ("by", "without"):
            without = self.next()[1] == "without"
            labels = self.label_list()
        return ast.Aggregate(op, expr, param, labels, without)

    def call(self, name: str, at: int):
        if name not in FUNCTIONS:
            self.unsupported(at, f"the function {name}()")
        self.expect("op", "(")
        args = []
        while not self.accept(")"):
            args.append(self.expression(0))
            if not self.accept(","):
                self.expect("op", ")")
                break
        kinds = FUNCTIONS[name]
        required = [k for k in kinds if not k.endswith("?")]
        if not len(required) <= len(args) <= len(kinds):
            self.fail(at, f"{name}() takes {len(kinds)} argument(s), got {len(args)}")
        for kind, arg in zip(kinds, args):
            if kind.rstrip("?") == "m" and not isinstance(arg, ast.MatrixSelector):
                self.fail(at, f"{name}() expects a range vector, e.g. {name}(x[5m])")
            if kind == "str" and not isinstance(arg, ast.String):
                self.fail(at, f"{name}() expects a string argument")
        return ast.Call(name, tuple(args))
