"""autotune analyze: which knobs mattered in an experiment, and which metrics say it all."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from autotune.analysis import analyze_experiment
from autotune.cli._common import StoreOption, console, friendly, open_store

MAX_MEMBERS = 4  # cluster members named in the text output; the JSON has all


class AnalyzeFormat(StrEnum):
    text = "text"
    json = "json"


@friendly
def analyze(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    top: Annotated[
        int, typer.Option("--top", "-k", min=1, help="How many knobs to show per ranking.")
    ] = 10,
    format: Annotated[AnalyzeFormat, typer.Option("--format", "-f")] = AnalyzeFormat.text,
    store: StoreOption = None,
) -> None:
    """Rank an experiment's knobs and prune its internal metrics, as OtterTune does.

    Knobs are ranked twice: by the order they enter a Lasso path over the knobs
    and their second-order terms, and by a random forest's permutation
    importance; the combined ranking averages the two. Internal metrics are
    grouped by factor analysis and k-means, one representative per group.
    Uses the finished, full-length, ok trials (at least 6); the result is stored
    with the experiment, where `tune` can take its top knobs from.
    """
    with open_store(store) as st:
        experiment = st.require_experiment(name)
        result = analyze_experiment(st, experiment, top=top)
    if format is AnalyzeFormat.json:
        typer.echo(json.dumps(result, indent=2))
        return
    _print_text(result, top)


def _print_text(result: dict[str, Any], top: int) -> None:
    objective = result["objective"]
    console.print(
        f"[bold]{result['experiment']}[/]: {result['n_trials']} full-length ok trials, "
        f"{len(result['knobs'])} knobs, objective {objective['metric']} "
        f"({objective['direction']})"
    )
    lasso = Table(title=f"Lasso path: top {min(top, len(result['lasso']))}", title_justify="left")
    for col in ("rank", "knob", "enters at penalty", "final coef"):
        lasso.add_column(col, justify="left" if col == "knob" else "right")
    for entry in result["lasso"][:top]:
        entered = "never" if entry["entered_at_step"] is None else f"{entry['score']:.3g}"
        lasso.add_row(str(entry["rank"]), entry["name"], entered, f"{entry['final_coef']:.3g}")
    console.print(lasso)
    forest = Table(
        title="Random forest permutation importance (R² lost): "
        f"top {min(top, len(result['forest']))}",
        title_justify="left",
    )
    for col in ("rank", "knob", "importance", "± std"):
        forest.add_column(col, justify="left" if col == "knob" else "right")
    for entry in result["forest"][:top]:
        forest.add_row(
            str(entry["rank"]), entry["name"], f"{entry['score']:.3g}", f"{entry['std']:.2g}"
        )
    console.print(forest)
    combined = Table(
        title=f"Combined: top {min(top, len(result['combined']))}", title_justify="left"
    )
    for col in ("rank", "knob", "mean rank", "lasso", "forest"):
        combined.add_column(col, justify="left" if col == "knob" else "right")
    for entry in result["combined"][:top]:
        combined.add_row(
            str(entry["rank"]),
            entry["name"],
            f"{entry['score']:g}",
            str(entry["lasso_rank"]),
            str(entry["forest_rank"]),
        )
    console.print(combined)
    _print_metrics(result["metrics"])


def _print_metrics(metrics: dict[str, Any]) -> None:
    dropped = metrics["dropped"]
    head = f"Pruned metrics: {len(metrics['representatives'])} of {metrics['internal']} internal"
    if dropped:
        head += f" ({len(dropped)} constant or unmeasured dropped)"
    if metrics["reason"]:
        console.print(f"{head}: {metrics['reason']}", markup=False)
        if not metrics["representatives"]:
            return
    table = Table(title=head if not metrics["reason"] else None, title_justify="left")
    for col in ("representative", "cluster size", "also in the cluster"):
        table.add_column(col, justify="right" if col == "cluster size" else "left")
    for cluster in metrics["clusters"]:
        others = [m for m in cluster["members"] if m != cluster["representative"]]
        shown = ", ".join(others[:MAX_MEMBERS])
        if len(others) > MAX_MEMBERS:
            shown += f", +{len(others) - MAX_MEMBERS} more"
        table.add_row(cluster["representative"], str(cluster["size"]), shown)
    console.print(table)
