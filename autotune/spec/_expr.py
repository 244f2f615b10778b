"""A small parsed expression language for cross-knob constraints.

Constraints come from files users share, so they are tokenised and parsed
into a tiny AST and evaluated by walking it; nothing is ever passed to
``eval``. The grammar::

    constraint := sum CMP sum
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | atom
    atom       := NUMBER [UNIT] | NUMBER "%" "memory" | NUMBER "x" "cpus"
                | NAME | "(" sum ")"

Names are knob names, ``memory`` (bytes) and ``cpus``. Memory values are in
bytes and times in seconds, so ``shared_buffers + 50 * work_mem <= 80% memory``
means what it says.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from autotune.spec._units import MEMORY_UNITS, TIME_UNITS


class ExprError(ValueError):
    """A constraint that cannot be parsed or evaluated."""


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?:\s*(?P<suffix>(?:[kMGT]?B|us|ms|s|min|h|d|x)\b|%))?
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<op><=|>=|==|!=|<|>|[-+*/()])
    """,
    re.VERBOSE,
)

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
    "!=": operator.ne,
}
_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}
BUILTIN_NAMES = frozenset({"memory", "cpus"})


@dataclass(frozen=True)
class _Tok:
    kind: str  # number | name | op | end
    text: str
    value: float = 0.0
    relative: str | None = None  # "memory" or "cpus" for 80% memory / 2x cpus
    pos: int = 0


# AST nodes: small tuples keep evaluation a plain recursive walk.
Node = tuple[object, ...]


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise ExprError(f"unexpected character {text[pos]!r} at position {pos}")
        if m.group("number") is not None:
            number = float(m.group("number"))
            suffix = m.group("suffix")
            if suffix is None:
                glued = re.match(r"[A-Za-z_]\w*", text[m.end() :])
                if glued:
                    raise ExprError(f"unknown unit {glued.group(0)!r} at position {m.end()}")
                tokens.append(_Tok("number", m.group(0), number, pos=pos))
            elif suffix in MEMORY_UNITS:
                tokens.append(_Tok("number", m.group(0), number * MEMORY_UNITS[suffix], pos=pos))
            elif suffix in TIME_UNITS:
                secs = number * TIME_UNITS[suffix] / 1_000_000
                tokens.append(_Tok("number", m.group(0), secs, pos=pos))
            elif suffix in ("%", "x"):
                tokens.append(
                    _Tok("number", m.group(0), number, relative=suffix, pos=pos),
                )
            else:
                raise ExprError(f"unknown unit {suffix!r} at position {pos}")
        elif m.group("name") is not None:
            tokens.append(_Tok("name", m.group("name"), pos=pos))
        elif m.group("op") is not None:
            tokens.append(_Tok("op", m.group("op"), pos=pos))
        pos = m.end()
    tokens.append(_Tok("end", "", pos=len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> _Tok:
        return self.tokens[self.i]

    def take(self) -> _Tok:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def constraint(self) -> Node:
        left = self.sum()
        tok = self.take()
        if tok.kind != "op" or tok.text not in _COMPARE:
            raise ExprError(f"expected a comparison (<=, <, >=, >, ==, !=) at position {tok.pos}")
        right = self.sum()
        end = self.peek()
        if end.kind != "end":
            raise ExprError(f"unexpected {end.text!r} at position {end.pos}")
        return ("cmp", tok.text, left, right)

    def sum(self) -> Node:
        node = self.product()
        while self.peek().kind == "op" and self.peek().text in "+-":
            op = self.take().text
            node = ("bin", op, node, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.peek().kind == "op" and self.peek().text in "*/":
            op = self.take().text
            node = ("bin", op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.peek().kind == "op" and self.peek().text == "-":
            self.take()
            return ("neg", self.unary())
        return self.atom()

    def atom(self) -> Node:
        tok = self.take()
        if tok.kind == "number":
            if tok.relative is None:
                return ("num", tok.value)
            expected = "memory" if tok.relative == "%" else "cpus"
            name = self.take()
            if name.kind != "name" or name.text != expected:
                raise ExprError(
                    f"{tok.text!r} must be followed by {expected!r} at position {tok.pos}"
                )
            factor = tok.value / 100 if tok.relative == "%" else tok.value
            return ("bin", "*", ("num", factor), ("name", expected))
        if tok.kind == "name":
            if self.peek().kind == "op" and self.peek().text == "(":
                raise ExprError(
                    f"function calls are not allowed: {tok.text!r} at position {tok.pos}"
                )
            return ("name", tok.text)
        if tok.kind == "op" and tok.text == "(":
            node = self.sum()
            close = self.take()
            if close.kind != "op" or close.text != ")":
                raise ExprError(f"expected ')' at position {close.pos}")
            return node
        if tok.kind == "end":
            raise ExprError("unexpected end of expression")
        raise ExprError(f"unexpected {tok.text!r} at position {tok.pos}")


def _names(node: Node) -> set[str]:
    kind = node[0]
    if kind == "name":
        return {str(node[1])}
    if kind == "num":
        return set()
    children = [child for child in node[1:] if isinstance(child, tuple)]
    out: set[str] = set()
    for child in children:
        out |= _names(child)
    return out


def _eval(node: Node, env: Mapping[str, float]) -> float:
    kind = node[0]
    if kind == "num":
        return float(node[1])  # type: ignore[arg-type]
    if kind == "name":
        try:
            return float(env[str(node[1])])
        except KeyError:
            raise ExprError(f"unknown name {node[1]!r}") from None
    if kind == "neg":
        return -_eval(node[1], env)  # type: ignore[arg-type]
    if kind == "bin":
        left = _eval(node[2], env)  # type: ignore[arg-type]
        right = _eval(node[3], env)  # type: ignore[arg-type]
        if node[1] == "/" and right == 0:
            raise ExprError("division by zero")
        return _ARITH[str(node[1])](left, right)
    raise ExprError(f"bad node {kind!r}")


@dataclass(frozen=True)
class Constraint:
    """A parsed constraint; ``holds(env)`` evaluates it against knob values."""

    text: str
    tree: Node

    @classmethod
    def parse(cls, text: str) -> Constraint:
        if not isinstance(text, str):
            raise ExprError(f"a constraint must be a string, got {text!r}")
        return cls(text, _Parser(text).constraint())

    @property
    def names(self) -> frozenset[str]:
        return frozenset(_names(self.tree))

    def renamed(self, names: Mapping[str, str], label: str = "") -> Constraint:
        """The same constraint over renamed knobs (a composite spec's ``ns.knob``);
        ``label`` prefixes its text, so messages still say where it came from."""

        def walk(node: Node) -> Node:
            if node[0] == "name":
                return ("name", names.get(str(node[1]), str(node[1])))
            return tuple(walk(c) if isinstance(c, tuple) else c for c in node)

        return Constraint(f"{label}{self.text}", walk(self.tree))

    def holds(self, env: Mapping[str, float]) -> bool:
        _, op, left, right = self.tree
        return _COMPARE[str(op)](_eval(left, env), _eval(right, env))  # type: ignore[arg-type]
