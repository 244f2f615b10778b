"""``{name}`` placeholders in argv elements, flag patterns and config templates.

Only names are substituted, never expressions: ``{port}`` becomes the value of
``port`` and nothing else happens (no attribute access, no format specs, no
shell). ``{{`` and ``}}`` stand for literal braces; a brace that does not open a
placeholder, such as the ``{"a"`` in a JSON argument, is kept as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_.]*)\}")


class UnknownPlaceholder(KeyError):
    """A template names a placeholder that has no value here."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(name)
        self.name = name
        self.known = sorted(known)

    def __str__(self) -> str:
        return f"unknown placeholder {{{self.name}}} (known: {', '.join(self.known) or 'none'})"


def placeholders_in(template: str) -> list[str]:
    """The placeholder names ``template`` uses, in order of first use."""
    seen: list[str] = []
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1)
        if name is not None and name not in seen:
            seen.append(name)
    return seen


def fill(template: str, values: Mapping[str, str]) -> str:
    """``template`` with every ``{name}`` replaced by ``values[name]``, as one string."""

    def sub(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "{{":
            return "{"
        if text == "}}":
            return "}"
        name = match.group(1)
        if name not in values:
            raise UnknownPlaceholder(name, values)
        return values[name]

    return _PLACEHOLDER.sub(sub, template)


def fill_argv(argv: Iterable[str], values: Mapping[str, str]) -> list[str]:
    """Each element filled on its own: a value never splits into, or joins, elements."""
    return [fill(element, values) for element in argv]


def check(template: str, allowed: Iterable[str]) -> list[str]:
    """One message per placeholder in ``template`` that is not in ``allowed``."""
    allowed = set(allowed)
    return [
        str(UnknownPlaceholder(name, allowed))
        for name in placeholders_in(template)
        if name not in allowed
    ]
