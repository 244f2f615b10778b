"""autotune knobs validate|show|import, and ``systems`` (registered as ``autotune systems``)"""

from __future__ import annotations

import json
import signal
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from autotune._resources import known_specs, search_dirs
from autotune.cli._common import KnobsDirOption, console, err, fail, friendly
from autotune.spec import SpecError, load_spec
from autotune.systems._registry import check_applier

app = typer.Typer(help="Check, inspect and generate knob specs.", no_args_is_help=True)

IMPORTABLE = ("postgres",)


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Spec files to check.")],
) -> None:
    """Check spec files; print every problem, one line each, and exit non-zero on any."""
    bad = 0
    for path in files:
        try:
            spec = load_spec(path)
        except SpecError as exc:
            bad += 1
            for line in exc.problems:
                err.print(line, markup=False, soft_wrap=True)
            continue
        problems = check_applier(spec)
        if problems:
            bad += 1
            for line in problems:
                err.print(line, markup=False, soft_wrap=True)
            continue
        console.print(f"{path}: ok ({len(spec.knobs)} knobs, {len(spec.constraints)} constraints)")
    if bad:
        raise typer.Exit(1)


@app.command()
@friendly
def show(file: Annotated[Path, typer.Argument(help="Spec file.")]) -> None:
    """Print a spec's knobs as a table, bounds resolved on this machine."""
    spec = load_spec(file)
    table = Table(title=f"{spec.system}: {spec.path}")
    for col in ("knob", "type", "default", "min", "max", "scale", "apply", "safety", "special"):
        table.add_column(col)
    for knob in spec.knobs.values():
        if knob.numeric:
            lo, hi = knob.format(knob.lo), knob.format(knob.hi)
        elif knob.type == "enum":
            lo, hi = "|".join(knob.values), ""
        else:
            lo, hi = "off", "on"
        table.add_row(
            knob.name + ("" if knob.tunable else " (fixed)"),
            knob.type,
            knob.format(knob.default),
            lo,
            hi,
            knob.scale if knob.numeric else "",
            knob.apply,
            "[red]unsafe[/]" if knob.safety == "unsafe" else "safe",
            ", ".join(str(s) for s in knob.special),
        )
    console.print(table)
    for constraint in spec.constraints:
        console.print(f"constraint: {constraint.text}", markup=False)
    for name, members in spec.groups.items():
        console.print(f"group {name}: {', '.join(members)}", markup=False)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C


@app.command("import")
@friendly
def import_(
    system: Annotated[str, typer.Argument(help=f"System to read: {', '.join(IMPORTABLE)}.")],
    dsn: Annotated[
        str | None,
        typer.Option(help="Read this server's settings instead of a managed sandbox's."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the spec here (after a successful import)."),
    ] = None,
) -> None:
    """Generate a knob spec from a live server: PostgreSQL's pg_settings.

    By default a managed sandbox is started, read and destroyed; the spec goes to
    stdout: autotune knobs import postgres > knobs/my-postgres.yaml
    """
    if system not in IMPORTABLE:
        fail(f"cannot import {system!r}: supported systems: {', '.join(IMPORTABLE)}")
    from autotune.systems.postgres._import import fetch_settings, import_settings

    if dsn is None:
        err.print("starting a managed PostgreSQL sandbox to read pg_settings…")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        rows, version, source = fetch_settings(dsn)
    except KeyboardInterrupt:
        fail("interrupted" + ("; the sandbox was removed" if dsn is None else ""), 130)
        return
    finally:
        signal.signal(signal.SIGTERM, previous)
    imported = import_settings(rows, server_version=version, source=source)
    if output is not None:
        output.write_text(imported.text)
        where = str(output)
    else:
        typer.echo(imported.text, nl=False)
        where = "stdout"
    err.print(f"PostgreSQL {version}: {imported.summary()} -> {where}", markup=False)


class ListFormat(StrEnum):
    text = "text"
    json = "json"


def systems(
    knobs_dir: KnobsDirOption = None,
    format: Annotated[ListFormat, typer.Option("--format", "-f")] = ListFormat.text,
) -> None:
    """List the knob specs a name can resolve to: --knobs-dir, $AUTOTUNE_KNOBS_PATH, built-in.

    The first file of a name wins; one that hides another of the same name says so.
    """
    dirs = list(knobs_dir or ())
    specs = known_specs(dirs)
    if format is ListFormat.json:
        typer.echo(json.dumps([s.to_json() for s in specs], indent=2))
    else:
        table = Table()
        for col in ("name", "system", "knobs", "origin", "path", "status"):
            table.add_column(col, overflow="fold")
        for spec in specs:
            status = spec.status
            table.add_row(
                spec.name,
                spec.system or "?",
                "?" if spec.knobs is None else str(spec.knobs),
                spec.origin,
                str(spec.path),
                status if spec.valid else f"[red]{escape(status)}[/]",
            )
        console.print(table)
        searched = "; ".join(d.describe() for d in search_dirs("knobs", dirs))
        console.print(f"searched: {searched}", markup=False)
