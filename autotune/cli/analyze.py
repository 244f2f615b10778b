"""autotune analyze: which knobs mattered in an experiment, and which metrics say it all."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer

from autotune.analysis import analyze_experiment
from autotune.cli._common import StoreOption, friendly, open_store
from autotune.cli._listing import Column, Format, FormatOption, print_listing, say

MAX_MEMBERS = 4  # cluster members named in the text output; the JSON has all


FEW_TRIALS = 20  # below this many, a ranking is a hint, not a finding


@friendly
def analyze(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    top: Annotated[
        int, typer.Option("--top", "-k", min=1, help="How many knobs to show per ranking.")
    ] = 10,
    format: FormatOption = Format.table,
    store: StoreOption = None,
) -> None:
    """Rank an experiment's knobs and prune its internal metrics, as OtterTune does.

    Knobs are ranked twice: by the order they enter a Lasso path over the knobs
    and their second-order terms, and by a random forest's permutation
    importance; the combined ranking averages the two. Internal metrics are
    grouped by factor analysis and k-means, one representative per group.
    Uses the finished, full-length, ok trials (at least 6); the result is stored
    with the experiment, where `tune` can take its top knobs from. The table
    warns when it ranked from fewer than 20 trials or the two rankings disagree;
    csv is the combined ranking.
    """
    with open_store(store) as st:
        experiment = st.require_experiment(name)
        result = analyze_experiment(st, experiment, top=top)
    if format is Format.json:
        typer.echo(json.dumps(result, indent=2))
        return
    if format is Format.csv:
        lasso = {e["name"]: e for e in result["lasso"]}
        forest = {e["name"]: e for e in result["forest"]}
        rows = [
            {
                "rank": e["rank"],
                "knob": e["name"],
                "mean_rank": e["score"],
                "lasso_rank": e["lasso_rank"],
                "forest_rank": e["forest_rank"],
                "lasso_penalty": lasso[e["name"]]["score"] if e["name"] in lasso else None,
                "forest_importance": forest[e["name"]]["score"] if e["name"] in forest else None,
            }
            for e in result["combined"]
        ]
        columns = [Column(k) for k in rows[0]] if rows else [Column("knob")]
        print_listing(rows, columns, Format.csv)
        return
    _print_text(result, top)


def cautions(result: dict[str, Any]) -> list[str]:
    """Why a ranking may not hold: few trials, or the two methods disagreeing at the top."""
    out = []
    n = result["n_trials"]
    if n < FEW_TRIALS:
        out.append(
            f"caution: ranked from {n} trials; below {FEW_TRIALS} a ranking is a hint, "
            "not a finding: run more trials before dropping knobs by it"
        )
    k = min(3, len(result["lasso"]), len(result["forest"]))
    if k:
        lasso = {e["name"] for e in result["lasso"][:k]}
        forest = {e["name"] for e in result["forest"][:k]}
        shared = len(lasso & forest)
        if shared < (k + 1) // 2:
            out.append(
                f"caution: the Lasso path and the forest share {shared} of their top {k} "
                "knobs: the data do not single out the important ones"
            )
    return out


def _fmt(spec: str) -> Callable[[Any], str]:
    return lambda v: "-" if v is None else format(v, spec)


def _print_text(result: dict[str, Any], top: int) -> None:
    objective = result["objective"]
    say(
        f"{result['experiment']}: ranked from {result['n_trials']} full-length ok "
        f"trials, {len(result['knobs'])} knobs, objective {objective['metric']} "
        f"({objective['direction']})"
    )
    for line in cautions(result):
        say(line)
    lasso = [
        {
            "rank": e["rank"],
            "knob": e["name"],
            "entered": "never" if e["entered_at_step"] is None else f"{e['score']:.3g}",
            "coef": e["final_coef"],
        }
        for e in result["lasso"][:top]
    ]
    print_listing(
        lasso,
        [
            Column("rank", right=True),
            Column("knob", name=True),
            Column("entered", "enters at penalty", right=True),
            Column("coef", "final coef", right=True, show=_fmt(".3g")),
        ],
        Format.table,
        title=f"Lasso path: top {len(lasso)}",
    )
    forest = [
        {"rank": e["rank"], "knob": e["name"], "importance": e["score"], "std": e["std"]}
        for e in result["forest"][:top]
    ]
    print_listing(
        forest,
        [
            Column("rank", right=True),
            Column("knob", name=True),
            Column("importance", right=True, show=_fmt(".3g")),
            Column("std", "± std", right=True, show=_fmt(".2g")),
        ],
        Format.table,
        title=f"Random forest permutation importance (R² lost): top {len(forest)}",
    )
    combined = [
        {
            "rank": e["rank"],
            "knob": e["name"],
            "mean": e["score"],
            "lasso": e["lasso_rank"],
            "forest": e["forest_rank"],
        }
        for e in result["combined"][:top]
    ]
    print_listing(
        combined,
        [
            Column("rank", right=True),
            Column("knob", name=True),
            Column("mean", "mean rank", right=True, show=_fmt("g")),
            Column("lasso", right=True),
            Column("forest", right=True),
        ],
        Format.table,
        title=f"Combined: top {len(combined)}",
    )
    _print_metrics(result["metrics"])


def _print_metrics(metrics: dict[str, Any]) -> None:
    dropped = metrics["dropped"]
    head = f"Pruned metrics: {len(metrics['representatives'])} of {metrics['internal']} internal"
    if dropped:
        head += f" ({len(dropped)} constant or unmeasured dropped)"
    if metrics["reason"]:
        say(f"{head}: {metrics['reason']}")
        if not metrics["representatives"]:
            return
    rows = []
    for cluster in metrics["clusters"]:
        others = [m for m in cluster["members"] if m != cluster["representative"]]
        shown = ", ".join(others[:MAX_MEMBERS])
        if len(others) > MAX_MEMBERS:
            shown += f", +{len(others) - MAX_MEMBERS} more"
        rows.append({"metric": cluster["representative"], "size": cluster["size"], "also": shown})
    print_listing(
        rows,
        [
            Column("metric", "representative", name=True),
            Column("size", "cluster size", right=True),
            Column("also", "also in the cluster"),
        ],
        Format.table,
        title=head if not metrics["reason"] else None,
    )
