"""autotune experiments | trials | best | store upgrade"""

from __future__ import annotations

import csv
import io
import json
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from autotune.cli._common import StoreOption, console, fail, friendly, open_store
from autotune.cli._format import formatted, recorded_spec, render
from autotune.cli.tune import _action
from autotune.store import default_url, upgrade
from autotune.tuner import best_trial, summarize


class TrialFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class ConfigFormat(StrEnum):
    conf = "conf"
    sql = "sql"
    json = "json"


@friendly
def experiments(store: StoreOption = None) -> None:
    """List experiments with their progress and best result."""
    with open_store(store) as st:
        table = Table()
        for col in (
            "experiment",
            "system",
            "workload",
            "objective",
            "trials",
            "failed",
            "baseline",
            "best",
            "created",
        ):
            table.add_column(col)
        for experiment in st.experiments():
            s = summarize(st, experiment)
            table.add_row(
                experiment.name,
                experiment.system,
                experiment.workload_name,
                f"{experiment.objective_metric} ({experiment.direction[:3]})",
                str(s.trials),
                str(s.failed),
                _num(s.baseline.objective if s.baseline else None),
                _num(s.best.objective if s.best else None),
                experiment.created_at.strftime("%Y-%m-%d %H:%M"),
            )
        console.print(table)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


@friendly
def trials(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    format: Annotated[TrialFormat, typer.Option("--format", "-f")] = TrialFormat.table,
    store: StoreOption = None,
) -> None:
    """Show an experiment's trials: config, status, objective, metrics and timings."""
    with open_store(store) as st:
        experiment = st.require_experiment(name)
        rows = st.trials(experiment)
    spec = recorded_spec(experiment)
    if format is TrialFormat.json:
        console.print_json(json.dumps([t.to_json() for t in rows]))
        return
    knobs = list(experiment.settings.get("knobs", []))
    metrics = sorted({m for t in rows for m in t.metrics})
    timings = ["apply_s", "restart_s", "reload_s", "warmup_s", "measure_s", "collect_s", "total_s"]
    if format is TrialFormat.csv:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            ["number", "status", "baseline", "objective", *metrics, *knobs, *timings, "error"]
        )
        for t in rows:
            values = formatted(spec, t.config)
            writer.writerow(
                [t.number, t.status, t.is_baseline, t.objective]
                + [t.metrics.get(m) for m in metrics]
                + [values.get(k) for k in knobs]
                + [t.timings.get(k) for k in timings]
                + [t.error or ""]
            )
        typer.echo(out.getvalue(), nl=False)
        return
    table = Table(
        title=f"{experiment.name}: {experiment.objective_metric} ({experiment.direction})"
    )
    for col in (
        "#",
        "status",
        experiment.objective_metric,
        "p95 ms",
        "action",
        "measure s",
        "config",
    ):
        table.add_column(col)
    for t in rows:
        values = formatted(spec, t.config)
        action = _action(t)
        table.add_row(
            str(t.number) + (" (baseline)" if t.is_baseline else ""),
            "ok" if t.ok else "[red]failed[/]",
            _num(t.objective),
            _num(t.metrics.get("latency_p95_ms")),
            action,
            _num(t.timings.get("measure_s")),
            " ".join(f"{k}={v}" for k, v in values.items()) if t.ok else (t.error or ""),
        )
    console.print(table)


@friendly
def best(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    format: Annotated[ConfigFormat, typer.Option("--format", "-f")] = ConfigFormat.conf,
    store: StoreOption = None,
) -> None:
    """Print the best config: a postgresql.conf snippet, ALTER SYSTEM statements, or JSON."""
    with open_store(store) as st:
        experiment = st.require_experiment(name)
        rows = st.trials(experiment)
    top = best_trial(rows, experiment.direction)
    if top is None:
        fail(f"experiment {name!r} has no successful trial yet")
        return
    spec = recorded_spec(experiment)
    baseline = next((t for t in rows if t.is_baseline and t.ok), None)
    meta = {
        "experiment": experiment.name,
        "trial": top.number,
        "objective": {experiment.objective_metric: top.objective},
        "baseline": baseline.objective if baseline else None,
    }
    typer.echo(render(spec, top.config, format.value, meta))


store_app = typer.Typer(help="Manage the results store.", no_args_is_help=True)


@store_app.command("upgrade")
@friendly
def store_upgrade(store: StoreOption = None) -> None:
    """Migrate a store to this autotune's schema (back it up first)."""
    old, new = upgrade(store or default_url())
    if old == new:
        console.print(f"store already at schema {new}")
    else:
        console.print(f"store upgraded from {old or 'empty'} to {new}")
