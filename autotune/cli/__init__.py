"""The command line: thin commands over the spec, tuner, agent and store."""

from __future__ import annotations

import typer

from autotune.cli import (
    analyze,
    baseline,
    datasets,
    exchange,
    knobs,
    replay,
    report,
    results,
    service,
)
from autotune.cli.tune import tune

app = typer.Typer(
    name="autotune",
    help="Tune PostgreSQL (and any system with a knob spec) with Bayesian optimisation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(knobs.app, name="knobs")
app.command()(knobs.systems)
app.add_typer(results.store_app, name="store")
app.command()(tune)
app.command()(results.experiments)
app.command()(results.trials)
app.command()(results.best)
app.command()(service.server)
app.add_typer(service.agents_app, name="agents")
app.command()(service.agent)
app.add_typer(baseline.app, name="baseline")
app.add_typer(datasets.app, name="datasets")
app.command()(analyze.analyze)
app.command("export")(exchange.export)
app.command("import")(exchange.import_)
app.command()(report.report)
app.command()(replay.replay)
app.command()(replay.verify)
app.add_typer(__import__("autotune.cli.bench", fromlist=["app"]).app, name="bench")


def main() -> None:
    app()
