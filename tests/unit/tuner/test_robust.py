"""The noise-aware best: medians over repeats, the ratio to the baseline and its bootstrap CI."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from autotune.store import Trial
from autotune.tuner import (
    bootstrap_ci,
    bootstrap_ratio_ci,
    config_runs,
    describe,
    paired_ratio_ci,
    robust_best,
    unstable_line,
)
from autotune.tuner._robust import oriented_ratio

MakeTrial = Callable[..., Trial]
BASE = {"mem": 4096, "ratio": 0.5}


def cfg(n: int) -> dict[str, Any]:
    return {"mem": 4096 + n, "ratio": 0.5}


@pytest.fixture
def runs(make_trial: MakeTrial) -> Callable[..., list[Trial]]:
    """Trials from (config id, value) pairs; config 0 is the baseline, later runs are repeats."""

    def make(*pairs: tuple[int, float | None], **fields: Any) -> list[Trial]:
        out, seen = [], set()
        for number, (which, value) in enumerate(pairs, start=1):
            out.append(
                make_trial(
                    number,
                    value,
                    "ok" if value is not None else "failed",
                    config=BASE if which == 0 else cfg(which),
                    baseline=which == 0,
                    repeat=which in seen,
                    **fields,
                )
            )
            seen.add(which)
        return out

    return make


def test_groups_full_length_ok_runs_by_config(
    runs: Callable[..., list[Trial]], make_trial: MakeTrial
) -> None:
    trials = [
        *runs((0, 100.0), (1, 110.0), (2, None), (1, 112.0)),
        make_trial(5, 500.0, config=cfg(3), fidelity=0.5),  # a short run: not comparable
    ]
    groups = config_runs(trials)
    assert [(g.first.number, g.n, g.is_baseline) for g in groups] == [(1, 1, True), (2, 2, False)]
    assert groups[1].values == [110.0, 112.0]
    assert groups[1].median == 111.0


def test_known_answer_maximize(runs: Callable[..., list[Trial]]) -> None:
    trials = runs((0, 100.0), (1, 110.0), (0, 102.0), (1, 112.0), (0, 98.0), (1, 108.0))
    rb = robust_best(trials, "maximize")
    assert rb is not None
    assert rb.confirmed and rb.trial.number == 2 and rb.best.n == 3
    assert rb.best.median == 110.0 and rb.baseline is not None and rb.baseline.median == 100.0
    assert rb.ratio == pytest.approx(1.1)
    assert rb.improvement_pct == pytest.approx(10.0)
    assert rb.ci is not None
    low, high = rb.ci
    # Every resampled median lies in the data's range: 108/102 <= ratio <= 112/98.
    assert 108 / 102 - 1e-9 <= low <= 1.1 <= high <= 112 / 98 + 1e-9
    assert rb.significant
    assert not rb.best.unstable and rb.unstable == ()
    line = describe(rb, "tps")
    assert line.startswith("trial 2 (3 runs), median 110 tps, 1.1× baseline (95% CI ")
    assert line.endswith(", significant")


def test_known_answer_minimize_is_oriented_so_above_one_is_better(
    runs: Callable[..., list[Trial]],
) -> None:
    trials = runs((0, 10.0), (1, 8.0), (2, 12.0), (0, 10.2), (1, 8.1), (0, 9.8), (1, 7.9))
    rb = robust_best(trials, "minimize")
    assert rb is not None and rb.trial.number == 2
    assert rb.ratio == pytest.approx(10.0 / 8.0)
    assert rb.improvement_pct == pytest.approx(20.0)
    assert rb.ci is not None and rb.ci[0] > 1 and rb.significant
    assert oriented_ratio(8.0, 10.0, "minimize") == pytest.approx(1.25)
    assert oriented_ratio(8.0, 10.0, "maximize") == pytest.approx(0.8)
    assert oriented_ratio(0.0, 10.0, "maximize") is None


def test_noise_larger_than_the_gain_is_not_significant(
    runs: Callable[..., list[Trial]],
) -> None:
    trials = runs((0, 100.0), (1, 104.0), (0, 95.0), (1, 130.0), (0, 105.0), (1, 90.0))
    rb = robust_best(trials, "maximize")
    assert rb is not None and rb.trial.number == 2
    assert rb.ci is not None and rb.ci[0] < 1 < rb.ci[1]
    assert not rb.significant
    assert rb.best.unstable  # 90..130 around a median of 104
    assert "not significant" in describe(rb, "tps")
    assert describe(rb, "tps").endswith(", unstable")


def test_a_repeated_config_beats_a_single_lucky_run(runs: Callable[..., list[Trial]]) -> None:
    trials = runs((0, 100.0), (1, 150.0), (2, 120.0), (0, 101.0), (2, 118.0))
    rb = robust_best(trials, "maximize")
    assert rb is not None
    assert rb.trial.number == 3  # median 119 over two runs, not trial 2's single 150
    assert rb.confirmed


def test_without_repeats_the_best_single_run_is_reported_unconfirmed(
    runs: Callable[..., list[Trial]],
) -> None:
    trials = runs((0, 100.0), (1, 130.0), (2, 120.0))
    rb = robust_best(trials, "maximize")
    assert rb is not None and rb.trial.number == 2
    assert not rb.confirmed and rb.ci is None and not rb.significant
    assert rb.ratio == pytest.approx(1.3)
    line = "trial 2 (single run, not confirmed), value 130 tps, 1.3× baseline"
    assert describe(rb, "tps") == line


def test_the_baseline_can_be_the_best(runs: Callable[..., list[Trial]]) -> None:
    trials = runs((0, 100.0), (1, 90.0), (0, 102.0), (1, 91.0))
    rb = robust_best(trials, "maximize")
    assert rb is not None and rb.best.is_baseline
    assert rb.ratio == 1.0 and rb.ci is None and not rb.significant
    assert describe(rb, "tps").endswith("the baseline; no config beat it")


def test_a_baseline_measured_once_gives_no_ci(runs: Callable[..., list[Trial]]) -> None:
    trials = runs((0, 100.0), (1, 110.0), (1, 111.0))
    rb = robust_best(trials, "maximize")
    assert rb is not None and rb.confirmed and rb.ci is None
    assert describe(rb, "tps").endswith("no CI: the baseline ran once")


def test_low_fidelity_runs_are_never_the_best(make_trial: MakeTrial) -> None:
    trials = [
        make_trial(1, 100.0, baseline=True, config=BASE),
        make_trial(2, 900.0, config=cfg(1), fidelity=1 / 3),
        make_trial(3, 950.0, config=cfg(1), fidelity=1 / 3, repeat=True),
    ]
    rb = robust_best(trials, "maximize")
    assert rb is not None and rb.best.is_baseline
    assert robust_best([make_trial(1, 5.0, fidelity=0.5)], "maximize") is None
    assert robust_best([], "maximize") is None


def test_instability_by_cv_or_by_range(runs: Callable[..., list[Trial]]) -> None:
    steady = runs((0, 100.0), (0, 104.0), (0, 96.0))
    assert not config_runs(steady)[0].unstable  # cv 0.04, range 8%
    swinging = runs((0, 100.0), (0, 130.0))
    (group,) = config_runs(swinging)
    assert group.cv is not None and group.cv > 0.1 and group.unstable
    one_outlier = runs(*[(0, 100.0)] * 9, (0, 127.0))
    (group,) = config_runs(one_outlier)
    assert group.cv is not None and group.cv <= 0.1  # cv alone would pass it
    assert group.spread == pytest.approx(0.27) and group.unstable
    rb = robust_best(runs((0, 100.0), (1, 105.0), (0, 130.0), (1, 106.0)), "maximize")
    assert rb is not None and [g.first.number for g in rb.unstable] == [1]
    line = unstable_line(rb)
    assert line is not None and line.startswith("unstable: trial 1 (2 runs, cv 0.18, range 26%)")


def test_bootstrap_is_deterministic_and_independent_per_group() -> None:
    best, base = [110.0, 112.0, 108.0, 111.0], [100.0, 102.0, 98.0]
    first = bootstrap_ci(best, base, "maximize")
    assert first is not None and first == bootstrap_ci(best, base, "maximize")
    # Against a direct loop over the same draws: each group resampled on its own.
    rng = np.random.default_rng(0)
    a = np.median(rng.choice(best, size=(2000, 4)), axis=1)
    b = np.median(rng.choice(base, size=(2000, 3)), axis=1)
    expected = np.percentile(a / b, [2.5, 97.5])
    assert first == pytest.approx(tuple(expected))
    assert bootstrap_ci([110.0], base, "maximize") is None
    assert bootstrap_ci(best, [0.0, 1.0], "maximize") is None


def test_json_fields(runs: Callable[..., list[Trial]]) -> None:
    rb = robust_best(runs((0, 100.0), (1, 110.0), (0, 102.0), (1, 112.0)), "maximize")
    assert rb is not None
    data = rb.to_json()
    assert data["trial"] == 2 and data["runs"] == 2 and data["trials"] == [2, 4]
    assert data["median"] == 111.0 and data["baseline_median"] == 101.0
    assert data["confirmed"] is True and data["baseline_runs"] == 2
    assert len(data["ratio_ci"]) == 2 and isinstance(data["significant"], bool)
    assert data["unstable_trials"] == []


def test_bootstrap_ratio_ci_for_scripts_drops_failed_runs() -> None:
    nan = float("nan")
    ratio, low, high = bootstrap_ratio_ci(np.array([110.0, 112.0, 108.0, nan]), [100.0, 102, 98])
    assert ratio == pytest.approx(1.1)
    assert (low, high) == pytest.approx(
        bootstrap_ci([110.0, 112, 108], [100.0, 102, 98], "maximize")
    )
    ratio, low, high = bootstrap_ratio_ci([8.0, 8.1], [10.0, 10.2], higher_is_better=False)
    assert ratio == pytest.approx(10.1 / 8.05) and low > 1
    ratio, low, high = bootstrap_ratio_ci([8.0], [10.0, 10.2])
    assert ratio == pytest.approx(8.0 / 10.1) and np.isnan(low) and np.isnan(high)


def test_paired_ratio_ci_cancels_drift_between_rounds() -> None:
    # The host drifts 0.7x..1.3x between rounds; within a round the config is 5% better.
    drift = np.array([1.0, 1.3, 0.7, 1.2, 0.8, 1.1, 0.9, 1.25])
    base = 1000.0 * drift
    mine = 1050.0 * drift
    ratio, low, high = paired_ratio_ci(mine, base)
    assert (
        ratio == pytest.approx(1.05) and low == pytest.approx(1.05) and high == pytest.approx(1.05)
    )
    # The same runs unpaired: the drift swamps the 5%, the CI includes 1.
    _, unpaired_low, unpaired_high = bootstrap_ratio_ci(mine, base)
    assert unpaired_low < 1 < unpaired_high


def test_paired_ratio_ci_orients_drops_failed_pairs_and_checks_lengths() -> None:
    nan = float("nan")
    ratio, low, high = paired_ratio_ci([8.0, 8.8, nan, 7.6], [10.0, 10.0, 9.0, 10.0], False)
    assert ratio == pytest.approx(10 / 8.0) and low <= ratio <= high and low > 1
    assert np.isnan(paired_ratio_ci([1.0, nan], [1.0, 1.0])[0])
    with pytest.raises(ValueError, match="equal lengths"):
        paired_ratio_ci([1.0, 2.0], [1.0])
