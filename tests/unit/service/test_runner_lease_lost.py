"""A lost lease is loud: the trial stops, nothing is reported or handed back, and the
agent says why; a failed heartbeat is logged and retried."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from autotune.agent import AgentRunner, Lease, LeaseLost, RunnerEvents, TrialOutcome
from autotune.domain import Trial
from tests.unit.service._support import FakeAgent, Service, ok_trial_outcome


class SlowAgent(FakeAgent):
    """Sits in its apply phase for longer than a heartbeat interval."""

    def run_trial(self, config: Any, phase: Any = lambda _: None, duration_s: Any = None) -> Any:
        self.trials += 1
        phase("apply")
        time.sleep(1.2)  # the heartbeat (every 0.5 s here) runs meanwhile
        phase("measure")  # the lost lease stops the trial here
        self.durations.append("measured")
        return ok_trial_outcome()


class Client:
    """One lease, then none; heartbeats and reports fail as told."""

    def __init__(self, lease: Lease, beat: Exception | None, report: Exception | None) -> None:
        self.leases = [lease]
        self.beat, self.report_error = beat, report
        self.beats = 0
        self.calls: list[str] = []

    def lease(self) -> Lease | None:
        return self.leases.pop() if self.leases else None

    def heartbeat(self, lease: Lease) -> None:
        self.beats += 1
        if self.beat is not None:
            raise self.beat

    def report(self, lease: Lease, outcome: TrialOutcome) -> Trial:
        self.calls.append("report")
        if self.report_error is not None:
            raise self.report_error
        return Trial(
            number=lease.number, config=dict(lease.config), status=outcome.status,
            objective=100.0, started_at=outcome.started_at, finished_at=outcome.finished_at,
        )  # fmt: skip

    def release(self, lease: Lease) -> None:
        self.calls.append("release")


class Events(RunnerEvents):
    def __init__(self) -> None:
        self.lost: list[str] = []
        self.finished: list[int] = []

    def trial_lost(self, lease: Lease, reason: str) -> None:
        self.lost.append(reason)

    def trial_finished(self, lease: Lease, trial: Trial) -> None:
        self.finished.append(trial.number)


@pytest.fixture
def short_lease(service: Service, fake_agents: Any, monkeypatch: pytest.MonkeyPatch) -> Lease:
    monkeypatch.setattr("autotune.agent._runner.Agent", SlowAgent)
    service.create(parallelism=1, lease_s=1.0)
    body = service.lease()
    assert body is not None
    return Lease.from_json(body)


def _run(client: Client) -> tuple[AgentRunner, Events]:
    events = Events()
    runner = AgentRunner(client, lambda spec: None, events, poll_s=0.01)  # type: ignore[arg-type]
    runner.run(until_idle=True)
    return runner, events


def test_a_lease_lost_while_the_trial_runs_stops_it_and_says_so(short_lease: Lease) -> None:
    client = Client(short_lease, beat=LeaseLost("the lease on trial 1 expired"), report=None)
    runner, events = _run(client)
    (agent,) = SlowAgent.instances
    assert agent.trials == 1 and agent.durations == []  # stopped before it measured
    assert client.calls == []  # neither reported nor handed back: it is not ours any more
    assert events.lost == [
        "stopped, the lease was lost while it ran (the lease on trial 1 expired)"
    ]
    assert runner.trials_run == 0 and agent.stopped


def test_a_report_refused_for_a_lost_lease_is_said_not_dropped(short_lease: Lease) -> None:
    client = Client(short_lease, beat=None, report=LeaseLost("trial 1 is leased to a2"))
    runner, events = _run(client)
    assert client.calls == ["report"]
    assert events.lost == ["the result was not recorded (trial 1 is leased to a2)"]
    assert events.finished == [] and runner.trials_run == 0


def test_a_failed_heartbeat_is_logged_and_retried(
    short_lease: Lease, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client(short_lease, beat=OSError("connection refused"), report=None)
    with caplog.at_level(logging.WARNING, logger="autotune.agent._runner"):
        _, events = _run(client)
    assert client.beats >= 2  # a missed beat does not end the heartbeat
    assert "trial 1: heartbeat failed (connection refused); retrying in 0.5s" in caplog.text
    assert events.finished == [1] and events.lost == [] and client.calls == ["report"]


def test_by_default_a_lost_lease_is_a_warning_in_the_log(
    short_lease: Lease, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client(short_lease, beat=None, report=LeaseLost("expired"))
    runner = AgentRunner(client, lambda spec: None, poll_s=0.01)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="autotune.agent._runner"):
        runner.run(until_idle=True)
    assert "trial 1 of exp: the result was not recorded (expired)" in caplog.text
