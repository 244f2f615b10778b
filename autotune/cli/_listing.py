"""Listings as a table that fits the terminal, as CSV or as JSON: one renderer for every
listing command, so that none cuts a name a user must copy into the next command.

A table that would be wider than the terminal first drops its least needed
columns (``Column.drop``, highest first), then folds the other cells onto more
lines; a name column (``Column.name``) is never folded or cut. When even the
names do not fit, each row is printed as ``field: value`` lines instead, like
psql's expanded display.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from autotune.cli._common import console


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


FormatOption = Annotated[
    Format,
    typer.Option("--format", "-f", help="table (fits the terminal; names never cut), csv or json."),
]

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Column:
    """One field of a listing: its key in CSV and JSON, its header in the table."""

    key: str
    header: str = ""
    name: bool = False  # a name to copy: printed whole, on one line
    drop: int = 0  # dropped first (highest first) when the table is too wide; 0: kept
    right: bool = False
    show: Callable[[Any], str] | None = None  # the table's text for a value
    table: bool = True  # shown in the table (else only in CSV and JSON)
    data: bool = True  # in CSV and JSON (else a table-only view of other fields)

    def text(self, value: Any) -> str:
        if self.show is not None:
            return self.show(value)
        return "-" if value is None else str(value)

    @property
    def title(self) -> str:
        return self.header or self.key


def _width(columns: Sequence[Column], cells: Sequence[Sequence[str]]) -> int:
    """The table's width with every cell on one line: cells, padding, borders."""
    widths = [max([len(c.title), *(_longest(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    return sum(widths) + 3 * len(columns) + 1


def _longest(cell: str) -> int:
    return max((len(line) for line in cell.splitlines()), default=0)


def _fits(columns: Sequence[Column], cells: Sequence[Sequence[str]], width: int) -> bool:
    """Whether the names fit on one line each once the other columns fold to a few
    characters (to their header, or 6)."""
    need = 0
    for i, c in enumerate(columns):
        longest = max([len(c.title), *(len(row[i]) for row in cells)])
        need += longest if c.name else min(longest, max(6, len(c.title)))
    return need + 3 * len(columns) + 1 <= width


def print_listing(
    rows: Sequence[Row],
    columns: Sequence[Column],
    fmt: Format,
    title: str | None = None,
    width: int | None = None,
) -> None:
    """Print ``rows`` (values by column key) in ``fmt``; JSON and CSV keep every column."""
    data = [c for c in columns if c.data]
    if fmt is Format.json:
        typer.echo(json.dumps([{c.key: row.get(c.key) for c in data} for row in rows], indent=2))
        return
    if fmt is Format.csv:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([c.key for c in data])
        for row in rows:
            writer.writerow(["" if row.get(c.key) is None else row.get(c.key) for c in data])
        typer.echo(out.getvalue(), nl=False)
        return
    width = width or console.width
    columns = [c for c in columns if c.table]
    shown = list(columns)
    cells = [[c.text(row.get(c.key)) for c in shown] for row in rows]
    while _width(shown, cells) > width and any(c.drop for c in shown):
        drop = max(range(len(shown)), key=lambda i: shown[i].drop)
        del shown[drop]
        for cell_row in cells:
            del cell_row[drop]
    if not _fits(shown, cells, width):
        _print_expanded(rows, columns, title)
        return
    if title:  # above the table, not as its title: rich wraps a title to the table's width
        say(title, width)
    table = Table()
    for i, c in enumerate(shown):
        longest = max([len(c.title), *(len(r[i]) for r in cells)])
        table.add_column(
            c.title,
            justify="right" if c.right else "left",
            no_wrap=c.name,
            min_width=longest if c.name else None,
            overflow="fold",
        )
    for cell_row in cells:
        table.add_row(*(escape(cell) for cell in cell_row))
    console.print(table, width=width, soft_wrap=False)
    left_out = [c.title for c in columns if c not in shown]
    if left_out:
        say(
            f"({', '.join(left_out)} left out to fit {width} columns; --format csv or json "
            "has every column)",
            width,
        )


def say(text: str, width: int | None = None) -> None:
    """A line of plain text, wrapped at spaces to the terminal (a name stays whole)."""
    console.print(text, markup=False, soft_wrap=False, width=width or console.width)


def _print_expanded(rows: Sequence[Row], columns: Sequence[Column], title: str | None) -> None:
    """One ``field | value`` line per column, rows apart: nothing cut, at any width."""
    if title:
        say(title)
    pad = max(len(c.title) for c in columns)
    for n, row in enumerate(rows, start=1):
        console.print(f"-[ {n} ]-", markup=False)
        for c in columns:
            console.print(f"{c.title:<{pad}} | {c.text(row.get(c.key))}", markup=False)
