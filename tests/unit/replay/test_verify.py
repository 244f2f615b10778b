"""Interleaved verification: rotating order, whole configs per arm, oriented ratios and CIs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

import autotune.cli.replay as replay_cli
from autotune.agent import Agent
from autotune.cli import app
from autotune.replay import (
    Arm,
    ArmSummary,
    Run,
    complete_configs,
    result_json,
    rotation,
    run_interleaved,
    summarize_runs,
    verdict,
)
from autotune.spec import Config, Machine, Spec
from autotune.store import Experiment, Store, Trial, now
from autotune.systems import ApplyReport, ConfigFailed, System
from autotune.workloads import Workload, WorkloadDef, WorkloadError, WorkloadResult
from autotune.workloads._base import Phase
from tests.unit._support import MACHINE

# -- rotation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_rotation_is_a_latin_square_when_rounds_equal_arms(n: int) -> None:
    square = rotation(n, n)
    assert len(square) == n
    everyone = list(range(n))
    assert all(sorted(row) == everyone for row in square)  # each round runs every arm once
    for position in range(n):  # and every arm takes every position once
        assert sorted(row[position] for row in square) == everyone
    assert [row[0] for row in square] == everyone  # round r starts with arm r


def test_rotation_over_more_or_fewer_rounds() -> None:
    assert rotation(3, 4) == [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2]]
    assert rotation(3, 2) == [[0, 1, 2], [1, 2, 0]]
    six = rotation(3, 6)
    for position in range(3):
        assert sorted(row[position] for row in six) == [0, 0, 1, 1, 2, 2]


# -- complete_configs ---------------------------------------------------------------------------


def test_complete_configs_sets_every_arms_knobs_so_none_leaks(toy_spec: Spec) -> None:
    arms = [
        Arm("default", {}),
        Arm("best", {"mem": 8192, "ratio": 0.9}),
        Arm("other", {"mode": "b"}),
    ]
    assert complete_configs(toy_spec, arms) == [
        {"mem": 4096, "mode": "a", "ratio": 0.5},
        {"mem": 8192, "mode": "a", "ratio": 0.9},
        {"mem": 4096, "mode": "b", "ratio": 0.5},
    ]
    assert complete_configs(toy_spec, [Arm("default", {}), Arm("pgtune", {})]) == [{}, {}]


# -- run_interleaved through a real Agent -------------------------------------------------------


def expected_tps(state: Config) -> float:
    mem, ratio = float(state["mem"]), float(state["ratio"])
    return 1000 * ratio + (50 if state["mode"] == "b" else 0) + mem / 1024


class FakeSystem(System):
    """Keeps the knobs applied so far, as a server does: applying touches only what it names."""

    def __init__(self, defaults: Config, broken: Callable[[Config, int], bool]) -> None:
        self.state = dict(defaults)
        self.applies = 0
        self.broken = broken
        self.seen: list[Config] = []  # the whole state each measured run saw
        self.events: list[str] = []

    def metrics_snapshot(self) -> dict[str, float]:
        return {}

    def start(self) -> None:
        self.events.append("start")

    def apply(self, config: Config) -> ApplyReport:
        self.applies += 1
        if self.broken(config, self.applies):
            raise ConfigFailed("the server did not come back", log_excerpt="FATAL")
        self.state.update(config)
        return ApplyReport()

    def mark_good(self) -> None: ...
    def healthy(self) -> bool:
        return True

    def rollback(self) -> None: ...
    def restore(self, config: Config | None = None) -> None:
        self.events.append("restore")

    def stop(self) -> None:
        self.events.append("stop")


class FakeWorkload(Workload):
    """tps from the state the system is in; no metric at all when ratio is 0.7."""

    def __init__(self, definition: WorkloadDef, system: FakeSystem) -> None:
        super().__init__(definition)
        self.system = system
        self.durations: list[float | None] = []

    def prepare(self, system: System) -> None:
        self.system.events.append("prepare")

    def run(self, system: System, duration_s: float | None, phase: Phase) -> WorkloadResult:
        phase("measure")
        self.durations.append(duration_s)
        state = dict(self.system.state)
        self.system.seen.append(state)
        if state["mode"] == "c":
            raise WorkloadError("pgbench died")
        if state["ratio"] == 0.7:
            return WorkloadResult(metrics={"latency_avg_ms": 1.0}, measure_s=2.0)
        tps = expected_tps(state)
        return WorkloadResult(metrics={"tps": tps}, measure_s=2.0)


def test_run_interleaved_settles_then_runs_every_arm_per_round_in_rotating_order(
    toy_spec: Spec, make_workload: Callable[..., WorkloadDef]
) -> None:
    arms = [
        Arm("default", {}),
        Arm("best", {"mem": 8192, "ratio": 0.9}),
        Arm("other", {"mode": "b"}),
    ]
    system = FakeSystem(toy_spec.defaults(), lambda config, n: False)
    workload = FakeWorkload(make_workload(), system)
    agent = Agent(system, workload, duration_s=30)
    agent.start()
    phases: list[str] = []
    runs = run_interleaved(
        agent, toy_spec, arms, 3, "tps", duration_s=2.5,
        progress=lambda run, phase: phases.append(phase if run is None else f"{run.label} done"),
    )  # fmt: skip
    agent.stop()
    assert system.events == ["start", "prepare", "restore", "stop"]

    order = ["best", "other", "default", "other", "default", "best"]
    assert [r.label for r in runs] == ["default", "best", "other", *order]
    assert [r.round for r in runs] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert phases[0] == "settling run 1/1 (default)"
    assert phases[1:3] == ["round 1/3: default", "default done"]
    assert len(phases) == 1 + 2 * 9
    # One settling run of the first arm, thrown away, then nine measured ones.
    assert len(system.seen) == 10 and workload.durations == [2.5] * 10
    complete = dict(
        zip(["default", "best", "other"], complete_configs(toy_spec, arms), strict=True)
    )
    assert system.seen[0]["mem"] == 4096
    for run, state in zip(runs, system.seen[1:], strict=True):
        # No knob carried over from the arm before: each run saw its own whole config.
        assert {k: state[k] for k in ("mem", "ratio", "mode")} == complete[run.label]
        assert run.status == "ok" and run.error is None
        assert run.objective == pytest.approx(expected_tps(state))
        assert run.timings["measure_s"] == 2.0


def test_run_interleaved_records_failed_runs_and_goes_on(
    toy_spec: Spec, make_workload: Callable[..., WorkloadDef]
) -> None:
    arms = [
        Arm("default", {}),
        Arm("silent", {"ratio": 0.7}),  # the workload reports no tps
        Arm("crash", {"mode": "c"}),  # the workload fails
        Arm("broken", {"mem": 2048}),  # applying it fails, in round 2 only
    ]
    applies_of_broken: list[int] = []

    def broken(config: Config, n: int) -> bool:
        if config.get("mem") == 2048:
            applies_of_broken.append(n)
            return len(applies_of_broken) == 2
        return False

    system = FakeSystem(toy_spec.defaults(), broken)
    agent = Agent(system, FakeWorkload(make_workload(), system), duration_s=None)
    agent.start()
    runs = run_interleaved(agent, toy_spec, arms, 2, "tps", settle_runs=0)
    agent.stop()
    assert len(runs) == 8
    by = {(r.label, r.round): r for r in runs}
    assert all(by["default", k].status == "ok" for k in (1, 2))
    for k in (1, 2):
        assert by["silent", k].status == "failed" and by["silent", k].objective is None
        assert by["silent", k].error == "the workload reported no 'tps'"
        assert by["crash", k].status == "failed" and "pgbench died" in str(by["crash", k].error)
    assert by["broken", 1].status == "ok"
    assert by["broken", 2].status == "failed"
    assert "did not come back" in str(by["broken", 2].error)
    summary = {s.label: s for s in summarize_runs(runs, [a.label for a in arms], "default",
                                                  "maximize")}  # fmt: skip
    assert (summary["silent"].runs, summary["silent"].failed) == (2, 2)
    assert summary["silent"].median is None and summary["silent"].ratio is None
    assert verdict(summary["silent"], "default") == "no comparison (too few successful runs)"
    assert (summary["broken"].runs, summary["broken"].failed) == (2, 1)
    assert summary["broken"].ratio is not None and summary["broken"].ci_low is None
    assert "no CI" in verdict(summary["broken"], "default")


# -- summarize_runs and verdict -----------------------------------------------------------------


def runs_of(values: dict[str, list[float | None]]) -> list[Run]:
    out = []
    for label, vs in values.items():
        for i, v in enumerate(vs, start=1):
            out.append(Run(i, label, "ok" if v is not None else "failed", v))
    return out


DEFAULT = [100.0, 103.0, 97.0, 101.0, 99.0, 102.0, 98.0]


def test_a_clear_gain_is_significant_and_identical_runs_are_not() -> None:
    runs = runs_of(
        {
            "default": list(DEFAULT),
            "best": [v * 1.3 for v in DEFAULT],
            "same": [101.0, 97.0, 103.0, 99.0, 100.0, 98.0, 102.0],
            "worse": [v * 0.7 for v in DEFAULT],
        }
    )
    s = {x.label: x for x in summarize_runs(runs, ["default", "best", "same", "worse"],
                                            "default", "maximize")}  # fmt: skip
    assert s["default"].ratio is None and s["default"].median == 100.0
    assert verdict(s["default"], "default") == "reference"
    assert s["best"].ratio == pytest.approx(1.3)
    assert s["best"].ci_low is not None and s["best"].ci_low > 1.0 and s["best"].significant
    assert verdict(s["best"], "default").startswith("30.0% better than default: significant")
    assert s["same"].ratio == pytest.approx(1.0)
    assert s["same"].ci_low < 1.0 < s["same"].ci_high  # type: ignore[operator]
    assert s["same"].significant is False
    assert "NOT significant (95% CI includes 1)" in verdict(s["same"], "default")
    assert s["worse"].ratio == pytest.approx(0.7) and s["worse"].significant
    assert verdict(s["worse"], "default").startswith("30.0% worse than default: significant")


def test_ratios_are_oriented_when_minimising() -> None:
    latency = [10.0, 10.3, 9.7, 10.1, 9.9]
    runs = runs_of(
        {
            "default": list(latency),
            "faster": [v * 0.8 for v in latency],  # lower latency: better
            "slower": [v * 1.25 for v in latency],
        }
    )
    s = {x.label: x for x in summarize_runs(runs, ["default", "faster", "slower"], "default",
                                            "minimize")}  # fmt: skip
    assert s["faster"].ratio == pytest.approx(1.25)
    assert s["faster"].ci_low > 1.0  # type: ignore[operator]
    assert verdict(s["faster"], "default").startswith("25.0% better")
    assert s["slower"].ratio == pytest.approx(0.8)
    assert s["slower"].ci_high < 1.0  # type: ignore[operator]
    assert verdict(s["slower"], "default").startswith("20.0% worse")


def test_verdict_wording() -> None:
    def arm(ratio: float | None, low: float | None, high: float | None) -> ArmSummary:
        return ArmSummary("best", 5, 0, 100.0, [100.0] * 5, ratio, low, high)

    assert verdict(arm(1.04, 0.97, 1.12), "default") == (
        "4.0% better than default: NOT significant (95% CI includes 1)"
    )
    assert verdict(arm(0.95, 0.9, 1.01), "default") == (
        "5.0% worse than default: NOT significant (95% CI includes 1)"
    )
    assert verdict(arm(1.2, 1.1, 1.3), "pgtune") == (
        "20.0% better than pgtune: significant (95% CI excludes 1)"
    )
    assert verdict(arm(1.2, None, None), "default") == (
        "20.0% better than default: no CI (needs 2+ runs each)"
    )
    assert arm(1.04, 0.97, 1.12).significant is False
    assert arm(1.2, None, None).significant is None


def test_result_json_is_json_with_runs_arms_and_verdicts() -> None:
    arms = [Arm("default", {}, "the spec's defaults"), Arm("best", {"mem": 8192}, "trial 3")]
    runs = runs_of({"default": list(DEFAULT), "best": [v * 1.3 for v in DEFAULT]})
    summaries = summarize_runs(runs, ["default", "best"], "default", "maximize")
    out = json.loads(json.dumps(result_json(arms, runs, summaries, {"reference": "default",
                                                                    "rounds": 7})))  # fmt: skip
    assert out["rounds"] == 7 and out["reference"] == "default"
    assert out["arms"][1] == {"label": "best", "config": {"mem": 8192}, "note": "trial 3"}
    assert len(out["runs"]) == 14 and out["runs"][0]["label"] == "default"
    best = out["summary"][1]
    assert best["significant"] is True and best["ratio"] == pytest.approx(1.3)
    assert best["verdict"].startswith("30.0% better than default: significant")


# -- autotune verify, with the system and workload faked ----------------------------------------


class LoadFails(FakeWorkload):
    def prepare(self, system: System) -> None:
        raise WorkloadError("pgbench -i failed: out of disk")


@pytest.fixture
def recorded(store: Store, make_experiment: Callable[..., Experiment]) -> Experiment:
    exp = make_experiment("exp")
    base, best = {"mem": 4096, "ratio": 0.5}, {"mem": 8192, "ratio": 0.9}
    for number, config, tps in ((1, base, 100.0), (2, best, 150.0)):
        store.add_trial(
            exp,
            Trial(number=number, config=config, status="ok", objective=tps, started_at=now(),
                  finished_at=now(), is_baseline=number == 1, metrics={"tps": tps}),
        )  # fmt: skip
    return exp


def fake_target(
    monkeypatch: pytest.MonkeyPatch, workload: type[FakeWorkload] = FakeWorkload
) -> list[FakeSystem]:
    """``autotune verify`` drives fakes; returns the systems it built."""
    built: list[FakeSystem] = []

    def target(*args: object) -> Callable[[Spec], FakeSystem]:
        def make(spec: Spec) -> FakeSystem:
            built.append(FakeSystem(spec.defaults(), lambda config, n: False))
            return built[-1]

        return make

    monkeypatch.setattr(Machine, "local", classmethod(lambda cls: MACHINE))
    monkeypatch.setattr(replay_cli, "postgres_target", target)
    monkeypatch.setattr(replay_cli, "make_workload", lambda d: workload(d, built[-1]))
    return built


def test_verify_cli_prints_the_table_and_stores_every_run(
    store: Store, store_url: str, recorded: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = fake_target(monkeypatch)
    result = CliRunner().invoke(
        app,
        ["verify", "exp", "--no-pgtune", "--repeats", "3", "--duration", "1",
         "--store", store_url],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (system,) = built
    assert system.events == ["start", "prepare", "restore", "stop"]
    out = result.stdout
    assert "verifying exp: default, best; 3 rounds in rotating order" in out
    assert re.search(r"│ default +│ +3 │ +504 │ 1 ", out), out  # 1000 × 0.5 + 4096 / 1024
    assert re.search(r"│ best +│ +3 │ +908 │ 1\.802 .*│ \+80\.2%, significant", out), out
    (analysis,) = store.analyses(recorded, "verify")
    data = analysis.result
    assert [(r["round"], r["label"]) for r in data["runs"]] == [
        (1, "default"), (1, "best"), (2, "best"), (2, "default"), (3, "default"), (3, "best"),
    ]  # fmt: skip
    assert data["arms"][1]["config"] == {"mem": 8192, "ratio": 0.9}
    assert data["config"] == "best" and data["versus_pgtune"] is None


def test_verify_cli_stops_the_system_when_loading_fails(
    store: Store, store_url: str, recorded: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = fake_target(monkeypatch, LoadFails)
    result = CliRunner().invoke(
        app, ["verify", "exp", "--no-pgtune", "--repeats", "2", "--store", store_url]
    )
    assert result.exit_code == 2
    assert "pgbench -i failed: out of disk" in result.stderr
    (system,) = built
    assert system.events == ["start", "restore", "stop"]  # cleaned up all the same
    assert store.analyses(recorded) == []


def test_verify_cli_refuses_one_round(store_url: str, recorded: Experiment) -> None:
    result = CliRunner().invoke(
        app, ["verify", "exp", "--no-pgtune", "--repeats", "1", "--store", store_url]
    )
    assert result.exit_code == 2
    assert "--repeats must be at least 2" in result.stderr
