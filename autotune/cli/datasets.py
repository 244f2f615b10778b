"""autotune datasets list|rm: the loaded data kept between sessions (``cache: true``)."""

from __future__ import annotations

import datetime
from typing import Annotated

import typer

from autotune.cli._common import console, fail, friendly
from autotune.cli._listing import Column, Format, FormatOption, print_listing
from autotune.systems.postgres import datasets_root, list_datasets, remove_dataset

app = typer.Typer(
    help="The loaded data kept between sessions of workloads with cache: true.",
    no_args_is_help=True,
)


def approx_bytes(value: int) -> str:
    """A size to read at a glance (1.3GB); a data directory is rarely a whole number of kB."""
    size = float(value)
    for name in ("B", "kB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f}{name}" if name == "B" else f"{size:.1f}{name}"
        size /= 1024
    return f"{size:.1f}TB"


COLUMNS = [
    Column("dataset", name=True),
    Column("size", right=True, show=lambda v: approx_bytes(int(v))),
    Column("kept", drop=1),
]


@app.command("list")
@friendly
def list_(format: FormatOption = Format.table) -> None:
    """The kept datasets: name (workload, load digest, PostgreSQL version), size, date."""
    rows = [
        {
            "dataset": d.name,
            "size": d.size_bytes,
            "kept": datetime.datetime.fromtimestamp(d.created, datetime.UTC).strftime(
                "%Y-%m-%d %H:%M"
            ),
        }
        for d in list_datasets()
    ]
    if format is Format.table and not rows:
        console.print(f"no datasets kept in {datasets_root()}", markup=False)
        return
    print_listing(rows, COLUMNS, format, title=str(datasets_root()))


@app.command("rm")
@friendly
def rm(
    names: Annotated[list[str] | None, typer.Argument(help="Datasets to remove.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Remove every kept dataset.")] = False,
) -> None:
    """Remove kept datasets; the next session of their workload loads its data again."""
    if bool(names) == all_:
        fail("name the datasets to remove, or pass --all")
    targets = [d.name for d in list_datasets()] if all_ else list(names or [])
    known = {d.name for d in list_datasets()}
    unknown = [n for n in targets if n not in known]
    if unknown:
        fail(f"no dataset {unknown[0]!r} in {datasets_root()}; see autotune datasets list")
    for name in targets:
        removed = remove_dataset(name)
        console.print(f"removed {name} ({approx_bytes(removed.size_bytes)})", markup=False)
