"""The agent brackets the workload's measured phase with internal-metric snapshots."""

from __future__ import annotations

import logging
from collections.abc import Callable
from unittest import mock

import psycopg2
import pytest

from autotune.agent import Agent
from autotune.spec import Config
from autotune.systems import ApplyReport, System
from autotune.workloads import Workload, WorkloadDef, WorkloadResult
from autotune.workloads._base import Phase


class FakeSystem(System):
    """Counts the work done on it; a snapshot reads the count and logs itself in ``events``."""

    metric_gauges = frozenset({"fake.level"})

    def __init__(self, events: list[str], fail_on: set[int] | None = None) -> None:
        self.events = events
        self.ops = 0.0
        self.level = 0.0
        self.snapshots = 0
        self.fail_on = fail_on or set()  # which snapshots (1-based) raise

    def metrics_snapshot(self) -> dict[str, float]:
        self.snapshots += 1
        self.events.append("snapshot")
        if self.snapshots in self.fail_on:
            raise RuntimeError("statistics views unreachable")
        return {"fake.ops": self.ops, "fake.level": self.level, "tps": -1.0}

    def start(self) -> None: ...
    def apply(self, config: Config) -> ApplyReport:
        self.ops += 1  # applying is not measured
        return ApplyReport()

    def mark_good(self) -> None: ...
    def healthy(self) -> bool:
        return True

    def rollback(self) -> None: ...
    def restore(self, config: Config | None = None) -> None: ...
    def stop(self) -> None: ...


class FakeWorkload(Workload):
    """Loads the system 1000 ops in warm-up, 7 measured, 100000 while collecting."""

    def __init__(self, definition: WorkloadDef, system: FakeSystem, phases: bool = True) -> None:
        super().__init__(definition)
        self.system = system
        self.phases = phases

    def prepare(self, system: System) -> None: ...

    def run(self, system: System, duration_s: float | None, phase: Phase) -> WorkloadResult:
        def say(name: str) -> None:
            if self.phases:
                phase(name)
            self.system.events.append(f"workload:{name}")

        say("warmup")
        self.system.ops += 1000
        say("measure")
        self.system.ops += 7
        self.system.level = 42
        say("collect")
        self.system.ops += 100_000
        self.system.level = 99
        return WorkloadResult(metrics={"tps": 123.0}, measure_s=1.0)


@pytest.fixture
def definition(make_workload: Callable[..., WorkloadDef]) -> WorkloadDef:
    return make_workload()


def make_agent(
    definition: WorkloadDef, *, phases: bool = True, fail_on: set[int] | None = None
) -> tuple[Agent, FakeSystem]:
    system = FakeSystem([], fail_on)
    return Agent(system, FakeWorkload(definition, system, phases), duration_s=1), system


def test_snapshots_bracket_exactly_the_measured_phase(definition: WorkloadDef) -> None:
    agent, system = make_agent(definition)
    outcome = agent.run_trial({}, lambda name: system.events.append(f"phase:{name}"))
    assert outcome.status == "ok"
    # Only the 7 measured ops: not apply's, warm-up's or collection's.
    assert outcome.metrics["fake.ops"] == 7
    assert outcome.metrics["fake.level"] == 42  # a gauge: its value when measuring ended
    assert outcome.metrics["tps"] == 123.0  # the workload's own metric wins a clash
    # The first snapshot is a fallback for workloads that never say "measure"; then the
    # bracket: right after "measure" is announced, and before "collect" is.
    assert system.events[system.events.index("phase:measure") :] == [
        "phase:measure",
        "snapshot",
        "workload:measure",
        "snapshot",
        "phase:collect",
        "workload:collect",
    ]

    # The workload is known to say "measure" now: two snapshots a trial, no more.
    system.events.clear()
    outcome = agent.run_trial({}, lambda name: None)
    assert system.events.count("snapshot") == 2
    assert outcome.metrics["fake.ops"] == 7


def test_a_workload_that_never_says_measure_is_bracketed_over_its_run(
    definition: WorkloadDef,
) -> None:
    agent, system = make_agent(definition, phases=False)
    outcome = agent.run_trial({}, lambda name: None)
    assert outcome.status == "ok"
    assert outcome.metrics["fake.ops"] == 1000 + 7 + 100_000  # the run, not the apply
    assert outcome.metrics["fake.level"] == 99
    assert system.snapshots == 2


@pytest.mark.parametrize("fail_on", [{1}, {2}, {3}, {1, 2, 3}])
def test_a_failing_snapshot_never_fails_the_trial(
    definition: WorkloadDef, fail_on: set[int], caplog: pytest.LogCaptureFixture
) -> None:
    agent, system = make_agent(definition, fail_on=fail_on)
    with caplog.at_level(logging.WARNING, logger="autotune.agent"):
        outcome = agent.run_trial({}, lambda name: None)
    assert outcome.status == "ok" and outcome.error is None
    assert outcome.metrics == {"tps": 123.0}  # the workload's metrics, nothing half-made
    assert "statistics views unreachable" in caplog.text
    assert system.snapshots == min(fail_on)  # no retries once one failed
    # The next trial tries again.
    system.fail_on = set()
    assert agent.run_trial({}, lambda name: None).metrics["fake.ops"] == 7


def test_a_lost_connection_in_a_snapshot_is_contained(definition: WorkloadDef) -> None:
    agent, system = make_agent(definition)
    lost = psycopg2.OperationalError("server closed the connection unexpectedly")
    with mock.patch.object(system, "metrics_snapshot", side_effect=lost) as snapshot:
        outcome = agent.run_trial({}, lambda name: None)
    assert outcome.status == "ok" and outcome.metrics == {"tps": 123.0}
    assert snapshot.call_count == 1
