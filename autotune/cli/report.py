"""autotune report: an experiment's self-contained HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autotune.cli._common import StoreOption, console, friendly, open_store


@friendly
def report(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The HTML file to write.", dir_okay=False)
    ] = Path("report.html"),
    store: StoreOption = None,
) -> None:
    """Write an experiment's report: one HTML file with charts, trials, failures and
    the best config, viewable offline (plotly.js is inlined)."""
    # Imported here: autotune.report uses autotune.cli._format, so importing it while
    # autotune.cli initialises would be circular.
    from autotune.report import write_report

    with open_store(store) as st:
        path = write_report(st, name, out)
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", markup=False)
