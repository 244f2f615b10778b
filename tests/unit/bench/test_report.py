"""Reading runs off at budgets, and the rank / tie / worse-than-random logic."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from autotune.bench.competitors import Evaluation, evaluation_cost
from autotune.bench.report import markdown, p_greater, rank_table, summary
from autotune.bench.runner import Job, RunResult, at_budget, rows_of


def _e(observed: float | None, fidelity: float = 1.0, true: float | None = None) -> Evaluation:
    true = observed if true is None else true
    return Evaluation({}, observed, true, fidelity, 0.1)


def test_best_so_far_at_each_budget() -> None:
    evaluations = [_e(5.0), _e(3.0, true=4.0), _e(None), _e(1.0)]
    assert at_budget(evaluations, 1).best_true == 5.0
    row = at_budget(evaluations, 3)
    assert (row.evaluations, row.best_value, row.best_true) == (3, 3.0, 4.0)
    assert at_budget(evaluations, 10).best_true == 1.0


def test_screening_runs_cost_their_fidelity_and_do_not_pick_the_best() -> None:
    evaluations = [_e(5.0), _e(-9.0, fidelity=1 / 3, true=6.0), _e(4.0, fidelity=1 / 3)]
    row = at_budget(evaluations, 2)
    assert row.evaluations == 3 and row.best_true == 5.0  # the full run, not the noisy short one
    only_short = at_budget([_e(2.0, fidelity=0.5)], 1)
    assert only_short.best_true == 2.0


def test_a_fixed_overhead_per_trial_makes_short_runs_dearer_and_full_runs_the_same() -> None:
    assert evaluation_cost(1.0, overhead=0.3) == pytest.approx(1.0)
    assert evaluation_cost(1 / 9, overhead=0.3) == pytest.approx((1 / 9 + 0.3) / 1.3)
    short = [_e(9.0, fidelity=1 / 9) for _ in range(9)] + [_e(1.0)]
    assert at_budget(short, 2).evaluations == 10  # 9 x 1/9 + 1: all fit without overhead
    with_overhead = at_budget(short, 2, overhead=0.3)
    assert with_overhead.evaluations == 6 and with_overhead.best_true == 9.0
    full = [_e(3.0), _e(2.0), _e(1.0)]
    assert at_budget(full, 2, overhead=0.3) == at_budget(full, 2)


def test_rows_clip_regret_only_where_f_star_was_beaten() -> None:
    result = RunResult(Job("p", "o", 0, 3), [_e(5.0), _e(2.0), _e(1.0)], wall_s=1.0)
    rows = rows_of(result, [1, 3], f_star=1.5)
    assert [r["simple_regret"] for r in rows] == [3.5, 0.0]
    assert rows[1]["best_true"] < rows[1]["f_star"]
    failed = rows_of(RunResult(Job("p", "o", 0, 3), [], 1.0, error="boom"), [3], 0.0)
    assert math.isnan(failed[0]["simple_regret"]) and failed[0]["error"] == "boom"


def _frame(regrets: dict[str, list[float]], problem: str = "p", budget: int = 30) -> pd.DataFrame:
    rows = [
        {
            "problem": problem,
            "optimizer": name,
            "seed": seed,
            "budget": budget,
            "simple_regret": value,
            "best_true": value,
            "f_star": 0.0,
            "wall_s": 1.0,
        }
        for name, values in regrets.items()
        for seed, value in enumerate(values)
    ]
    return pd.DataFrame(rows)


KNOWN = {
    "auto": [float(x) for x in range(1, 11)],  # median 5.5
    "gp": [x + 0.5 for x in range(1, 11)],  # median 6.0: not shown to be worse
    "random": [float(x) for x in range(20, 30)],  # median 24.5: clearly worse than auto
    "bad": [float(x) for x in range(100, 110)],  # clearly worse than random
}


def test_rank_tie_and_worse_than_random_on_a_known_answer() -> None:
    table = rank_table(_frame(KNOWN)).set_index("optimizer")
    assert table.loc["auto", "best"] and not table.loc["gp", "best"]
    assert list(table.loc[["auto", "gp", "random", "bad"], "rank"]) == [1, 2, 3, 4]
    assert table.loc["auto", "tied_best"] and table.loc["gp", "tied_best"]
    assert not table.loc["random", "tied_best"] and not table.loc["bad", "tied_best"]
    assert table.loc["bad", "worse_than_random"] and not table.loc["gp", "worse_than_random"]
    assert not table.loc["random", "worse_than_random"]
    assert table.loc["auto", "ratio_to_random"] == pytest.approx(5.5 / 24.5)
    assert table.loc["random", "ratio_to_random"] == 1.0
    assert table.loc["auto", "median_regret"] == 5.5


def test_equal_medians_share_a_rank_and_failures_count_as_worst() -> None:
    df = _frame({"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 3.0], "random": [1.0, math.nan, 9.0]})
    table = rank_table(df).set_index("optimizer")
    assert list(table["rank"]) == [1, 1, 2]
    assert table.loc["random", "failed"] == 1
    assert table.loc["random", "median_regret"] == 9.0
    assert p_greater([0.0, 0.0], [0.0, 0.0]) == 1.0


def test_summary_states_every_optimisers_record_without_a_verdict() -> None:
    df = pd.concat(
        [
            _frame(KNOWN, problem="p1"),
            _frame({"auto": KNOWN["bad"], "gp": KNOWN["gp"], "random": KNOWN["random"]}, "p2"),
        ]
    )
    text = "\n".join(summary(rank_table(df)))
    assert "**Budget 30** (2 counted problems)" in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    # By mean rank: gp (ranks 2 and 1), auto (1, 3), random (3, 2), bad (4, p1 only).
    assert [r.split("|")[1].strip() for r in rows] == ["`gp`", "`auto`", "`random`", "`bad`"]
    assert "| `gp` | 2 of 2 (100%) | 1.50 | none |" in text
    assert "| `auto` | 1 of 2 (50%) | 2.00 | p2 |" in text  # worse than random on p2
    assert "target" not in text and "met" not in text  # results, not verdicts


def test_summary_counts_only_the_counted_problems() -> None:
    df = pd.concat(
        [
            _frame(KNOWN, problem="p1"),
            _frame({"auto": KNOWN["bad"], "random": KNOWN["random"]}, problem="p2"),
        ]
    )
    text = "\n".join(summary(rank_table(df), counted=["p1"]))
    assert "Not counted below (shown in the tables): p2." in text
    assert "(1 counted problems)" in text and "| `auto` | 1 of 1 (100%) | 1.00 | none |" in text
    assert summary(rank_table(df.iloc[0:0])) == ["No runs."]
    alone = "\n".join(summary(rank_table(_frame({"gp": [1.0], "auto": [2.0]}))))
    assert "`random` did not run" in alone


def test_markdown_report_has_every_section() -> None:
    text = markdown(_frame(KNOWN), {"p": {"description": "a test", "f_star": "0", "noise": "0"}})
    for needle in ("## Summary", "## Budget 30", "### p, budget 30", "Wall time", "`auto` (best)"):
        assert needle in text
    assert "| p | a test | 0 | 0 | – | yes |" in text
    facts = {"p": {"description": "d", "f_star": "0", "noise": "0", "fit": "R² 0.31 (5-fold CV)"}}
    shown = markdown(_frame(KNOWN), facts, counted=[])
    assert "| p | d | 0 | 0 | R² 0.31 (5-fold CV) | no |" in shown
