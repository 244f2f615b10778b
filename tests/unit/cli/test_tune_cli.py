"""`autotune tune`: its options and the summary it prints (sessions themselves run in
tests/integration, on real PostgreSQL)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from typer.testing import CliRunner

from autotune.cli import app
from autotune.cli._common import console
from autotune.cli._progress import _print_summary
from autotune.cli._tune_inputs import top_knobs_option
from autotune.optimizers import OPTIMIZERS
from autotune.spec import Machine, Spec
from autotune.store import Experiment, Store, Trial
from autotune.tuner import DEFAULT_OPTIMIZER, summary_of
from tests.unit._support import MACHINE, ROOT

runner = CliRunner()
SPEC = str(ROOT / "tests" / "data" / "poison.yaml")
WORKLOAD = str(ROOT / "tests" / "data" / "workloads" / "tiny-tpcb.yaml")


@pytest.fixture(autouse=True)
def fixed_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Machine, "local", classmethod(lambda cls: MACHINE))


def test_help_lists_the_optimizers_and_explains_repeats_and_the_time_budget() -> None:
    result = runner.invoke(app, ["tune", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    text = re.sub(r"[│╭╮╰╯─]", " ", text)
    text = " ".join(text.split())
    assert f"One of: {', '.join(sorted(OPTIMIZERS))}. Default {DEFAULT_OPTIMIZER}." in text
    assert "Default 0: the verification after the search is what the claim rests on" in text
    assert "--verify --no-verify" in text and "Default: from 10 trials up." in text
    assert "--precision" in text and "--max-rounds" in text
    assert "--time-budget" in text and "no new trial starts" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trials", "10", "--repeats", "9"], "--repeats 9 leaves no trial to search"),
        (["--trials", "4", "--repeats", "-1"], "--repeats"),
        (["--time-budget", "0"], "--time-budget"),
    ],
)
def test_bad_repeats_or_time_budget_are_refused_before_anything_runs(
    args: list[str], message: str, store_url: str
) -> None:
    result = runner.invoke(
        app,
        ["tune", "--system", SPEC, "--workload", WORKLOAD, *args, "--store", store_url],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "a new experiment needs --system and --workload"),
        (["--experiment", "ghost"], "(no experiment 'ghost' in the store to resume)"),
        (["--system", SPEC, "--experiment", "ghost"], "a new experiment needs --system and"),
    ],
)
def test_without_system_and_workload_only_a_stored_experiment_resumes(
    args: list[str], message: str, store_url: str
) -> None:
    result = runner.invoke(app, ["tune", *args, "--store", store_url], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_a_resume_by_name_of_an_existing_server_asks_for_its_dsn_again(
    store: Store, make_experiment: Callable[..., Experiment], store_url: str
) -> None:
    make_experiment("remote", settings={"target": "host=db1 dbname=bench", "knobs": ["mem"]})
    result = runner.invoke(
        app, ["tune", "--experiment", "remote", "--store", store_url], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 2, result.output
    assert "tuned an existing server (host=db1 dbname=bench); pass --dsn again" in result.output


# -- the summary ------------------------------------------------------------------------------


@pytest.fixture
def spec(make_spec: Callable[..., Spec]) -> Spec:
    return make_spec((ROOT / "tests" / "data" / "poison.yaml").read_text())


def printed(spec: Spec, trials: list[Trial], direction: str = "maximize") -> str:
    summary = summary_of("exp", "tps", direction, trials, "sqlite:///x.db")
    with console.capture() as captured:
        _print_summary(spec, summary, 0.0, 0.0)
    return captured.get()


def trial(
    number: int, value: float | None, work_mem: int, **fields: Any
) -> Trial:  # shared_buffers 16384 and work_mem 4096 are the defaults
    return Trial(
        number=number,
        config={"shared_buffers": 16384, "work_mem": work_mem},
        status="ok" if value is not None else "failed",
        objective=value,
        started_at=None,
        finished_at=None,
        is_baseline=work_mem == 4096,
        timings={"measure_s": 1.0, "total_s": 2.0},
        **fields,
    )


def test_a_confirmed_significant_best(spec: Spec) -> None:
    trials = [
        trial(1, 3050.0, 4096),
        trial(2, 3320.0, 8192),
        trial(3, 3100.0, 2048),
        trial(4, 3040.0, 4096, repeat=True),
        trial(5, 3300.0, 8192, repeat=True),
        trial(6, 3060.0, 4096, repeat=True),
        trial(7, 3340.0, 8192, repeat=True),
        trial(8, None, 1024),
    ]
    out = printed(spec, trials)
    assert "baseline      3050 tps (maximize)  (median of 3 runs, trial 1)" in out
    (best,) = [line for line in out.splitlines() if line.startswith("best  ")]
    assert re.fullmatch(
        r"best +trial 2 \(3 runs\), median 3320 tps, 1\.09× baseline "
        r"\(95% CI 1\.0\d–1\.\d+\), significant; not verified",
        best,
    ), best
    assert "8.9% better than the baseline's median  (runs: 3320, 3300, 3340)" in out
    assert "trials        8 done, 1 failed, 4 repeats" in out
    assert "unstable" not in out
    assert "work_mem = '8MB'" in out  # the robust best's config, as postgresql.conf lines


def test_an_unconfirmed_best_says_so(spec: Spec) -> None:
    out = printed(
        spec, [trial(1, 100.0, 4096), trial(2, 120.0, 8192), trial(3, 500.0, 2048, fidelity=0.25)]
    )
    assert (
        "best          trial 2 (single run, not confirmed), value 120 tps, 1.2× baseline; "
        "not verified" in out
    )
    assert "run autotune verify before trusting a gain" in out
    assert "trials        3 done, 0 failed, 1 short" in out


def test_not_significant_and_unstable_are_said_plainly(spec: Spec) -> None:
    trials = [
        trial(1, 100.0, 4096),
        trial(2, 104.0, 8192),
        trial(3, 95.0, 4096, repeat=True),
        trial(4, 140.0, 8192, repeat=True),
        trial(5, 105.0, 4096, repeat=True),
        trial(6, 80.0, 8192, repeat=True),
    ]
    out = printed(spec, trials)
    assert "not significant, unstable" in out
    assert "unstable      trial 2 (3 runs, cv 0.28, range 58%)" in out
    assert "(cv > 0.1 or range > 25% of the median)" in out


def test_when_nothing_beats_the_baseline(spec: Spec) -> None:
    out = printed(
        spec,
        [trial(1, 100.0, 4096), trial(2, 90.0, 8192), trial(3, 101.0, 4096, repeat=True)],
    )
    assert "best          trial 1 (2 runs), median 100.5 tps: the baseline; no config beat it" in (
        out
    )


def verify_run(number: int, round_: int, arm: str, value: float | None, work_mem: int) -> Trial:
    return dataclasses.replace(
        trial(number, value, work_mem), is_baseline=False, phase="verify", round=round_, arm=arm
    )


def verified(ratios: list[float], pgtune: Sequence[float] = ()) -> list[Trial]:
    """A search of three trials, then rounds of default and trial 2 at these ratios (and
    pgtune at its own, if given)."""
    out = [trial(1, 3000.0, 4096), trial(2, 3600.0, 8192), trial(3, 3100.0, 2048)]
    number = 3
    for r, ratio in enumerate(ratios, start=1):
        base = 3000.0 * (1 + 0.1 * (r % 3))  # the host drifts between rounds
        arms = [("default", base, 4096), ("trial 2", base * ratio, 8192)]
        if pgtune:
            arms.append(("pgtune", base * pgtune[r - 1], 16384))
        for arm, value, mem in arms:
            number += 1
            out.append(verify_run(number, r, arm, value, mem))
    return out


def test_a_verified_gain_is_the_summarys_best_with_its_paired_ci(spec: Spec) -> None:
    out = printed(spec, verified([1.05, 1.06, 1.04, 1.05]))
    assert "verification: 4 paired rounds, tps" in out
    assert re.search(r"trial 2 ◀ best +4 +\S+ +1\.050 +1\.0[34]\d–1\.0[56]\d +better", out), out
    (best,) = [line for line in out.splitlines() if line.startswith("best  ")]
    assert best.startswith("best          verified gain: trial 2 is 1.050× the default (95% CI")
    assert "trials        3 done, 0 failed, then 8 verification runs" in out
    assert "best config (postgresql.conf):" in out and "work_mem = '8MB'" in out


def test_no_verified_gain_says_keep_the_default(spec: Spec) -> None:
    # In the search, trial 2 read 20% above the default; head to head it is not better.
    out = printed(spec, verified([1.04, 0.97, 1.02, 0.99]))
    (best,) = [line for line in out.splitlines() if line.startswith("best  ")]
    assert best.startswith("best          no verified gain: keep the default (trial 2 is 1.00")
    assert re.search(r"trial 2 ◀ best +4 +\S+ +1\.00\d +0\.9\d+–1\.\d+ +NOT significant", out), out
    assert "no verified gain: keep the default. The best candidate (postgresql.conf), not " in (
        " ".join(out.split())
    )


def test_pgtune_verified_ahead_of_the_best_is_said_and_printed(spec: Spec) -> None:
    out = printed(spec, verified([0.97, 0.96, 0.98, 0.97], pgtune=[1.04, 1.05, 1.04, 1.04]))
    text = " ".join(out.split())
    assert "but pgtune's config is a verified 1.04" in text and "ahead of it" in text
    assert "work_mem = '16MB'" in text.split("pgtune's config, verified ahead of it:")[1]
    # Not printed when pgtune is behind the best.
    out = printed(spec, verified([1.05, 1.06, 1.05, 1.05], pgtune=[1.01, 1.02, 1.01, 1.01]))
    assert "pgtune's config" not in out


# -- --knobs top:K --from NAME ----------------------------------------------------------------


def test_top_k_takes_the_best_ranked_knobs_this_spec_may_tune(
    store: Store, make_experiment: Callable[..., Experiment], postgres_spec: Spec
) -> None:
    past = make_experiment("past")
    ranking = ["fsync", "shared_buffers", "not_a_knob", "work_mem", "random_page_cost"]
    store.add_analysis(
        past, "analyze", {"combined": [{"name": n, "rank": i + 1} for i, n in enumerate(ranking)]}
    )
    url = store.url
    # fsync is unsafe and not_a_knob is not in the spec: both are passed over.
    assert top_knobs_option("top:2", "past", postgres_spec, url, False) == "shared_buffers,work_mem"
    assert top_knobs_option("top:2", "past", postgres_spec, url, True) == "fsync,shared_buffers"
    assert top_knobs_option("top:9", "past", postgres_spec, url, False).split(",") == [
        "shared_buffers",
        "work_mem",
        "random_page_cost",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--knobs", "top:0", "--from", "past"], "K must be a whole number of at least 1"),
        (["--knobs", "top:x", "--from", "past"], "K must be a whole number of at least 1"),
        (["--knobs", "top:3"], "needs --from EXPERIMENT"),
        (["--from", "past"], "--from goes with --knobs top:K"),
        (["--knobs", "top:3", "--from", "ghost"], "ghost"),
        (["--warm-start", "ghost"], "--warm-start: no experiment 'ghost'"),
        (["--start-with", "pgtnue"], "--start-with 'pgtnue': choose one of none, pgtune"),
    ],
)
def test_top_k_and_warm_start_mistakes_are_one_clear_error(
    args: list[str], message: str, store_url: str
) -> None:
    result = runner.invoke(
        app,
        ["tune", "--system", SPEC, "--workload", WORKLOAD, *args, "--store", store_url],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
