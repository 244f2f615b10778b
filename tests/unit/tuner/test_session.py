"""Setting up a session: which knobs to tune, and creating or resuming an experiment."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from autotune.optimizers import OPTIMIZERS
from autotune.spec import Spec
from autotune.store import Store
from autotune.tuner import (
    DEFAULT_OPTIMIZER,
    SessionOptions,
    TuningError,
    VerifyPolicy,
    check_repeats,
    default_repeats,
    open_experiment,
    select_knobs,
    verify_option,
)
from autotune.workloads import WorkloadDef
from tests.unit._support import TOY_SPEC, TOY_WORKLOAD

SAFE_TUNABLE = ["buffers", "mem", "ratio", "cost", "workers", "flush", "auto", "mode", "jit"]


def select(spec: Spec, requested: str | None, **kw: Any) -> Any:
    return select_knobs(
        spec,
        requested,
        allow_unsafe=kw.get("allow_unsafe", False),
        restartable=kw.get("restartable", True),
    )


# -- select_knobs -------------------------------------------------------------------------------


def test_default_selection_is_every_tunable_safe_knob(toy_spec: Spec) -> None:
    sel = select(toy_spec, None)
    assert sel.names == SAFE_TUNABLE  # spec order; not 'fixed' (tunable: false), not 'risky'
    assert len(sel.notes) == 1
    assert "unsafe" in sel.notes[0] and "risky" in sel.notes[0]
    assert "--allow-unsafe" in sel.notes[0]


def test_allow_unsafe_adds_unsafe_knobs(toy_spec: Spec) -> None:
    sel = select(toy_spec, None, allow_unsafe=True)
    assert sel.names == [*SAFE_TUNABLE, "risky"]
    assert sel.notes == []


def test_postgres_default_selection_leaves_out_the_unsafe_knobs(postgres_spec: Spec) -> None:
    sel = select(postgres_spec, None)
    for name in ("fsync", "synchronous_commit", "full_page_writes"):
        assert name not in sel.names
        assert name in sel.notes[0]
    assert "shared_buffers" in sel.names
    assert all(postgres_spec.knobs[n].safety == "safe" for n in sel.names)
    everything = select(postgres_spec, None, allow_unsafe=True)
    assert {"fsync", "synchronous_commit", "full_page_writes"} <= set(everything.names)


def test_naming_an_unsafe_knob_without_the_flag_is_an_error(toy_spec: Spec) -> None:
    with pytest.raises(TuningError, match=r"risky.*--allow-unsafe"):
        select(toy_spec, "mem,risky")
    sel = select(toy_spec, "mem,risky", allow_unsafe=True)
    assert sel.names == ["mem", "risky"]
    assert sel.notes == []


def test_naming_a_postgres_unsafe_knob_without_the_flag(postgres_spec: Spec) -> None:
    with pytest.raises(TuningError, match="fsync"):
        select(postgres_spec, "shared_buffers,fsync")


def test_restart_class_knobs_are_left_out_with_a_note_when_not_restartable(
    toy_spec: Spec,
) -> None:
    sel = select(toy_spec, None, restartable=False)
    assert "buffers" not in sel.names
    assert sel.names == [n for n in SAFE_TUNABLE if n != "buffers"]
    (note,) = [n for n in sel.notes if "restart" in n]
    assert "buffers" in note
    explicit = select(toy_spec, "buffers,mem", restartable=False)
    assert explicit.names == ["mem"]
    assert any("buffers" in n for n in explicit.notes)


def test_restartable_keeps_restart_class_knobs(toy_spec: Spec) -> None:
    assert "buffers" in select(toy_spec, None, restartable=True).names


def test_explicit_list(toy_spec: Spec) -> None:
    sel = select(toy_spec, " mode , ratio,,jit ")
    assert sel.names == ["mode", "ratio", "jit"]
    assert sel.notes == []


def test_explicit_unknown_knob(toy_spec: Spec) -> None:
    with pytest.raises(TuningError, match=r"unknown knob.*nosuch.*toy\.yaml"):
        select(toy_spec, "mem,nosuch")


def test_explicit_fixed_knob(toy_spec: Spec) -> None:
    with pytest.raises(TuningError, match=r"fixed.*tunable: false"):
        select(toy_spec, "mem,fixed")


def test_group_selection(toy_spec: Spec) -> None:
    assert select(toy_spec, "group:small").names == ["mem", "ratio"]


def test_group_with_an_unsafe_knob_drops_it_with_a_note(toy_spec: Spec) -> None:
    sel = select(toy_spec, "group:withrisk")
    assert sel.names == ["mem"]
    assert any("risky" in n for n in sel.notes)
    assert select(toy_spec, "group:withrisk", allow_unsafe=True).names == ["mem", "risky"]


def test_group_with_a_restart_knob_on_a_target_that_cannot_restart(toy_spec: Spec) -> None:
    sel = select(toy_spec, "group:withrestart", restartable=False)
    assert sel.names == ["mem"]
    assert any("buffers" in n for n in sel.notes)


def test_unknown_group_lists_the_known_ones(toy_spec: Spec) -> None:
    with pytest.raises(TuningError) as err:
        select(toy_spec, "group:nope")
    assert "no group 'nope'" in str(err.value)
    assert "small, withrestart, withrisk" in str(err.value)


def test_postgres_groups(postgres_spec: Spec) -> None:
    assert "shared_buffers" in select(postgres_spec, "group:oltp").names
    assert "jit" in select(postgres_spec, "group:analytics").names


def test_a_group_never_tunes_a_fixed_knob(make_spec: Callable[..., Spec]) -> None:
    """`tunable: false` means recorded, never changed, whichever way knobs are chosen."""
    spec = make_spec(
        """\
