"""Constraint expressions: a parsed little language, never eval'd."""

from __future__ import annotations

import builtins
from typing import Any

import pytest

from autotune.spec import Constraint, ExprError

GiB = 1024**3
ENV = {"memory": 16.0 * GiB, "cpus": 4.0}


def holds(text: str, **env: float) -> bool:
    return Constraint.parse(text).holds({**ENV, **env})


@pytest.mark.parametrize(
    "text",
    [
        "1 + 2 * 3 == 7",
        "(1 + 2) * 3 == 9",
        "2 * 3 + 1 == 7",
        "10 - 4 - 3 == 3",  # left associative
        "8 / 4 / 2 == 1",  # left associative
        "2 * 6 / 3 == 4",
        "-2 * 3 == -6",
        "- -2 == 2",
        "-(1 + 2) == -3",
        "2 * -3 == -6",
        "1 - -1 == 2",
        "((((1)))) == 1",
        "1e3 == 1000",
        "2.5 * 2 == 5",
        "7 / 2 == 3.5",  # true division
    ],
)
def test_arithmetic_precedence_and_associativity(text: str) -> None:
    assert holds(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 < 2", True),
        ("2 < 2", False),
        ("2 <= 2", True),
        ("3 <= 2", False),
        ("3 > 2", True),
        ("2 > 2", False),
        ("2 >= 2", True),
        ("1 >= 2", False),
        ("2 == 2", True),
        ("2 == 3", False),
        ("2 != 3", True),
        ("2 != 2", False),
    ],
)
def test_comparisons(text: str, expected: bool) -> None:
    assert holds(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "1kB == 1024",  # memory in bytes
        "1MB == 1024kB",
        "1GB == 1024MB",
        "1TB == 1024GB",
        "8kB * 16384 == 128MB",
        "1GB + 1GB == 2GB",
        "1s == 1",  # time in seconds
        "1min == 60s",
        "1h == 60min",
        "1d == 24h",
        "500ms == 0.5",
        "250us * 4 == 1ms",
        "1.5GB == 1536MB",
    ],
)
def test_units_in_expressions(text: str) -> None:
    assert holds(text)


def test_machine_relative_terms() -> None:
    assert holds("80% memory == 0.8 * memory")
    assert holds("50% memory == 8GB")
    assert holds("100%memory == memory")
    assert holds("2x cpus == 8")
    assert holds("0.5x cpus == 2")
    assert holds("2x cpus == 2", cpus=1)
    assert holds("50% memory == 1GB", memory=2.0 * GiB)


def test_names_are_knobs_memory_and_cpus() -> None:
    c = Constraint.parse("shared_buffers + 50 * work_mem <= 80% memory")
    assert c.names == frozenset({"shared_buffers", "work_mem", "memory"})
    assert Constraint.parse("a <= 2x cpus").names == frozenset({"a", "cpus"})
    assert Constraint.parse("1 <= 2").names == frozenset()
    assert Constraint.parse("-(a + b) * (c / d) < -e").names == frozenset("abcde")
    assert Constraint.parse("pg_stat.max <= 10").names == frozenset({"pg_stat.max"})


def test_evaluates_against_knob_values() -> None:
    c = Constraint.parse("shared_buffers + 50 * work_mem <= 80% memory")
    ok = {"shared_buffers": 4.0 * GiB, "work_mem": 64 * 1024.0**2}
    assert c.holds({**ENV, **ok})
    too_much = {"shared_buffers": 12.0 * GiB, "work_mem": 64 * 1024.0**2}
    assert not c.holds({**ENV, **too_much})
    # exactly on the boundary: 80% of 16 GiB
    edge = {"shared_buffers": 0.8 * 16 * GiB, "work_mem": 0.0}
    assert c.holds({**ENV, **edge})
    assert not Constraint.parse("shared_buffers < 80% memory").holds({**ENV, **edge})


def test_min_wal_size_le_max_wal_size() -> None:
    c = Constraint.parse("min_wal_size <= max_wal_size")
    assert c.holds({"min_wal_size": 80.0, "max_wal_size": 1024.0})
    assert not c.holds({"min_wal_size": 2048.0, "max_wal_size": 1024.0})


