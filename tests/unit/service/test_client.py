"""HttpClient and AdminClient against a real uvicorn server; the agent loop over HTTP."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from autotune.agent import AgentRunner, LeaseLost, TrialOutcome
from autotune.service import AdminClient, HttpClient, ServiceError, create_app
from autotune.service._client import outcome_json
from autotune.store import Proposal, Store
from tests.unit.service._support import (
    ADMIN,
    FakeAgent,
    experiment_body,
    live_server,
    ok_trial_outcome,
)


@pytest.fixture
def served(store_url: str) -> Iterator[tuple[str, Store]]:
    store = Store(store_url)
    with live_server(create_app(store, ADMIN, lease_s=60)) as url:
        yield url, store
    store.close()


_outcome = ok_trial_outcome


def test_the_tuner_client_protocol_over_http(served: tuple[str, Store]) -> None:
    url, store = served
    admin = AdminClient(url, ADMIN)
    created = admin.create_experiment(experiment_body(parallelism=2))
    assert created.experiment.name == "exp" and not created.resumed
    a1 = HttpClient(url, admin.add_agent("a1").token)
    a2 = HttpClient(url, store.add_agent("a2"))
    lease = a1.lease()
    assert lease is not None and lease.is_baseline and lease.number == 1
    assert lease.experiment.name == "exp" and lease.experiment.objective_metric == "tps"
    a1.heartbeat(lease)
    with pytest.raises(LeaseLost):
        a2.heartbeat(lease)  # not a2's lease
    with pytest.raises(LeaseLost):
        a2.report(lease, _outcome())
    trial = a1.report(lease, _outcome(321.0))
    assert trial.ok and trial.objective == 321.0 and trial.number == 1 and trial.agent == "a1"
    assert trial.metrics == {"tps": 321.0}
    with pytest.raises(LeaseLost):
        a1.report(lease, _outcome())  # once only
    with pytest.raises(LeaseLost):
        a1.heartbeat(lease)
    a1.release(lease)  # already finished: nothing to give back, and no error
    second = a2.lease()
    assert second is not None and second.number == 2
    a2.release(second)
    assert {t.number: t.status for t in admin.trials("exp")}[2] == "pending"
    again = a1.lease()
    assert again is not None and again.trial_id == second.trial_id
    best = admin.best("exp")
    assert best.best is not None and best.best.objective == 321.0
    assert admin.experiment("nope") is None
    assert [e.name for e in admin.experiments()] == ["exp"]
    for client in (admin, a1, a2):
        client.close()


def test_refusals_become_service_errors(served: tuple[str, Store]) -> None:
    url, _ = served
    unknown = HttpClient(url, "z" * 43, retry_s=0)
    with pytest.raises(ServiceError, match="403: unknown agent token") as info:
        unknown.lease()
    assert info.value.status == 403
    admin = AdminClient(url, ADMIN, retry_s=0)
    with pytest.raises(ServiceError, match="422") as bad:
        admin.create_experiment(experiment_body(spec="system: postgres\nknobs: 3\n"))
    assert "poison.yaml" in str(bad.value)  # the loader's lines come along
    with pytest.raises(ServiceError, match="the token must be"):
        HttpClient(url, "short")
    with pytest.raises(ServiceError, match="give it as http://HOST:PORT"):
        HttpClient("tuner:8765", "t" * 43)


def test_retries_until_the_server_is_back(store_url: str) -> None:
    store = Store(store_url)
    store.add_agent("a1")
    app = create_app(store, ADMIN)
    with live_server(app) as url:
        port = int(url.rsplit(":", 1)[1])
        token = store.add_agent("a2")
        AdminClient(url, ADMIN).create_experiment(experiment_body(parallelism=1))
    # The server is down now; the client keeps trying and gets through once it is back.
    sleeps: list[float] = []
    client = HttpClient(url, token, retry_s=30, sleep=lambda s: (sleeps.append(s), time.sleep(s)))
    got: dict[str, Any] = {}
    asker = threading.Thread(target=lambda: got.setdefault("lease", client.lease()))
    asker.start()
    time.sleep(1.0)
    assert asker.is_alive()
    with live_server(create_app(store, ADMIN), port=port):
        asker.join(timeout=20)
        assert not asker.is_alive()
    assert got["lease"] is not None and got["lease"].number == 1
    assert sleeps[:2] == [0.5, 1.0]  # exponential backoff from 0.5 s
    store.close()


def test_backoff_gives_up_after_retry_s_and_caps_at_10s() -> None:
    calls: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(503)

    sleeps: list[float] = []
    clock = [0.0]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    client = HttpClient(
        "http://tuner.invalid",
        "t" * 43,
        retry_s=60,
        sleep=sleep,
        clock=lambda: clock[0],
        transport=httpx.MockTransport(refuse),
    )
    with pytest.raises(ServiceError, match="server error 503") as info:
        client.lease()
    assert info.value.status == 503
    assert sleeps[:6] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert max(sleeps) == 10.0
    assert sum(sleeps) <= 60
    assert len(calls) == len(sleeps) + 1


def test_release_never_raises_when_the_server_is_away() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = HttpClient(
        "http://tuner.invalid",
        "t" * 43,
        retry_s=0,
        transport=httpx.MockTransport(down),
        sleep=lambda s: None,
    )
    from autotune.agent import ExperimentInfo, Lease

    info = ExperimentInfo(
        name="e", system="postgres", spec_content="", spec_path="", spec_hash="",
        workload_name="w", workload_content="", workload_path="", workload_hash="",
        objective_metric="tps", direction="maximize", duration_s=None, knobs=[],
    )  # fmt: skip
    lease = Lease(1, "0" * 32, 1, {}, False, 60.0, info)
    client.release(lease)  # logged, not raised: the lease will expire
    with pytest.raises(ServiceError, match="cannot reach"):
        client.heartbeat(lease)


def test_outcome_json_fits_the_service_bounds() -> None:
    outcome = TrialOutcome(
        status="ok",
        metrics={"tps": 10.0, "bad": math.nan, "worse": math.inf},
        timings={"measure_s": 1.0, "weird_s": -1.0},
        status_history=[("apply", "t"), ()],
        error=None,
        log_excerpt="x" * 100_000 + "\udcff",
        started_at=datetime(2026, 1, 1),  # naive: taken as UTC
    )
    body = outcome_json(outcome)
    assert body["metrics"] == {"tps": 10.0}
    assert body["error"] == "non-finite metrics left out: bad, worse"
    assert body["timings"] == {"measure_s": 1.0}
    assert body["status_history"] == [["apply", "t"]]
    assert len(body["log_excerpt"]) == 64 * 1024 and body["log_excerpt"].endswith("?")
    assert body["started_at"] == datetime(2026, 1, 1, tzinfo=UTC).isoformat()
    assert body["finished_at"] is None


@pytest.mark.usefixtures("fake_agents")
def test_three_agent_loops_over_http_record_every_trial_once(served: tuple[str, Store]) -> None:
    url, store = served
    admin = AdminClient(url, ADMIN)
    admin.create_experiment(experiment_body(parallelism=3, budget=9, optimizer="lhs"))
    runners = [
        AgentRunner(HttpClient(url, store.add_agent(f"a{i}")), lambda spec: object(), poll_s=0.05)
        for i in range(3)
    ]
    threads = [threading.Thread(target=r.run, kwargs={"until_idle": True}) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    trials = admin.trials("exp")
    assert [t.number for t in trials] == list(range(1, 10))
    assert all(t.status == "ok" and t.attempts == 1 for t in trials)
    assert sum(r.trials_run for r in runners) == 9
    assert len({tuple(sorted(t.config.items())) for t in trials}) == 9
    assert admin.experiment("exp").status == "done"  # type: ignore[union-attr]
    assert all(r.agent is None for r in runners)  # each closed (restored) its system


def test_concurrent_leases_never_share_a_trial(served: tuple[str, Store]) -> None:
    url, store = served
    AdminClient(url, ADMIN).create_experiment(
        experiment_body(parallelism=16, budget=100, optimizer="random")
    )
    clients = [HttpClient(url, store.add_agent(f"a{i}")) for i in range(16)]
    first = clients[0].lease()  # proposes the batch; give it back so all 16 race for it
    assert first is not None
    clients[0].release(first)
    barrier = threading.Barrier(len(clients))
    got: list[int] = []

    def lease(client: HttpClient) -> None:
        barrier.wait()
        lease = client.lease()
        assert lease is not None
        got.append(lease.trial_id)

    threads = [threading.Thread(target=lease, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(got) == 16
    assert len(set(got)) == 16  # no trial leased twice
    trials = AdminClient(url, ADMIN).trials("exp")
    assert sorted(t.agent or "" for t in trials if t.status == "leased") == sorted(
        f"a{i}" for i in range(16)
    )


@pytest.mark.usefixtures("fake_agents")
def test_the_agent_loop_runs_each_trial_for_its_leased_length(served: tuple[str, Store]) -> None:
    url, store = served
    AdminClient(url, ADMIN).create_experiment(experiment_body(budget=3, duration_s=4.0))
    exp = store.require_experiment("exp")
    default = {"shared_buffers": 16384, "work_mem": 4096}
    store.add_proposals(
        exp,
        [
            Proposal(1, default, is_baseline=True),
            Proposal(2, {**default, "work_mem": 8192}, fidelity=0.5),
            Proposal(3, default, is_baseline=True, repeat=True),
        ],
    )
    runner = AgentRunner(HttpClient(url, store.add_agent("a")), lambda spec: object())
    runner.run(until_idle=True)
    (agent,) = FakeAgent.instances
    assert agent.durations == [4.0, 2.0, 4.0]
    assert [(t.fidelity, t.repeat, t.status) for t in store.trials(exp)] == [
        (1.0, False, "ok"),
        (0.5, False, "ok"),
        (1.0, True, "ok"),
    ]
