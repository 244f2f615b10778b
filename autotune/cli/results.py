"""autotune experiments | trials | best | store upgrade"""

from __future__ import annotations

import csv
import io
import json
from enum import StrEnum
from typing import Annotated, Any

import typer

from autotune.cli._common import StoreOption, console, fail, friendly, open_store
from autotune.cli._format import formatted, recorded_spec, render
from autotune.cli._listing import Column, Format, FormatOption, print_listing
from autotune.cli._progress import _action
from autotune.store import default_url, upgrade
from autotune.tuner import describe, summarize, unstable_line


class TrialFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class ConfigFormat(StrEnum):
    """The system's own: conf (its config file: postgresql.conf, sysctl.conf, redis.conf
    lines), sql (PostgreSQL's ALTER SYSTEM), sh (Linux: sets it now), flags and env
    (a spec-only server's command line or environment); and json."""

    conf = "conf"
    sql = "sql"
    sh = "sh"
    flags = "flags"
    env = "env"
    json = "json"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


EXPERIMENT_COLUMNS = [  # at 80 columns, a long name keeps at least its best
    Column("experiment", name=True),
    Column("system", drop=6),
    Column("workload", drop=7),
    Column("objective", drop=8),
    Column("trials", right=True, drop=3),
    Column("failed", right=True, drop=5),
    Column("baseline", right=True, drop=4, show=_num),
    Column("best", right=True, show=_num),
    Column("created", drop=9),
]


@friendly
def experiments(format: FormatOption = Format.table, store: StoreOption = None) -> None:
    """List experiments with their progress and best result (medians over repeated runs)."""
    with open_store(store) as st:
        rows = []
        for experiment in st.experiments():
            s = summarize(st, experiment)
            baseline = s.robust.baseline if s.robust else None
            rows.append(
                {
                    "experiment": experiment.name,
                    "system": experiment.system,
                    "workload": experiment.workload_name,
                    "objective": f"{experiment.objective_metric} ({experiment.direction[:3]})",
                    "trials": s.trials,
                    "failed": s.failed,
                    "baseline": None if baseline is None else baseline.median,
                    "best": s.robust.best.median if s.robust else None,
                    "created": experiment.created_at.strftime("%Y-%m-%d %H:%M"),
                }
            )
    print_listing(rows, EXPERIMENT_COLUMNS, format)


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
        head = ["number", "status", "baseline", "objective", *metrics, *knobs, *timings]
        writer.writerow([*head, "error", "fidelity", "repeat"])
        for t in rows:
            values = formatted(spec, t.config)
            writer.writerow(
                [t.number, t.status, t.is_baseline, t.objective]
                + [t.metrics.get(m) for m in metrics]
                + [values.get(k) for k in knobs]
                + [t.timings.get(k) for k in timings]
                + [t.error or ""]
                + [t.fidelity, t.repeat]
            )
        typer.echo(out.getvalue(), nl=False)
        return
    first: dict[str, int] = {}  # a config's first trial: what a repeat repeats
    table_rows = []
    for t in rows:
        values = formatted(spec, t.config)
        key = json.dumps(t.config, sort_keys=True, default=str)
        of = first.setdefault(key, t.number)
        run = f"repeat of {of}" if t.repeat and of != t.number else ("repeat" if t.repeat else "")
        if not t.full:
            run = f"{run} {t.fidelity:.2g}×".strip()
        table_rows.append(
            {
                "#": str(t.number) + (" (baseline)" if t.is_baseline else ""),
                "run": run,
                "status": "ok" if t.ok else "failed",
                "objective": t.objective,
                "p95 ms": t.metrics.get("latency_p95_ms"),
                "action": _action(t),
                "measure s": t.timings.get("measure_s"),
                "config": " ".join(f"{k}={v}" for k, v in values.items())
                if t.ok
                else (t.error or ""),
            }
        )
    columns = [
        Column("#", right=True),
        Column("run", drop=1),
        Column("status"),
        Column("objective", experiment.objective_metric, right=True, show=_num),
        Column("p95 ms", right=True, drop=3, show=_num),
        Column("action", drop=2),
        Column("measure s", right=True, drop=4, show=_num),
        Column("config"),
    ]
    title = f"{experiment.name}: {experiment.objective_metric} ({experiment.direction})"
    print_listing(table_rows, columns, Format.table, title=title)


@friendly
def best(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    format: Annotated[ConfigFormat, typer.Option("--format", "-f")] = ConfigFormat.conf,
    store: StoreOption = None,
) -> None:
    """Print the best config in the system's own syntax, to paste as printed: conf (its
    config file), sql (PostgreSQL: ALTER SYSTEM, restart knobs named), sh (Linux:
    sysctl -w and /sys writes), flags or env (a spec-only server), or json.

    After a verification, the best is its best contender and the claim its paired
    ratio to the default: with no verified gain (the CI includes 1), the text
    formats say "keep the default" and print the candidate commented out. Without
    one, the best is the config with the best median over two or more runs, else
    the best single run. The text formats start with a comment saying which; json
    has it all as fields.
    """
    with open_store(store) as st:
        experiment = st.require_experiment(name)
        s = summarize(st, experiment)
    rb, v = s.robust, s.verification
    if rb is None or s.best is None:
        fail(f"experiment {name!r} has no successful trial yet")
        return
    spec = recorded_spec(experiment)
    metric = experiment.objective_metric
    config = s.best.config
    if format is ConfigFormat.json:
        meta: dict[str, Any] = {
            "experiment": experiment.name,
            **rb.to_json(),
            "objective": {metric: rb.best.median},
            "baseline": None if rb.baseline is None else rb.baseline.median,
            "summary": describe(rb, metric),
            "verified": None if v is None else v.verified,
            "recommended": v is None or v.verified,
        }
        if v is not None:
            arm = v.best
            pr = None if arm is None else arm.versus
            meta.update(
                trial=s.best.number,
                verdict=v.verdict,
                rounds=v.rounds,
                ratio=None if pr is None else pr.ratio,
                ratio_ci=None if pr is None else [pr.low, pr.high],
                significant=None if pr is None else pr.significant,
                summary=v.verdict,
                verification=v.to_json(),
            )
        typer.echo(render(spec, config, "json", meta))
        return
    mark = "--" if format is ConfigFormat.sql else "#"
    if v is not None:
        notes = [f"{experiment.name} best: {v.verdict}"]
    else:
        notes = [f"{experiment.name} best: {describe(rb, metric)}; not verified"]
        shaky = unstable_line(rb)
        if shaky is not None:
            notes.append(shaky)
    try:
        body = render(spec, config, format.value)
    except ValueError as exc:
        fail(str(exc))
        return
    if v is not None and not v.verified:
        notes.append("the best candidate, not recommended (uncomment to try it anyway):")
        body = "\n".join(f"{mark} {line}" for line in body.splitlines())
    header = "\n".join(f"{mark} {line}" for line in notes)
    typer.echo(header + "\n" + body)


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
