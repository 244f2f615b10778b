"""autotune knobs validate|show|import, and ``systems`` (registered as ``autotune systems``)"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from autotune._resources import known_specs, search_dirs
from autotune.cli._common import KnobsDirOption, console, err, fail, friendly
from autotune.cli._listing import Column, Format, FormatOption, print_listing, say
from autotune.spec import SpecError, load_spec
from autotune.systems import check_applier

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


KNOB_COLUMNS = [
    Column("knob", name=True),
    Column("type", drop=4),
    Column("default"),
    Column("range", data=False),  # min .. max, or the values, wrapping at spaces
    Column("min", table=False),
    Column("max", table=False),
    Column("scale", drop=5),
    Column("apply", drop=2),
    Column("safety"),  # kept: an unsafe knob must show as such at any width
    Column("special", drop=6),
    Column("tunable", drop=3, show=lambda v: "yes" if v else "fixed"),
]


@app.command()
@friendly
def show(
    file: Annotated[Path, typer.Argument(help="Spec file.")],
    format: FormatOption = Format.table,
) -> None:
    """Print a spec's knobs as a table, bounds resolved on this machine."""
    spec = load_spec(file)
    rows = []
    for knob in spec.knobs.values():
        if knob.numeric:
            lo, hi = knob.format(knob.lo), knob.format(knob.hi)
            span = f"{lo} .. {hi}"
        elif knob.type == "enum":
            lo, hi = "|".join(knob.values), ""
            span = " | ".join(knob.values)
        else:
            lo, hi = "off", "on"
            span = "off | on"
        rows.append(
            {
                "knob": knob.name,
                "range": span,
                "type": knob.type,
                "default": knob.format(knob.default),
                "min": lo,
                "max": hi,
                "scale": knob.scale if knob.numeric else "",
                "apply": knob.apply,
                "safety": knob.safety,
                "special": ", ".join(str(v) for v in knob.special),
                "tunable": knob.tunable,
            }
        )
    print_listing(rows, KNOB_COLUMNS, format, title=f"{spec.system}: {spec.path}")
    if format is not Format.table:
        return
    for constraint in spec.constraints:
        say(f"constraint: {constraint.text}")
    for name, members in spec.groups.items():
        say(f"group {name}: {', '.join(members)}")


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
    from autotune.systems.postgres import fetch_settings, import_settings

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


SPEC_COLUMNS = [
    Column("name", name=True),
    Column("system", drop=2),
    Column("knobs", right=True, drop=3),
    Column("origin", drop=1),
    Column("path"),
    Column("status"),
]


def systems(
    knobs_dir: KnobsDirOption = None,
    format: FormatOption = Format.table,
) -> None:
    """List the knob specs a name can resolve to: --knobs-dir, $AUTOTUNE_KNOBS_PATH, built-in.

    The first file of a name wins; one that hides another of the same name says so.
    """
    dirs = list(knobs_dir or ())
    specs = known_specs(dirs)
    if format is Format.json:  # as before: every field of each spec
        typer.echo(json.dumps([s.to_json() for s in specs], indent=2))
        return
    rows = [
        {
            "name": spec.name,
            "system": spec.system or "?",
            "knobs": spec.knobs,
            "origin": spec.origin,
            "path": str(spec.path),
            "status": spec.status,
        }
        for spec in specs
    ]
    print_listing(rows, SPEC_COLUMNS, format)
    if format is Format.table:
        searched = "; ".join(d.describe() for d in search_dirs("knobs", dirs))
        say(f"searched: {searched}")
