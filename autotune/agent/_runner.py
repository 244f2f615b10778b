"""The agent loop: lease -> apply -> run -> collect -> report, until told to stop.

The same loop serves ``autotune tune`` (an in-process client) and ``autotune
agent`` (an HTTP client). It sets up a system and workload per experiment,
heartbeats while a trial runs, and on the way out releases an unfinished trial
and restores the system.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from autotune._tmp import OwnedTempDir
from autotune.agent._agent import Agent, PhaseCallback, TrialOutcome
from autotune.agent._client import (
    ExperimentInfo,
    Lease,
    LeaseLost,
    TunerClient,
    trial_duration_s,
)
from autotune.agent._policy import AgentPolicy, Refused
from autotune.domain import Trial, now
from autotune.spec import Config, Machine, Spec, SpecError, parse_spec
from autotune.systems import System
from autotune.workloads import WorkloadDef, make_workload, parse_workload

log = logging.getLogger(__name__)

SystemFactory = Callable[[Spec], System]


class RunnerEvents:
    """Hooks for progress display; all optional."""

    def setup(self, experiment: ExperimentInfo, phase: str) -> None:
        pass

    def trial_started(self, lease: Lease) -> None:
        pass

    def phase(self, name: str) -> None:
        pass

    def trial_finished(self, lease: Lease, trial: Trial) -> None:
        pass

    def trial_lost(self, lease: Lease, reason: str) -> None:
        """The lease was lost (expired, or the trial went to another agent): nothing of
        this run is recorded. By default a warning in the log."""
        log.warning("trial %d of %s: %s", lease.number, lease.experiment.name, reason)


def materialize_workload(info: ExperimentInfo, into: Path) -> WorkloadDef:
    """Write the workload file and the files it names under ``into``, then load it.

    Paths come from the tuner, so each must stay inside ``into``.
    """
    for rel, text in info.workload_files.items():
        path = PurePosixPath(rel)
        if path.is_absolute() or ".." in path.parts:
            raise SpecError([f"workload {info.workload_name}: file path {rel!r} leaves its folder"])
        target = into / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    workload_path = into / f"{info.workload_name}.yaml"
    workload_path.write_text(info.workload_content)
    return parse_workload(info.workload_content, workload_path)


class AgentRunner:
    """Runs leased trials through one Agent per experiment."""

    def __init__(
        self,
        client: TunerClient,
        make_system: SystemFactory,
        events: RunnerEvents | None = None,
        poll_s: float = 1.0,
        policy: AgentPolicy | None = None,
    ) -> None:
        self.client = client
        self.policy = policy  # None: run whatever the tuner sends (autotune tune)
        self.make_system = make_system
        self.events = events or RunnerEvents()
        self.poll_s = poll_s
        self.stopping = threading.Event()
        self.agent: Agent | None = None
        self.current: ExperimentInfo | None = None
        self.workload: WorkloadDef | None = None
        self.trials_run = 0
        self.measured_s = 0.0
        self._tmp: OwnedTempDir | None = None
        self._beat: _Heartbeat | None = None  # the running trial's

    def _agent_for(self, info: ExperimentInfo) -> Agent:
        """The agent for this experiment: set up once, reused for all its trials."""
        if self.agent is not None and self.current == info:
            return self.agent
        self.close()
        machine = Machine(**info.machine) if info.machine else None
        spec = parse_spec(info.spec_content, info.spec_path, machine)
        tmp = OwnedTempDir("autotune-workload-")
        try:
            workload = materialize_workload(info, Path(tmp.name))
            if self.policy is not None:  # before anything of the experiment's runs
                self.policy.check(info.spec_path, info.spec_content, workload)
        except BaseException:
            tmp.cleanup()
            raise
        self._tmp = tmp
        agent = Agent(self.make_system(spec), make_workload(workload), info.duration_s)
        self.agent, self.current, self.workload = agent, info, workload
        agent.start(lambda phase: self.events.setup(info, phase))
        return agent

    def run(self, until_idle: bool = True) -> None:
        """Lease and run trials; with ``until_idle``, return when the tuner has no more."""
        try:
            while not self.stopping.is_set():
                lease = self.client.lease()
                if lease is None:
                    if until_idle:
                        return
                    self.stopping.wait(self.poll_s)
                    continue
                self._run_one(lease)
        finally:
            self.close()

    def _run_one(self, lease: Lease) -> None:
        finished = False
        try:
            # The lease is kept alive from the start: setting up the system (initdb, the
            # data load, the pristine copy) can take longer than the lease itself.
            with _Heartbeat(self.client, lease) as beat:
                self._beat = beat
                try:
                    agent = self._agent_for(lease.experiment)
                except Refused as exc:
                    finished = True
                    self._report(lease, _refused(str(exc)))
                    return
                self.events.trial_started(lease)
                length = self.duration_for(lease)
                if lease.reference is not None and agent.can_pair():
                    # Rounds alternate which instance runs the config (see run_pair).
                    swap = (lease.round or 0) % 2 == 0
                    outcome = agent.run_pair(
                        lease.config, lease.reference, self._phase, length, swap
                    )
                else:
                    config = lease.config
                    if lease.is_baseline and lease.phase == "search":
                        config = agent.as_found(config)
                    outcome = agent.run_trial(config, self._phase, length)
                    if config != lease.config:
                        outcome.config = config
            finished = True
            self._report(lease, outcome)
        except LeaseLost as exc:  # a heartbeat found the lease gone: the trial was stopped
            finished = True  # not ours to hand back
            self.events.trial_lost(lease, f"stopped, the lease was lost while it ran ({exc})")
        finally:
            self._beat = None
            if not finished:
                self.client.release(lease)

    def _report(self, lease: Lease, outcome: TrialOutcome) -> None:
        try:
            trial = self.client.report(lease, outcome)
        except LeaseLost as exc:
            # Someone else owns it now (the lease expired): this run is not recorded.
            self.events.trial_lost(lease, f"the result was not recorded ({exc})")
            return
        self.trials_run += 1
        self.measured_s += trial.timings.get("measure_s", 0.0)
        self.events.trial_finished(lease, trial)

    def duration_for(self, lease: Lease) -> float | None:
        """Measured seconds for the leased trial; None: the workload's own length.

        The tuner sends the length when the experiment has one. Otherwise a
        short (low-fidelity) trial scales the workload's own length; a query
        set without a length runs its rounds in full.
        """
        if lease.duration_s is not None or lease.fidelity >= 1.0:
            return lease.duration_s
        own = self.workload.duration_s if self.workload is not None else None
        return trial_duration_s(own, lease.fidelity)

    def _phase(self, name: str) -> None:
        # Between phases, a trial whose lease is gone stops: its result could not be kept.
        if self._beat is not None and self._beat.lost is not None:
            raise LeaseLost(self._beat.lost)
        self.events.phase(name)

    def close(self, keep: Config | None = None) -> None:
        """Restore the system (or leave ``keep`` applied) and let it go.

        A Ctrl-C while this runs (a second one, say, right after the first) waits until
        it is done: half a restore, or half a deleted sandbox, is worse than a late stop.
        """
        with _deferred_sigint():
            agent, self.agent, self.current, self.workload = self.agent, None, None, None
            try:
                if agent is not None:
                    agent.stop(keep)
            finally:
                if self._tmp is not None:
                    self._tmp.cleanup()
                    self._tmp = None


@contextlib.contextmanager
def _deferred_sigint() -> Iterator[None]:
    """Hold SIGINT back until the block ends, then raise it if it came (main thread only,
    where Python delivers signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: came.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if came and callable(previous):
        previous(came[0], None)  # what the Ctrl-C would have done, now that it may


def _refused(error: str) -> TrialOutcome:
    """A trial failed before anything ran: the agent's owner does not allow it."""
    at = now()
    return TrialOutcome(
        status="failed",
        error=error,
        status_history=[("failed", at.isoformat())],
        started_at=at,
        finished_at=at,
        timings={"total_s": 0.0},
    )


class _Heartbeat:
    """Extends the lease every third of its length while a trial runs; ``lost`` says
    why, once the lease is gone (the runner then stops the trial)."""

    def __init__(self, client: TunerClient, lease: Lease) -> None:
        self.client = client
        self.lease = lease
        self.done = threading.Event()
        self.lost: str | None = None
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=5)

    def _beat(self) -> None:
        interval = max(0.5, self.lease.lease_s / 3)
        while not self.done.wait(interval):
            try:
                self.client.heartbeat(self.lease)
            except LeaseLost as exc:
                self.lost = str(exc)
                return
            except Exception as exc:  # a missed beat (tuner briefly away): retried at the next
                log.warning(
                    "trial %d: heartbeat failed (%s); retrying in %.3gs", self.lease.number,
                    exc, interval,
                )  # fmt: skip


__all__ = ["AgentRunner", "PhaseCallback", "RunnerEvents", "SystemFactory", "materialize_workload"]
