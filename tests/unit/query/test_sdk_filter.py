"""The brokle SDK filter expressions: grammar, errors, and bound compilation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brokle_server.query.scope import QueryScope, Sql
from brokle_server.query.sdk_filter import Bool, Cond, FilterSyntaxError, check, compile_node, parse


def test_the_sdk_example() -> None:
    node = parse("service.name=chatbot AND gen_ai.request.model=gpt-4o")
    assert node == Bool(
        "AND",
        (
            Cond("service.name", "eq", ("chatbot",), False),
            Cond("gen_ai.request.model", "eq", ("gpt-4o",), False),
        ),
    )
    sql = Sql(QueryScope("p"))
    text = compile_node(sql, node)
    assert text == (
        "(((service_name = {p0:String}))) AND (((model = {p1:String}) OR "
        "(attributes[{p2:String}] = {p3:String}) OR (resource_attributes[{p4:String}] = "
        "{p5:String})))"
    )


@pytest.mark.parametrize(
    ("text", "node"),
    [
        ("a = 'x y'", Cond("a", "eq", ("x y",), False)),
        ('a == "q\\"d"', Cond("a", "eq", ('q"d',), False)),
        ("a!=b", Cond("a", "neq", ("b",), False)),
        ("d >= 1.5", Cond("d", "gte", (1.5,), False)),
        ("d < abc", Cond("d", "lt", ("abc",), False)),
        ("a ~ x", Cond("a", "contains", ("x",), False)),
        ("a !~ x", Cond("a", "contains", ("x",), True)),
        ("a in (1, 'b')", Cond("a", "in", ("1", "b"), False)),
        ("a NOT IN (1)", Cond("a", "in", ("1",), True)),
        ("a exists", Cond("a", "exists", (), False)),
        ("a not exists", Cond("a", "exists", (), True)),
        ("not a=1", Bool("NOT", (Cond("a", "eq", ("1",), False),))),
        (
            "a=1 or b=2 and c=3",
            Bool(
                "OR",
                (
                    Cond("a", "eq", ("1",), False),
                    Bool("AND", (Cond("b", "eq", ("2",), False), Cond("c", "eq", ("3",), False))),
                ),
            ),
        ),
        ("  ", None),
    ],
)
def test_grammar(text: str, node: object) -> None:
    assert parse(text) == node


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a=", "expected a value"),
        ("a=b AND", "expected a key at the end"),
        ("=b", "expected a key, found '='"),
        ("a=b)", "unexpected ')' at position 4"),
        ("(a=b", "expected ) at the end"),
        ("a='x", "unexpected character"),
        ("1a=b", "invalid key '1a'"),
        ("a b", "expected an operator (=, !=, >, >=, <, <=, ~, !~, IN, EXISTS), found 'b'"),
        ("a NOT = b", "NOT after a key"),
        ("a IN b", "expected (, found 'b'"),
        ("(" * 20 + "a=b" + ")" * 20, "nested deeper"),
        (" AND ".join(["a=b"] * 51), "more than 50 conditions"),
        ("x" * 5000, "longer than"),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        parse(text)
    assert message in caught.value.message
    assert caught.value.code == "invalid_filter"
    assert caught.value.message.startswith("Invalid filter: ")


def test_check_also_compiles() -> None:
    check("duration > 10 AND status = ERROR")
    with pytest.raises(FilterSyntaxError, match="cost"):
        check("cost ~ cheap")


@given(st.text(max_size=60))
def test_any_text_parses_or_is_refused_cleanly(text: str) -> None:
    try:
        node = parse(text)
    except FilterSyntaxError:
        return
    if node is not None:
        sql = Sql(QueryScope("p"))
        try:
            compiled = compile_node(sql, node)
        except FilterSyntaxError:
            return
        assert "'" not in compiled
        sql.build(sql.select("spans", ["1"], where=[compiled]))
