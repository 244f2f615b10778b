"""A paired run: the config and the reference take turns, slice by slice, on two systems."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from autotune.agent import Agent
from autotune.spec import Config
from autotune.systems import ApplyReport, System
from autotune.workloads import Workload, WorkloadDef, WorkloadResult
from autotune.workloads._base import Phase


class TwinnedSystem(System):
    """Logs what is done to it in a shared list; its twin is another one of these."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log
        self.applied: Config = {}

    def twin(self) -> TwinnedSystem:
        return TwinnedSystem(f"{self.name}-twin", self.log)

    def start(self) -> None:
        self.log.append(f"{self.name}:start")

    def apply(self, config: Config) -> ApplyReport:
        self.applied = dict(config)
        return ApplyReport()

    def mark_good(self) -> None: ...
    def healthy(self) -> bool:
        return True

    def rollback(self) -> None: ...
    def restore(self, config: Config | None = None) -> None: ...
    def stop(self) -> None:
        self.log.append(f"{self.name}:stop")


class SliceWorkload(Workload):
    """tps is 200 with work_mem set, else 100; every run and reset is logged."""

    def __init__(self, definition: WorkloadDef, log: list[str]) -> None:
        super().__init__(definition)
        self.log = log

    def prepare(self, system: System) -> None:
        assert isinstance(system, TwinnedSystem)
        self.log.append(f"{system.name}:prepare")

    def reset(self, system: System) -> bool:
        assert isinstance(system, TwinnedSystem)
        self.log.append(f"{system.name}:reset")
        return True

    def run(
        self, system: System, duration_s: float | None, phase: Phase, warmup: bool = True
    ) -> WorkloadResult:
        assert isinstance(system, TwinnedSystem)
        self.log.append(f"{system.name}:run {duration_s:g}s{' warm' if warmup else ''}")
        tps = 200.0 if "work_mem" in system.applied else 100.0
        return WorkloadResult(metrics={"tps": tps}, measure_s=duration_s or 0.0)


@pytest.fixture
def definition(make_workload: Callable[..., WorkloadDef]) -> WorkloadDef:
    return make_workload()


def runs(log: list[str]) -> list[str]:
    return [line for line in log if ":run" in line]


def test_slices_alternate_abba_and_the_reference_is_measured_beside(
    definition: WorkloadDef,
) -> None:
    log: list[str] = []
    system = TwinnedSystem("pg", log)
    agent = Agent(system, SliceWorkload(definition, log), duration_s=9)
    agent.start()
    assert agent.can_pair()
    outcome = agent.run_pair({"work_mem": "8MB"}, {})
    assert outcome.status == "ok", outcome.error
    # 9 s: three 3 s slices on each side, A B, B A, A B; only the first slice warms up.
    assert runs(log) == [
        "pg:run 3s warm", "pg-twin:run 3s warm",
        "pg-twin:run 3s", "pg:run 3s",
        "pg:run 3s", "pg-twin:run 3s",
    ]  # fmt: skip
    assert outcome.metrics["tps"] == 200.0  # the config's side only
    assert outcome.metrics["reference.objective"] == 100.0  # the default's, beside it
    assert outcome.metrics["slices"] == 3 and outcome.metrics["twin_runs_config"] == 0.0
    assert log.index("pg:reset") < log.index("pg-twin:reset") < log.index("pg:run 3s warm")

    del log[:]
    swapped = agent.run_pair({"work_mem": "8MB"}, {}, swap=True)
    assert swapped.metrics["tps"] == 200.0 and swapped.metrics["reference.objective"] == 100.0
    assert swapped.metrics["twin_runs_config"] == 1.0
    assert "pg-twin:start" not in log and "pg-twin:prepare" not in log  # kept between pairs
    agent.stop()
    assert log[-2:] == ["pg:stop", "pg-twin:stop"]


def test_an_agent_that_shares_a_started_system_still_stops_its_own_twin(
    definition: WorkloadDef,
) -> None:
    log: list[str] = []
    system = TwinnedSystem("pg", log)
    owner = Agent(system, SliceWorkload(definition, log), duration_s=2)
    other = Agent(system, SliceWorkload(definition, log), duration_s=2)
    owner.start()
    assert other.run_pair({}, {}).status == "ok"  # never started: its twin is its own
    other.stop()
    assert "pg-twin:stop" in log and "pg:stop" not in log  # the shared system stays up
    owner.stop()
    assert log[-1] == "pg:stop"


def test_a_system_without_a_twin_cannot_pair(definition: WorkloadDef) -> None:
    class Alone(TwinnedSystem):
        def twin(self) -> None:  # type: ignore[override]
            return None

    log: list[str] = []
    agent = Agent(Alone("pg", log), SliceWorkload(definition, log), duration_s=2)
    agent.start()
    assert not agent.can_pair()
    outcome = agent.run_pair({}, {})
    assert outcome.status == "failed" and "no twin" in (outcome.error or "")
    agent.stop()
