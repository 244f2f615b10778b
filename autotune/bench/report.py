"""From the runs' CSV to the ranked table: median regret, ratio to random, rank, ties.

An optimiser is "tied-best" on a problem when a one-sided Mann–Whitney U test
cannot show, at p < 0.05, that its regrets are larger than those of the
optimiser with the lowest median: with 20 seeds, a small difference in
medians is often noise. The same test against random search flags an
optimiser that is significantly worse than random.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

ALPHA = 0.05
REFERENCE = "random"


def p_greater(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """p-value of "``a`` tends to be larger than ``b``" (one-sided Mann–Whitney U)."""
    from scipy.stats import mannwhitneyu

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0:
        return math.nan
    if np.array_equal(np.unique(a), np.unique(b)) and len(np.unique(a)) == 1:
        return 1.0  # identical constants: nothing to show
    return float(mannwhitneyu(a, b, alternative="greater").pvalue)


def _regrets(frame: pd.DataFrame) -> np.ndarray:
    """A failed run (no regret) counts as the worst possible."""
    values = frame["simple_regret"].to_numpy(dtype=float)
    return np.where(np.isnan(values), np.inf, values)


def rank_table(df: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per (problem, budget, optimizer): runs, median regret, ratio to
    random's median, rank by median (ties share the lower rank), best, tied-best,
    p-value against the best, and whether it is significantly worse than random."""
    out = []
    for (problem, budget), group in df.groupby(["problem", "budget"], sort=True):
        regrets = {str(o): _regrets(g) for o, g in group.groupby("optimizer", sort=True)}
        medians = {o: float(np.median(r)) for o, r in regrets.items()}
        means = {o: float(np.mean(r)) for o, r in regrets.items()}
        best = min(regrets, key=lambda o: (medians[o], means[o], o))
        ordered = sorted(set(medians.values()))
        reference = regrets.get(REFERENCE)
        ref_median = medians.get(REFERENCE)
        for optimizer, r in regrets.items():
            if ref_median is None:
                ratio = math.nan
            elif ref_median == 0:
                ratio = 1.0 if medians[optimizer] == 0 else math.inf
            else:
                ratio = medians[optimizer] / ref_median
            p_best = 1.0 if optimizer == best else p_greater(r, regrets[best])
            p_random = (
                math.nan if reference is None or optimizer == REFERENCE else p_greater(r, reference)
            )
            out.append(
                {
                    "problem": problem,
                    "budget": int(str(budget)),
                    "optimizer": optimizer,
                    "runs": len(r),
                    "failed": int(np.isinf(r).sum()),
                    "median_regret": medians[optimizer],
                    "ratio_to_random": ratio,
                    "rank": ordered.index(medians[optimizer]) + 1,
                    "best": optimizer == best,
                    "tied_best": optimizer == best or p_best >= alpha,
                    "p_vs_best": p_best,
                    "worse_than_random": bool(p_random < alpha),
                }
            )
    return pd.DataFrame(out)


