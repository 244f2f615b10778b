"""``autotune verify``: the tuner's paired verification, run by one agent, to a stop."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

import autotune.cli.replay as replay_cli
from autotune.agent import Agent
from autotune.cli import app
from autotune.replay import result_json, run_interleaved
from autotune.spec import Config, Machine, Spec
from autotune.store import Experiment, Store, Trial, now
from autotune.systems import ApplyReport, ConfigFailed, System
from autotune.tuner import Arm, VerifyPolicy, VerifyRun, complete_configs, summarize_verification
from autotune.workloads import Workload, WorkloadDef, WorkloadError, WorkloadResult
from autotune.workloads._base import Phase
from tests.unit._support import MACHINE

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


def test_run_interleaved_runs_every_arm_per_round_in_rotating_order_until_it_stops(
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
    # The fake is exact, so the CI is as narrow as can be: the minimum rounds, no more.
    runs, verification = run_interleaved(
        agent, toy_spec, arms, VerifyPolicy(min_rounds=3, max_rounds=8), "tps", "maximize",
        duration_s=2.5,
        progress=lambda run, phase: phases.append(phase if run is None else f"{run.arm} done"),
    )  # fmt: skip
    agent.stop()
    assert system.events == ["start", "prepare", "restore", "stop"]
    order = ["best", "other", "default", "other", "default", "best"]
    assert [r.arm for r in runs] == ["default", "best", "other", *order]
    assert [r.round for r in runs] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert phases[:2] == ["round 1: default", "default done"] and len(phases) == 18
    # No run is thrown away: every run starts from the loaded data, settled.
    assert len(system.seen) == 9 and workload.durations == [2.5] * 9
    complete = dict(
        zip(["default", "best", "other"], complete_configs(toy_spec, arms), strict=True)
    )
    for run, state in zip(runs, system.seen, strict=True):
        # No knob carried over from the arm before: each run saw its own whole config.
        assert {k: state[k] for k in ("mem", "ratio", "mode")} == complete[run.arm]
        assert run.error is None and run.value == pytest.approx(expected_tps(state))
    assert verification.rounds == 3 and verification.stopped == "precision ±3% reached"
    assert verification.best is not None and verification.best.label == "best"
    best = verification.best.versus
    assert best is not None and best.ratio == pytest.approx(908 / 504)


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
    policy = VerifyPolicy(min_rounds=3, max_rounds=3)
    runs, verification = run_interleaved(agent, toy_spec, arms, policy, "tps", "maximize")
    agent.stop()
    assert len(runs) == 12
    by = {(r.arm, r.round): r for r in runs}
    assert all(by["default", k].value is not None for k in (1, 2, 3))
    for k in (1, 2, 3):
        assert by["silent", k].value is None
        assert by["silent", k].error == "the workload reported no 'tps'"
        assert by["crash", k].value is None and "pgbench died" in str(by["crash", k].error)
    assert by["broken", 1].value is not None and by["broken", 2].value is None
    assert "did not come back" in str(by["broken", 2].error)
    assert verification.rounds == 3  # the minimum, and the cap
    silent = verification.arm("silent")
    assert silent is not None and (silent.runs, silent.failed, silent.versus) == (3, 3, None)
    broken_arm = verification.arm("broken")
    assert broken_arm is not None and broken_arm.versus is not None
    assert broken_arm.versus.pairs == 2  # round 2's pair dropped
    assert verification.best is broken_arm


def test_result_json_is_json_with_runs_arms_and_the_verification(
    toy_spec: Spec, make_workload: Callable[..., WorkloadDef]
) -> None:
    arms = [Arm("default", {}, "the spec's defaults"), Arm("best", {"mem": 8192}, "trial 3")]
    runs = [VerifyRun(r, a, 100.0 * (1.3 if a == "best" else 1) + r) for r in (1, 2, 3)
            for a in ("default", "best")]  # fmt: skip
    verification = summarize_verification(arms, runs, "maximize", VerifyPolicy())
    out = json.loads(json.dumps(result_json(arms, runs, verification, {"rounds": 3})))
    assert out["rounds"] == 3
    assert out["arms"][1] == {"label": "best", "config": {"mem": 8192}, "note": "trial 3"}
    assert len(out["runs"]) == 6 and out["runs"][0] == {
        "round": 1, "arm": "default", "value": 101.0, "error": None, "reference": None
    }  # fmt: skip
    assert out["verification"]["best"] == "best" and out["verification"]["verified"] is True


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
    assert (
        "verifying exp: best, each beside the default on a twin sandbox; 3 rounds in rotating"
        in out
    )
    assert re.search(r"^ +default +3 +504 +1 +reference", out, re.M), out  # 1000×0.5 + 4096/1024
    assert re.search(r"^ +best ◀ best +3 +908 +1\.802 +1\.802–1\.802 +better", out, re.M), out
    assert "verdict: verified gain: best is 1.802× the default" in " ".join(out.split())
    (analysis,) = store.analyses(recorded, "verify")
    data = analysis.result
    assert [(r["round"], r["arm"]) for r in data["runs"]] == [
        (1, "default"), (1, "best"), (2, "best"), (2, "default"), (3, "default"), (3, "best"),
    ]  # fmt: skip
    assert data["arms"][1]["config"] == {"mem": 8192, "ratio": 0.9}
    assert data["config"] == "best" and data["versus_pgtune"] is None
    assert data["verification"]["rounds"] == 3 and data["verification"]["verified"] is True


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
        app, ["verify", "exp", "--no-pgtune", "--rounds", "1", "--store", store_url]
    )
    assert result.exit_code == 2
    assert "Invalid value for '--rounds'" in result.stderr
    crossed = CliRunner().invoke(
        app, ["verify", "exp", "--min-rounds", "6", "--max-rounds", "4", "--store", store_url]
    )
    assert crossed.exit_code == 2
    assert "--max-rounds 4 is below the minimum of 6" in crossed.stderr
