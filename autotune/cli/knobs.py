"""autotune knobs validate|show"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from autotune.cli._common import console, err, friendly
from autotune.spec import SpecError, load_spec

app = typer.Typer(help="Check and inspect knob specs.", no_args_is_help=True)


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