def summary(ranks: pd.DataFrame, counted: Iterable[str] | None = None) -> list[str]:
    """Per budget, every optimiser's record over the counted problems: on how many it is
    best or tied-best, its mean rank, and where it is significantly worse than random.

    Results only: which optimiser should win, and by how much, is the experiment's to
    say (its README), not the report's. ``counted`` names the problems the record is
    over (None: all); the others are still in the per-problem tables.
    """
    if ranks.empty:
        return ["No runs."]
    keep = set(ranks["problem"]) if counted is None else set(counted)
    left_out = sorted(set(ranks["problem"]) - keep)
    lines = []
    if left_out:
        lines += [f"Not counted below (shown in the tables): {', '.join(left_out)}.", ""]
    for budget, group in ranks[ranks["problem"].isin(keep)].groupby("budget", sort=True):
        n = group["problem"].nunique()
        rows = []
        for optimizer, mine in group.groupby("optimizer", sort=True):
            good = int(mine["tied_best"].sum())
            worse = sorted(mine[mine["worse_than_random"]]["problem"])
            rows.append(
                (
                    float(mine["rank"].mean()),
                    str(optimizer),
                    [
                        f"`{optimizer}`",
                        f"{good} of {n} ({good / n:.0%})",
                        f"{mine['rank'].mean():.2f}",
                        ", ".join(worse) if worse else "none",
                    ],
                )
            )
        rows.sort(key=lambda r: (r[0], r[1]))
        lines += [f"**Budget {budget}** ({n} counted problems), by mean rank:", ""]
        lines += _table(
            [
                "optimizer",
                "best or tied-best",
                "mean rank",
                f"worse than {REFERENCE} (p < {ALPHA})",
            ],
            [r[2] for r in rows],
        )
        if REFERENCE not in set(group["optimizer"]):
            lines += ["", f"`{REFERENCE}` did not run, so no comparison with it."]
        lines.append("")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _fmt(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞"
    if value == 0:
        return "0"
    return f"{value:.3g}" if abs(value) >= 1e-3 else f"{value:.2e}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown(
    df: pd.DataFrame,
    problems: dict[str, dict[str, str]],
    preamble: Sequence[str] = (),
    counted: Iterable[str] | None = None,
) -> str:
    """The report: summary, a rank overview per budget, per-problem tables and wall times.

    ``problems`` maps a problem name to facts to show (description, f_star, noise,
    fit: a surrogate's cross-validated R²); ``counted`` the problems the summary is over.
    """
    ranks = rank_table(df)
    lines = ["# Optimiser benchmark", "", *preamble]
    lines += ["", "## Summary", "", *summary(ranks, counted)]
    lines += [
        "",
        "Tied-best: a one-sided Mann–Whitney U test cannot show (p < 0.05) that the "
        "optimiser's regrets are larger than the best optimiser's (lowest median). "
        "Ratio: median regret over random search's median regret (< 1 is better).",
    ]
    lines += ["", "## Problems", ""]
    keep = set(problems) if counted is None else set(counted)
    lines += _table(
        ["problem", "what", "f*", "noise σ", "surrogate fit", "counted"],
        [
            [
                name,
                facts.get("description", ""),
                facts.get("f_star", ""),
                facts.get("noise", ""),
                facts.get("fit", "–"),
                "yes" if name in keep else "no",
            ]
            for name, facts in problems.items()
        ],
    )
    names = sorted(set(ranks["optimizer"])) if not ranks.empty else []
    for budget, group in ranks.groupby("budget", sort=True):
        lines += ["", f"## Budget {budget}: rank by median regret", ""]
        lines += [
            "`1` is the lowest median; `*` marks best or tied-best; "
            "`!` marks significantly worse than random.",
            "",
        ]
        plist = sorted(set(group["problem"]))
        rows = []
        for optimizer in names:
            cells = []
            ranks_here = []
            for problem in plist:
                hit = group[(group["problem"] == problem) & (group["optimizer"] == optimizer)]
                if hit.empty:
                    cells.append("–")
                    continue
                r = hit.iloc[0]
                ranks_here.append(int(r["rank"]))
                mark = ("*" if r["tied_best"] else "") + ("!" if r["worse_than_random"] else "")
                cells.append(f"{int(r['rank'])}{mark}")
            tied = int(group[group["optimizer"] == optimizer]["tied_best"].sum())
            mean_rank = f"{np.mean(ranks_here):.1f}" if ranks_here else "–"
            rows.append([f"`{optimizer}`", *cells, mean_rank, f"{tied}/{len(plist)}"])
        lines += _table(["optimizer", *plist, "mean rank", "tied-best"], rows)
        for problem in plist:
            facts = problems.get(problem, {})
            lines += ["", f"### {problem}, budget {budget} (f* = {facts.get('f_star', '?')})", ""]
            here = group[group["problem"] == problem].sort_values(["rank", "optimizer"])
            lines += _table(
                [
                    "optimizer",
                    "runs",
                    "median regret",
                    "ratio to random",
                    "rank",
                    "tied-best",
                    "p vs best",
                    "worse than random",
                ],
                [
                    [
                        f"`{r['optimizer']}`" + (" (best)" if r["best"] else ""),
                        str(r["runs"]) + (f" ({r['failed']} failed)" if r["failed"] else ""),
                        _fmt(float(r["median_regret"])),
                        _fmt(float(r["ratio_to_random"])),
                        str(r["rank"]),
                        "yes" if r["tied_best"] else "no",
                        _fmt(float(r["p_vs_best"])),
                        "yes" if r["worse_than_random"] else "no",
                    ]
                    for _, r in here.iterrows()
                ],
            )
    if not df.empty:
        top = int(df["budget"].max())
        wall = df[df["budget"] == top].groupby(["optimizer", "problem"])["wall_s"].median()
        plist = sorted(set(df["problem"]))
        lines += ["", f"## Wall time per run (median seconds, {top} evaluations)", ""]
        lines += _table(
            ["optimizer", *plist],
            [[f"`{o}`", *(_fmt(float(wall.get((o, p), math.nan))) for p in plist)] for o in names],
        )
    beaten = df[df["best_true"] < df["f_star"]] if not df.empty else df
    if not beaten.empty:
        lines += [
            "",
            f"Note: {len(beaten)} rows found a value below the estimated f* of "
            f"{', '.join(sorted(set(beaten['problem'])))}; their regret is clipped at 0.",
        ]
    return "\n".join(lines) + "\n"


def write_markdown(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