system: x
knobs:
  a: {type: bool, default: true}
  b: {type: bool, default: true, tunable: false}
groups:
  g: [a, b]
"""
    )
    try:
        sel = select(spec, "group:g")
    except TuningError:
        return  # refusing the group is also acceptable
    assert "b" not in sel.names


def test_nothing_left_to_tune(toy_spec: Spec) -> None:
    with pytest.raises(TuningError, match="no knobs left"):
        select(toy_spec, "buffers", restartable=False)
    with pytest.raises(TuningError, match="no knobs left"):
        select(toy_spec, "")


# -- open_experiment ----------------------------------------------------------------------------


def options(**overrides: Any) -> SessionOptions:
    base = SessionOptions(
        name="exp",
        optimizer="gp",
        seed=0,
        duration_s=None,
        knobs=["mem", "ratio"],
        allow_unsafe=False,
        target="managed sandbox",
        machine={"memory_bytes": 1, "cpus": 1},
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def workload(make_workload: Callable[..., WorkloadDef]) -> WorkloadDef:
    return make_workload()


def test_a_new_experiment_is_created(store: Store, toy_spec: Spec, workload: WorkloadDef) -> None:
    exp, resumed = open_experiment(store, toy_spec, workload, options())
    assert resumed is False
    assert exp.name == "exp"
    assert exp.system == "toy"
    assert exp.spec_content == TOY_SPEC
    assert exp.spec_hash == toy_spec.content_hash
    assert exp.workload_content == TOY_WORKLOAD
    assert exp.workload_hash == workload.content_hash
    assert exp.workload_name == "toy-bench"
    assert exp.objective_metric == "tps"
    assert exp.direction == "maximize"
    assert exp.optimizer == "gp"
    assert exp.settings["knobs"] == ["mem", "ratio"]
    assert exp.settings["target"] == "managed sandbox"


def test_the_same_session_resumes(store: Store, toy_spec: Spec, workload: WorkloadDef) -> None:
    first, _ = open_experiment(store, toy_spec, workload, options())
    again, resumed = open_experiment(store, toy_spec, workload, options())
    assert resumed is True
    assert again.id == first.id
    # what does not define the experiment may differ
    _, resumed = open_experiment(
        store, toy_spec, workload, options(machine={"memory_bytes": 2, "cpus": 8}, target="x")
    )
    assert resumed is True
    assert len(store.experiments()) == 1


def test_a_changed_spec_refuses_to_resume(
    store: Store, toy_spec: Spec, workload: WorkloadDef, make_spec: Callable[..., Spec]
) -> None:
    open_experiment(store, toy_spec, workload, options())
    edited = make_spec(TOY_SPEC.replace("default: 0.5", "default: 0.6"))
    with pytest.raises(TuningError) as err:
        open_experiment(store, edited, workload, options())
    message = str(err.value)
    assert "cannot resume experiment 'exp'" in message
    assert "knob spec" in message
    assert "--experiment NEW_NAME" in message
    # even a comment changes what the experiment was run with
    commented = make_spec(TOY_SPEC + "# tweaked\n")
    with pytest.raises(TuningError, match="knob spec"):
        open_experiment(store, commented, workload, options())
    assert len(store.experiments()) == 1


def test_a_changed_workload_refuses_to_resume(
    store: Store, toy_spec: Spec, workload: WorkloadDef, make_workload: Callable[..., WorkloadDef]
) -> None:
    open_experiment(store, toy_spec, workload, options())
    longer = make_workload(TOY_WORKLOAD.replace("clients: 2", "clients: 4"))
    with pytest.raises(TuningError) as err:
        open_experiment(store, toy_spec, longer, options())
    assert "workload" in str(err.value)
    assert "knob spec" not in str(err.value)


@pytest.mark.parametrize(
    ("change", "label"),
    [
        ({"knobs": ["mem"]}, "--knobs"),
        ({"duration_s": 5.0}, "--duration"),
        ({"optimizer": "random"}, "--optimizer"),
        ({"seed": 7}, "--seed"),
    ],
)
def test_changed_settings_refuse_to_resume(
    store: Store, toy_spec: Spec, workload: WorkloadDef, change: dict[str, Any], label: str
) -> None:
    open_experiment(store, toy_spec, workload, options())
    with pytest.raises(TuningError, match=label):
        open_experiment(store, toy_spec, workload, options(**change))


def test_every_change_is_listed_at_once(
    store: Store, toy_spec: Spec, workload: WorkloadDef, make_spec: Callable[..., Spec]
) -> None:
    open_experiment(store, toy_spec, workload, options())
    edited = make_spec(TOY_SPEC + "# x\n")
    with pytest.raises(TuningError) as err:
        open_experiment(store, edited, workload, options(seed=3, optimizer="lhs"))
    message = str(err.value)
    for part in ("knob spec", "--optimizer", "--seed"):
        assert part in message


# -- repeats, the time budget, the default optimiser ---------------------------------------------


def test_no_repeats_by_default_the_verification_makes_the_claim() -> None:
    assert [default_repeats(n) for n in (1, 9, 10, 50, 200)] == [0, 0, 0, 0, 0]


def test_the_verification_is_on_from_ten_trials_unless_asked_otherwise() -> None:
    assert verify_option(9, None, 0.03, 10) is None
    policy = verify_option(10, None, 0.03, 10)
    assert policy == VerifyPolicy(precision=0.03, min_rounds=3, max_rounds=10)
    assert verify_option(5, True, 0.05, 6) == VerifyPolicy(precision=0.05, max_rounds=6)
    assert verify_option(50, False, 0.03, 10) is None
    assert verify_option(12, True, 0.03, 2) == VerifyPolicy(min_rounds=2, max_rounds=2)
    with pytest.raises(ValueError, match="precision"):
        verify_option(12, True, 1.5, 10)


def test_repeats_must_leave_room_to_search() -> None:
    check_repeats(10, 8)
    check_repeats(3, 0)
    with pytest.raises(TuningError, match=r"--repeats 9 leaves no trial .* at most 8"):
        check_repeats(10, 9)
    with pytest.raises(TuningError, match="0 or more"):
        check_repeats(10, -1)


def test_repeats_and_time_budget_are_recorded_and_may_change_on_resume(
    store: Store, toy_spec: Spec, workload: WorkloadDef
) -> None:
    exp, _ = open_experiment(store, toy_spec, workload, options(budget=20, time_budget_s=60.0))
    assert exp.repeats == 0  # the default
    assert exp.settings["time_budget_s"] == 60.0
    assert exp.deadline is not None
    started = exp.settings["time_budget_from"]
    again, resumed = open_experiment(
        store, toy_spec, workload, options(budget=30, repeats=5, time_budget_s=90.0)
    )
    assert resumed and again.repeats == 5 and again.budget == 30
    assert again.settings["time_budget_s"] == 90.0
    assert again.settings["time_budget_from"] >= started  # a resume starts the clock again
    kept, _ = open_experiment(
        store, toy_spec, workload, options(budget=30, time_budget_s=90.0, restart_clock=False)
    )
    assert kept.settings["time_budget_from"] == again.settings["time_budget_from"]
    untimed, _ = open_experiment(store, toy_spec, workload, options(budget=30))
    assert untimed.deadline is None
    with pytest.raises(TuningError, match="--repeats"):
        open_experiment(store, toy_spec, workload, options(budget=30, repeats=29))


def test_the_default_optimizer_is_auto_once_registered() -> None:
    expected = "auto" if "auto" in OPTIMIZERS else "gp"
    assert expected == DEFAULT_OPTIMIZER
    assert DEFAULT_OPTIMIZER in OPTIMIZERS
