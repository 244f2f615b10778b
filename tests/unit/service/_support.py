"""Helpers for the service tests: requests, a Service handle, a fake agent, a live server."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI

from autotune.agent import TrialOutcome
from autotune.spec import Config
from autotune.store import Store, now
from tests.unit._support import MACHINE, ROOT

with warnings.catch_warnings():
    # Starlette asks for httpx2 at import; the TestClient works the same with httpx.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ADMIN = "admin-token-for-tests-0123456789"
SPEC_PATH = ROOT / "tests" / "data" / "poison.yaml"
WORKLOAD_PATH = ROOT / "tests" / "data" / "workloads" / "tiny-tpcb.yaml"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def experiment_body(name: str = "exp", **overrides: Any) -> dict[str, Any]:
    """A valid create request: the poison spec (2 knobs) and tiny-tpcb, on the test machine."""
    body: dict[str, Any] = {
        "name": name,
        "spec": SPEC_PATH.read_text(),
        "spec_path": "poison.yaml",
        "workload": WORKLOAD_PATH.read_text(),
        "workload_name": "tiny-tpcb",
        "budget": 8,
        "parallelism": 3,
        "optimizer": "random",
        "machine": {"memory_bytes": MACHINE.memory_bytes, "cpus": MACHINE.cpus},
    }
    body.update(overrides)
    return body


def ok_outcome(tps: float = 100.0, **overrides: Any) -> dict[str, Any]:
    outcome: dict[str, Any] = {
        "status": "ok",
        "metrics": {"tps": tps, "latency_avg_ms": 2.5},
        "timings": {"measure_s": 2.0, "total_s": 3.0},
        # Times as an agent reports them: after the lease, not in the future.
        "status_history": [["apply", now().isoformat()]],
        "started_at": now().isoformat(),
        "finished_at": now().isoformat(),
    }
    outcome.update(overrides)
    return outcome


@dataclass
class Service:
    """The app, its store, a client and the tokens tests act with."""

    app: FastAPI
    store: Store
    client: TestClient
    agents: dict[str, str]  # name -> token

    @property
    def admin(self) -> dict[str, str]:
        return bearer(ADMIN)

    def agent(self, name: str = "a1") -> dict[str, str]:
        if name not in self.agents:
            self.agents[name] = self.store.add_agent(name)
        return bearer(self.agents[name])

    def create(self, name: str = "exp", **overrides: Any) -> dict[str, Any]:
        response = self.client.post(
            "/api/experiments", json=experiment_body(name, **overrides), headers=self.admin
        )
        assert response.status_code == 201, response.text
        experiment: dict[str, Any] = response.json()["experiment"]
        return experiment

    def lease(self, agent: str = "a1", **body: Any) -> dict[str, Any] | None:
        response = self.client.post("/api/lease", json=body, headers=self.agent(agent))
        if response.status_code == 204:
            return None
        assert response.status_code == 200, response.text
        lease: dict[str, Any] = response.json()
        return lease

    def trials(self, name: str = "exp") -> list[dict[str, Any]]:
        response = self.client.get(f"/api/experiments/{name}/trials", headers=self.admin)
        assert response.status_code == 200, response.text
        trials: list[dict[str, Any]] = response.json()
        return trials

    def trial(self, trial_id: int, name: str = "exp") -> dict[str, Any]:
        return next(t for t in self.trials(name) if t["id"] == trial_id)


MakeService = Callable[..., Service]


def ok_trial_outcome(tps: float = 100.0) -> TrialOutcome:
    return TrialOutcome(
        status="ok",
        metrics={"tps": tps},
        timings={"measure_s": 1.0, "total_s": 1.5},
        status_history=[("apply", now().isoformat())],
        started_at=now(),
        finished_at=now(),
    )


class FakeAgent:
    """Stands in for autotune.agent.Agent: no system; tps grows with work_mem.

    ``interrupt_on`` makes that trial number raise KeyboardInterrupt, as Ctrl-C would.
    """

    interrupt_on: int | None = None
    instances: list[FakeAgent] = []  # noqa: RUF012 - a test-wide registry, reset per fixture
    # Trials running at once across every FakeAgent in the process, and the most seen.
    running = 0
    peak = 0
    _count = threading.Lock()

    def __init__(self, system: Any, workload: Any, duration_s: float | None) -> None:
        self.system = system
        self.setup_s = 0.0
        self.trials = 0
        self.stopped = False
        self.durations: list[float | None] = []  # what each trial was asked to measure
        FakeAgent.instances.append(self)

    def start(self, phase: Callable[[str], None] = lambda _: None) -> None:
        phase("starting system")

    def as_found(self, config: Config) -> Config:
        return dict(config)  # no target, so nothing found before the session

    def run_trial(
        self,
        config: Config,
        phase: Callable[[str], None] = lambda _: None,
        duration_s: float | None = None,
    ) -> Any:
        self.trials += 1
        self.durations.append(duration_s)
        phase("measure")
        if FakeAgent.interrupt_on is not None and self.trials == FakeAgent.interrupt_on:
            raise KeyboardInterrupt
        with FakeAgent._count:
            FakeAgent.running += 1
            FakeAgent.peak = max(FakeAgent.peak, FakeAgent.running)
        try:
            time.sleep(0.05)
        finally:
            with FakeAgent._count:
                FakeAgent.running -= 1
        return ok_trial_outcome(1000.0 + float(config["work_mem"]) / 100)

    def stop(self, keep: Config | None = None) -> None:
        self.stopped = True


@contextmanager
def live_server(app: FastAPI, port: int = 0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a loopback port in a thread; yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