def test_text_is_kept() -> None:
    text = "a + 1 <= b"
    assert Constraint.parse(text).text == text


def test_unknown_name_at_evaluation() -> None:
    c = Constraint.parse("a <= b")
    with pytest.raises(ExprError, match="unknown name 'b'"):
        c.holds({"a": 1.0})


def test_division_by_zero_is_an_expr_error() -> None:
    with pytest.raises(ExprError, match="division by zero"):
        Constraint.parse("a / b <= 1").holds({"a": 1.0, "b": 0.0})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "unexpected end"),
        ("   ", "unexpected end"),
        ("a <=", "unexpected end"),
        ("<= a", "unexpected '<='"),
        ("a", "expected a comparison"),
        ("a + 1", "expected a comparison"),
        ("a b <= c", "expected a comparison"),
        ("a = b", "unexpected character '='"),
        ("1 <= 2 <= 3", "unexpected '<='"),
        ("a ** 2 <= 1", "unexpected '\\*'"),
        ("a; <= 1", "unexpected character ';'"),
        ("a[0] <= 1", "unexpected character '\\['"),
        ("a <= b or c", "unexpected 'or'"),
        ("a <= b and c <= d", "unexpected 'and'"),
        ("not a <= b", "expected a comparison"),
        ("(a <= b", "expected '\\)'"),
        ("a <= b)", "unexpected '\\)'"),
        ("a <= (b", "expected '\\)'"),
        ("()", "unexpected '\\)'"),
        ("5foo <= 1", "unknown unit 'foo'"),
        ("5kb <= 1", "unknown unit 'kb'"),
        ("a <= 50%", "must be followed by 'memory'"),
        ("a <= 50% cpus", "must be followed by 'memory'"),
        ("a <= 2x memory", "must be followed by 'cpus'"),
        ("a <= 2x", "must be followed by 'cpus'"),
        ("a <= 1 # comment", "unexpected character '#'"),
        ("'a' <= 'b'", "unexpected character"),
        ('"a" <= 1', "unexpected character"),
        ("a <= 1 if b else 2", "unexpected 'if'"),
        ("a <= b, c", "unexpected character ','"),
        ("a <= `b`", "unexpected character"),
        ("a <= $b", "unexpected character"),
        ("a @ b <= 1", "unexpected character '@'"),
        ("a % b <= 1", "unexpected character '%'"),
        ("a <= 1\n; import os", "unexpected character ';'"),
        ("lambda: 1 <= 2", "unexpected character ':'"),
        ("exec(x) <= 1", "function calls are not allowed"),
        ("min(a) <= 1", "function calls are not allowed"),
        ("a <= max (b)", "function calls are not allowed"),
        ("__import__('os').system('touch /tmp/pwned') == 0", "unexpected character"),
        ("shared_buffers <= exec('x')", "unexpected character"),
    ],
)
def test_garbage_is_a_parse_error(text: str, message: str) -> None:
    with pytest.raises(ExprError, match=message):
        Constraint.parse(text)


@pytest.mark.parametrize("value", [None, 1, 1.5, ["a <= b"], {"a": 1}])
def test_non_string_constraint(value: Any) -> None:
    with pytest.raises(ExprError, match="must be a string"):
        Constraint.parse(value)


def test_parse_errors_report_positions() -> None:
    with pytest.raises(ExprError, match="position 7"):
        Constraint.parse("a <= b ; c")


def test_parse_and_holds_never_call_eval_or_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"eval/exec called with {args!r}")

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    c = Constraint.parse("shared_buffers + 50 * work_mem <= 80% memory")
    assert c.holds({**ENV, "shared_buffers": 1.0, "work_mem": 1.0})
    with pytest.raises(ExprError):
        Constraint.parse("__import__('os').getcwd() == 0")


def test_dotted_names_are_plain_lookups_not_attributes() -> None:
    c = Constraint.parse("a.__class__ <= 1")
    assert c.names == frozenset({"a.__class__"})
    with pytest.raises(ExprError, match="unknown name"):
        c.holds({"a": 1.0})
    assert c.holds({"a.__class__": 1.0})
