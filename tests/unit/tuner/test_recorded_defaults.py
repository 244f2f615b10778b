"""A resume takes what it was not given from the record: one rule, local and served."""

from __future__ import annotations

from collections.abc import Callable

from autotune.store import Experiment
from autotune.tuner import recorded_defaults


def test_a_resume_keeps_the_recorded_options(make_experiment: Callable[..., Experiment]) -> None:
    exp = make_experiment(
        optimizer="hyperband",
        seed=7,
        settings={
            "knobs": ["mem"],
            "duration_s": 5.0,
            "allow_unsafe": True,
            "parallelism": 3,
            "repeats": 6,
            "controls": 4,
            "safety_margin": 0.5,
            "start_with": "pgtune",
            "allow_colocated": True,
            "verify": {"precision": 0.05, "max_rounds": 6},
            "time_budget_s": None,
        },
    )
    kept = recorded_defaults(exp, budget=20)
    assert kept == {
        "optimizer": "hyperband",
        "seed": 7,
        "duration_s": 5.0,
        "knobs": ["mem"],
        "allow_unsafe": True,
        "controls": 4,
        "safety_margin": 0.5,
        "start_with": "pgtune",
        "parallelism": 3,
        "allow_colocated": True,
        "precision": 0.05,
        "max_rounds": 6,
        "repeats": 6,
    }
    # Repeats never take more than a smaller budget leaves room for.
    assert recorded_defaults(exp, budget=5)["repeats"] == 3


def test_an_old_record_gives_what_it_has(make_experiment: Callable[..., Experiment]) -> None:
    kept = recorded_defaults(make_experiment(settings={"knobs": ["mem", "ratio"]}), budget=10)
    assert kept == {
        "optimizer": "gp",
        "seed": 0,
        "knobs": ["mem", "ratio"],
        "allow_unsafe": False,
        "start_with": "none",  # before the option, a session started from nothing
        "parallelism": 1,
    }
