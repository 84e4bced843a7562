"""The ``brokle`` SDK's span filter expressions, parsed and compiled to bound SQL.

Grammar (keywords in any case)::

    expr  := and ("OR" and)*
    and   := unary ("AND" unary)*
    unary := "NOT" unary | "(" expr ")" | cond
    cond  := key op value | key ["NOT"] "IN" "(" value ("," value)* ")" | key ["NOT"] "EXISTS"
    op    := = | == | != | > | >= | < | <= | ~ (contains) | !~ (does not contain)

e.g. ``service.name=chatbot AND gen_ai.request.model=gpt-4o``. Values are bare words or
quoted with ``"`` or ``'`` (backslash escapes). Keys name span columns (``service.name``,
``span.name``, ``status``, ``duration`` in ms, ``cost``, ``user.id``...); a GenAI key with a
promoted column (``gen_ai.request.model``, ``gen_ai.system``...) matches the attribute or the
column; any other key is a span or resource attribute. Every value is a bound parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from pydantic import ValidationError

from brokle_server.errors import InvalidInput
from brokle_server.query.fields import SPANS
from brokle_server.query.filters import Filter, Op, compile_filter
from brokle_server.query.scope import QueryScope, Sql

MAX_CONDITIONS: Final = 50
MAX_DEPTH: Final = 16
MAX_CHARS: Final = 4000

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<paren>[(),])
      | (?P<op>==|!=|>=|<=|!~|=|>|<|~)
      | (?P<quoted>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<word>[^\s()=!<>~,"']+)
    )""",
    re.VERBOSE,
)
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/@-]{0,199}$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")
_OPS: Final[dict[str, Op]] = {
    "=": "eq", "==": "eq", "!=": "neq", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte",
    "~": "contains", "!~": "contains",
}  # fmt: skip
_LOWERCASE_VALUES: Final = frozenset({"status", "kind"})

# SDK key -> catalog field (a span column).
COLUMN_KEYS: Final = {
    "service.name": "service", "service": "service",
    "name": "name", "span.name": "name", "span_name": "name",
    "trace_id": "traceId", "span_id": "spanId", "parent_span_id": "parentSpanId",
    "status": "status", "status.code": "status", "span.status": "status",
    "otel.status_code": "status", "status_message": "statusMessage",
    "kind": "kind", "span.kind": "kind",
    "duration": "duration", "duration_ms": "duration",
    "cost": "cost", "brokle.cost.total": "cost",
    "environment": "environment", "deployment.environment": "environment",
    "deployment.environment.name": "environment", "brokle.environment": "environment",
    "user.id": "userId", "session.id": "sessionId",
    "model": "model", "provider": "provider",
    "span_type": "spanType", "brokle.span.type": "spanType", "level": "level",
    "input": "input", "output": "output",
}  # fmt: skip
# GenAI attributes that were also promoted to a column: either one may match.
DUAL_KEYS: Final = {
    "gen_ai.request.model": "model",
    "gen_ai.response.model": "model",
    "gen_ai.system": "provider",
    "gen_ai.provider.name": "provider",
    "gen_ai.operation.name": "operation",
}


class FilterSyntaxError(InvalidInput):
    code = "invalid_filter"


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    pos: int


@dataclass(frozen=True, slots=True)
class Cond:
    key: str
    op: Op
    values: tuple[str | float, ...]
    negated: bool


@dataclass(frozen=True, slots=True)
class Bool:
    op: str  # AND | OR | NOT
    items: tuple[Node, ...]


Node = Cond | Bool


