"""Fixtures: a tuner service over a SQLite store in tmp_path; fake agents for the agent loop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from autotune.service import create_app
from autotune.store import Store
from tests.unit.service._support import ADMIN, FakeAgent, MakeService, Service, TestClient


@pytest.fixture
def make_service(store_url: str) -> Iterator[MakeService]:
    made: list[tuple[Store, TestClient]] = []

    def make(lease_s: float = 60.0) -> Service:
        store = Store(store_url)
        app = create_app(store, ADMIN, lease_s=lease_s)
        client = TestClient(app)
        made.append((store, client))
        return Service(app, store, client, {})

    yield make
    for store, client in made:
        client.close()
        store.close()


@pytest.fixture
def service(make_service: MakeService) -> Service:
    return make_service()


@pytest.fixture
def fake_agents(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeAgent]]:
    """AgentRunner builds FakeAgents: the agent loop runs for real, the system does not."""
    FakeAgent.instances = []
    FakeAgent.interrupt_on = None
    FakeAgent.running = FakeAgent.peak = 0
    monkeypatch.setattr("autotune.agent._runner.Agent", FakeAgent)
    monkeypatch.setattr("autotune.agent._runner.make_workload", lambda definition: definition)
    yield FakeAgent
    FakeAgent.instances = []
    FakeAgent.interrupt_on = None