def _fail(message: str, pos: int | None = None) -> FilterSyntaxError:
    where = f" at position {pos + 1}" if pos is not None else ""
    return FilterSyntaxError(
        f"Invalid filter: {message}{where}",
        details=[{"field": "filter", "message": message + where}],
    )


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_CHARS:
        raise _fail(f"longer than {MAX_CHARS} characters")
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise _fail(f"unexpected character {text[pos:].lstrip()[:1]!r}", pos)
        kind = match.lastgroup or ""
        value = match.group(kind)
        start = match.start(kind)
        if kind == "quoted":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append(Token(kind, value, start))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.conditions = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text.upper() in words:
            self.i += 1
            return True
        return False

    def is_paren(self, text: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "paren" and token.text == text

    def expect(self, kind: str, text: str | None = None) -> Token:
        token = self.peek()
        if token is None or token.kind != kind or (text is not None and token.text != text):
            wanted = text or "an operator (=, !=, >, >=, <, <=, ~, !~, IN, EXISTS)"
            if token is None:
                raise _fail(f"expected {wanted} at the end")
            raise _fail(f"expected {wanted}, found {token.text!r}", token.pos)
        self.i += 1
        return token

    def expr(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise _fail(f"nested deeper than {MAX_DEPTH} levels")
        items = [self.conjunction(depth)]
        while self.keyword("OR"):
            items.append(self.conjunction(depth))
        return items[0] if len(items) == 1 else Bool("OR", tuple(items))

    def conjunction(self, depth: int) -> Node:
        items = [self.unary(depth)]
        while self.keyword("AND"):
            items.append(self.unary(depth))
        return items[0] if len(items) == 1 else Bool("AND", tuple(items))

    def unary(self, depth: int) -> Node:
        if self.keyword("NOT"):
            return Bool("NOT", (self.unary(depth + 1),))
        if self.is_paren("("):
            self.i += 1
            node = self.expr(depth + 1)
            self.expect("paren", ")")
            return node
        return self.condition()

    def value(self) -> str:
        token = self.peek()
        if token is None or token.kind not in ("word", "quoted"):
            raise _fail("expected a value", token.pos if token else None)
        self.i += 1
        return token.text

    def condition(self) -> Cond:
        key_token = self.peek()
        if key_token is None or key_token.kind != "word":
            found = f", found {key_token.text!r}" if key_token else " at the end"
            raise _fail(f"expected a key{found}", key_token.pos if key_token else None)
        self.i += 1
        if not _KEY.match(key_token.text):
            raise _fail(f"invalid key {key_token.text[:40]!r}", key_token.pos)
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise _fail(f"more than {MAX_CONDITIONS} conditions")
        key = key_token.text
        negated = self.keyword("NOT")
        if self.keyword("EXISTS"):
            return Cond(key, "exists", (), negated)
        if self.keyword("IN"):
            self.expect("paren", "(")
            values = [self.value()]
            while self.is_paren(","):
                self.i += 1
                values.append(self.value())
            self.expect("paren", ")")
            return Cond(key, "in", tuple(values), negated)
        if negated:
            raise _fail("NOT after a key must be followed by IN or EXISTS", key_token.pos)
        op_token = self.expect("op")
        raw = self.value()
        op = _OPS[op_token.text]
        value: str | float = raw
        if op in ("gt", "gte", "lt", "lte") and _NUMBER.match(raw):
            value = float(raw)
        return Cond(key, op, (value,), op_token.text == "!~")


def parse(text: str) -> Node | None:
    """The expression's tree, or None for an empty filter; FilterSyntaxError when invalid."""
    tokens = tokenize(text)
    if not tokens:
        return None
    parser = _Parser(tokens)
    node = parser.expr(0)
    extra = parser.peek()
    if extra is not None:
        raise _fail(f"unexpected {extra.text!r}", extra.pos)
    return node


def _filter(field: str, cond: Cond) -> Filter:
    values: list[str | float] = list(cond.values)
    if cond.key.lower() in _LOWERCASE_VALUES or COLUMN_KEYS.get(cond.key) in ("status", "kind"):
        values = [v.lower() if isinstance(v, str) else v for v in values]
    if cond.op == "exists":
        return Filter(field=field, op="exists")
    if cond.op == "in":
        return Filter(field=field, op="in", value=values)
    return Filter(field=field, op=cond.op, value=values[0])


def _condition(sql: Sql, cond: Cond) -> str:
    parts: list[str] = []
    negated = False
    fields: list[str] = []
    if cond.key in COLUMN_KEYS:
        fields = [COLUMN_KEYS[cond.key]]
    else:
        fields = [f"attributes.{cond.key}", f"resource.{cond.key}"]
        if cond.key in DUAL_KEYS:
            fields.insert(0, DUAL_KEYS[cond.key])
    for field in fields:
        try:
            text, negated = compile_filter(sql, SPANS, _filter(field, cond), "filter")
        except InvalidInput as exc:
            raise _fail(f"{cond.key}: {exc.message}") from None
        except ValidationError as exc:
            message = exc.errors()[0].get("msg", "invalid value")
            raise _fail(f"{cond.key}: {str(message).removeprefix('Value error, ')}") from None
        parts.append(text)
    positive = " OR ".join(f"({p})" for p in parts)
    return f"NOT ({positive})" if (negated or cond.negated) else f"({positive})"


def compile_node(sql: Sql, node: Node) -> str:
    if isinstance(node, Cond):
        return _condition(sql, node)
    if node.op == "NOT":
        return f"NOT ({compile_node(sql, node.items[0])})"
    return f" {node.op} ".join(f"({compile_node(sql, item)})" for item in node.items)


def check(text: str) -> None:
    """Raise FilterSyntaxError unless ``text`` parses and compiles."""
    node = parse(text)
    if node is not None:
        compile_node(Sql(QueryScope("validation")), node)
