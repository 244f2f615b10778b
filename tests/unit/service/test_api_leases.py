"""Agent endpoints: leases, heartbeats, reports and releases, and who may do what."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from autotune.agent import Lease
from autotune.store import Proposal
from tests.unit.service._support import MakeService, Service, ok_outcome


def _report(
    service: Service, lease: dict[str, Any], agent: str = "a1", **outcome: Any
) -> httpx.Response:
    return service.client.post(
        f"/api/trials/{lease['trial_id']}/report",
        json={"lease_id": lease["lease_id"], "outcome": ok_outcome(**outcome)},
        headers=service.agent(agent),
    )


def test_k_leases_get_k_distinct_configs_and_no_more(service: Service) -> None:
    service.create(parallelism=4, budget=10, optimizer="gp")
    leases = [service.lease(f"a{i}") for i in range(4)]
    assert all(lease is not None for lease in leases)
    configs = [lease["config"] for lease in leases if lease]
    assert len({tuple(sorted(c.items())) for c in configs}) == 4
    assert [lease["number"] for lease in leases if lease] == [1, 2, 3, 4]
    assert leases[0] is not None and leases[0]["is_baseline"] is True
    assert leases[0]["config"] == {"shared_buffers": 16384, "work_mem": 4096}  # the defaults
    assert service.lease("a9") is None  # parallelism 4: nothing beyond the batch
    trials = service.trials()
    assert [t["status"] for t in trials] == ["leased"] * 4
    assert [t["agent"] for t in trials] == ["a0", "a1", "a2", "a3"]


def test_lease_carries_what_the_agent_needs(service: Service) -> None:
    service.create(duration_s=3.0)
    lease = service.lease()
    assert lease is not None
    info = lease["experiment"]
    assert info["name"] == "exp"
    assert info["objective_metric"] == "tps"
    assert info["duration_s"] == 3.0
    assert info["knobs"] == ["shared_buffers", "work_mem"]
    assert info["machine"] == {"memory_bytes": 16 * 1024**3, "cpus": 4}
    assert "tiny-tpcb" in info["workload_content"]
    assert lease["lease_s"] == 60.0
    assert len(lease["lease_id"]) == 32


def test_lease_from_a_named_experiment_only(service: Service) -> None:
    service.create("one", parallelism=1)
    service.create("two", parallelism=1)
    lease = service.lease(experiment="two")
    assert lease is not None and lease["experiment"]["name"] == "two"
    assert service.lease(experiment="two") is None
    assert service.lease(experiment="unknown") is None
    other = service.lease()
    assert other is not None and other["experiment"]["name"] == "one"


def test_report_records_once_and_a_second_report_is_a_conflict(service: Service) -> None:
    service.create(parallelism=1)
    lease = service.lease()
    assert lease is not None
    first = _report(service, lease, tps=123.0)
    assert first.status_code == 200
    stored = first.json()
    assert stored["status"] == "ok" and stored["objective"] == 123.0
    assert stored["id"] == lease["trial_id"]
    again = _report(service, lease, tps=999.0)
    assert again.status_code == 409
    assert "nothing was recorded" in again.json()["detail"]
    trial = service.trial(lease["trial_id"])
    assert trial["objective"] == 123.0
    assert trial["metrics"]["tps"] == 123.0


def test_report_with_another_agents_lease_is_refused_and_changes_nothing(
    service: Service,
) -> None:
    service.create(parallelism=2)
    mine = service.lease("a1")
    theirs = service.lease("a2")
    assert mine is not None and theirs is not None
    before = service.trial(theirs["trial_id"])
    # a2's trial and lease id, sent by a1: the lease is not a1's
    stolen = _report(service, theirs, agent="a1", tps=1.0)
    assert stolen.status_code == 409
    # a1's lease id on a2's trial: not that trial's lease
    crossed = service.client.post(
        f"/api/trials/{theirs['trial_id']}/report",
        json={"lease_id": mine["lease_id"], "outcome": ok_outcome(1.0)},
        headers=service.agent("a1"),
    )
    assert crossed.status_code == 409
    for action in ("heartbeat", "release"):
        response = service.client.post(
            f"/api/trials/{theirs['trial_id']}/{action}",
            json={"lease_id": theirs["lease_id"]},
            headers=service.agent("a1"),
        )
        assert response.status_code == 409, action
    assert service.trial(theirs["trial_id"]) == before
    assert _report(service, theirs, agent="a2").status_code == 200


def test_unknown_trial_is_a_conflict(service: Service) -> None:
    service.create()
    for action, body in (
        ("heartbeat", {"lease_id": "0" * 32}),
        ("release", {"lease_id": "0" * 32}),
        ("report", {"lease_id": "0" * 32, "outcome": ok_outcome()}),
    ):
        response = service.client.post(
            f"/api/trials/4242/{action}", json=body, headers=service.agent()
        )
        assert response.status_code == 409, action
        assert response.json()["detail"].startswith("no trial 4242")


def test_heartbeat_extends_the_lease(service: Service) -> None:
    service.create(parallelism=1, lease_s=2.0)
    lease = service.lease()
    assert lease is not None
    first = datetime.fromisoformat(service.trial(lease["trial_id"])["lease_expires_at"])
    time.sleep(0.05)
    response = service.client.post(
        f"/api/trials/{lease['trial_id']}/heartbeat",
        json={"lease_id": lease["lease_id"]},
        headers=service.agent(),
    )
    assert response.status_code == 200
    extended = datetime.fromisoformat(response.json()["expires_at"])
    assert extended > first
    stored = datetime.fromisoformat(service.trial(lease["trial_id"])["lease_expires_at"])
    assert stored == extended


def test_an_expired_lease_is_refused_and_the_trial_goes_to_another_agent(
    make_service: MakeService,
) -> None:
    service = make_service(lease_s=0.2)
    service.create(parallelism=1)
    lease = service.lease("a1")
    assert lease is not None
    assert service.lease("a2") is None  # still held
    time.sleep(0.3)
    late = _report(service, lease, agent="a1")
    assert late.status_code == 409
    assert "expired" in late.json()["detail"]
    beat = service.client.post(
        f"/api/trials/{lease['trial_id']}/heartbeat",
        json={"lease_id": lease["lease_id"]},
        headers=service.agent("a1"),
    )
    assert beat.status_code == 409
    assert service.trial(lease["trial_id"])["status"] == "leased"  # nothing recorded
    again = service.lease("a2")
    assert again is not None
    assert again["trial_id"] == lease["trial_id"]
    assert again["lease_id"] != lease["lease_id"]
    trial = service.trial(lease["trial_id"])
    assert (trial["agent"], trial["attempts"]) == ("a2", 2)
    assert [h[0] for h in trial["status_history"]] == ["pending", "leased", "expired", "leased"]
    assert _report(service, again, agent="a2").status_code == 200
    assert _report(service, lease, agent="a1").status_code == 409
    assert service.trial(lease["trial_id"])["agent"] == "a2"


def test_per_experiment_lease_length_wins(service: Service) -> None:
    service.create(parallelism=1, lease_s=0.2)
    lease = service.lease("a1")
    assert lease is not None and lease["lease_s"] == 0.2
    time.sleep(0.3)
    again = service.lease("a2")
    assert again is not None and again["trial_id"] == lease["trial_id"]


def test_release_makes_the_trial_leasable_at_once(service: Service) -> None:
    service.create(parallelism=1)
    lease = service.lease("a1")
    assert lease is not None
    released = service.client.post(
        f"/api/trials/{lease['trial_id']}/release",
        json={"lease_id": lease["lease_id"]},
        headers=service.agent("a1"),
    )
    assert released.status_code == 200
    assert released.json() == {"trial_id": lease["trial_id"], "status": "pending"}
    assert service.trial(lease["trial_id"])["status"] == "pending"
    again = service.lease("a2")
    assert again is not None and again["trial_id"] == lease["trial_id"]
    assert again["config"] == lease["config"]
    twice = service.client.post(
        f"/api/trials/{lease['trial_id']}/release",
        json={"lease_id": lease["lease_id"]},
        headers=service.agent("a1"),
    )
    assert twice.status_code == 409


def test_failed_report_and_a_missing_objective(service: Service) -> None:
    service.create(parallelism=2)
    first, second = service.lease(), service.lease()
    assert first is not None and second is not None
    failed = service.client.post(
        f"/api/trials/{first['trial_id']}/report",
        json={
            "lease_id": first["lease_id"],
            "outcome": {
                "status": "failed",
                "error": "server did not start",
                "log_excerpt": "FATAL",
            },
        },
        headers=service.agent(),
    )
    assert failed.status_code == 200
    assert failed.json()["status"] == "failed"
    assert failed.json()["log_excerpt"] == "FATAL"
    no_tps = _report(service, second, metrics={"latency_avg_ms": 1.0})
    assert no_tps.json()["status"] == "failed"
    assert "no 'tps'" in no_tps.json()["error"]


def test_reported_text_is_made_storable(service: Service) -> None:
    service.create(parallelism=1)
    lease = service.lease()
    assert lease is not None
    # JSON escapes: a NUL (PostgreSQL text refuses it) and a lone surrogate (not UTF-8)
    raw = json.dumps(
        {
            "lease_id": lease["lease_id"],
            "outcome": {"status": "failed", "error": "bad\x00byte", "log_excerpt": "x\ud800y"},
        }
    )
    response = service.client.post(
        f"/api/trials/{lease['trial_id']}/report",
        content=raw,
        headers={**service.agent(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422  # pydantic refuses text that is not Unicode
    assert "log_excerpt" in response.json()["detail"]
    assert service.trial(lease["trial_id"])["status"] == "leased"
    raw = raw.replace("\\ud800", "\\u00e9")
    response = service.client.post(
        f"/api/trials/{lease['trial_id']}/report",
        content=raw,
        headers={**service.agent(), "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["error"] == "bad\ufffdbyte"  # the NUL is replaced, the report kept
    assert response.json()["log_excerpt"] == "x\u00e9y"


def test_the_budget_ends_the_experiment(service: Service) -> None:
    service.create(parallelism=2, budget=3)
    done = 0
    while (lease := service.lease()) is not None:
        assert _report(service, lease, tps=100.0 + done).status_code == 200
        done += 1
    assert done == 3
    exp = service.client.get("/api/experiments/exp", headers=service.admin).json()
    assert exp["status"] == "done"
    assert (exp["trials"], exp["finished"]) == (3, 3)
    assert len({tuple(sorted(t["config"].items())) for t in service.trials()}) == 3


# -- fidelity, repeats and older agents -------------------------------------------------------

# What a v0.2 server sent, and all a v0.2 agent's Lease(**body) accepts.
V02_LEASE_KEYS = {
    "trial_id",
    "lease_id",
    "number",
    "config",
    "is_baseline",
    "lease_s",
    "experiment",
}


def test_a_full_length_first_run_is_leased_exactly_as_v02_did(service: Service) -> None:
    """A v0.2 agent builds Lease(**body): any new key would break it."""
    service.create(duration_s=3.0)
    lease = service.lease()
    assert lease is not None
    assert set(lease) == V02_LEASE_KEYS
    assert lease["experiment"]["duration_s"] == 3.0
    assert Lease.from_json(lease).duration_s == 3.0  # and this agent reads the length from it
    assert Lease.from_json(lease).fidelity == 1.0


def test_short_runs_and_repeats_carry_their_fidelity_and_length(service: Service) -> None:
    service.create(duration_s=6.0, parallelism=1)
    store = service.store
    exp = store.require_experiment("exp")
    default = {"shared_buffers": 16384, "work_mem": 4096}
    assert store.add_proposals(
        exp,
        [
            Proposal(1, default, is_baseline=True, fidelity=0.5),
            Proposal(2, {"shared_buffers": 16384, "work_mem": 8192}, fidelity=0.1),
            Proposal(3, default, is_baseline=True, repeat=True),
        ],
    )
    leases = []
    for _ in range(3):
        lease = service.lease()
        assert lease is not None
        leases.append(lease)
        assert _report(service, lease).status_code == 200
    assert (leases[0]["fidelity"], leases[0]["duration_s"]) == (0.5, 3.0)
    assert (leases[1]["fidelity"], leases[1]["duration_s"]) == (0.1, 1.0)  # 0.6 s, floored
    assert "repeat" not in leases[0]
    assert leases[2]["repeat"] is True and set(leases[2]) == V02_LEASE_KEYS | {"repeat"}
    assert Lease.from_json(leases[2]).duration_s == 6.0
    trials = service.trials()
    assert [(t["fidelity"], t["repeat"]) for t in trials] == [
        (0.5, False),
        (0.1, False),
        (1.0, True),
    ]


def test_a_lease_from_another_version_is_read_with_defaults() -> None:
    body: dict[str, Any] = {
        "trial_id": 1, "lease_id": "0" * 32, "number": 1, "config": {}, "is_baseline": False,
        "lease_s": 60.0, "from_the_future": 1,
        "experiment": {
            "name": "e", "system": "postgres", "spec_content": "", "spec_path": "",
            "spec_hash": "", "workload_name": "w", "workload_content": "", "workload_path": "",
            "workload_hash": "", "objective_metric": "tps", "direction": "maximize",
            "duration_s": 9.0, "knobs": [], "machine": None, "workload_files": {}, "new": True,
        },
    }  # fmt: skip
    lease = Lease.from_json(body)
    assert (lease.fidelity, lease.repeat, lease.duration_s) == (1.0, False, 9.0)
    short = Lease.from_json({**body, "fidelity": 0.25})
    assert short.duration_s == 2.25 and short.label == "trial 1 (fidelity 0.25, 2.25s)"


def test_the_time_budget_stops_leases(service: Service) -> None:
    service.create(parallelism=1, time_budget_s=600.0)
    lease = service.lease()
    assert lease is not None
    exp = service.store.require_experiment("exp")
    started = datetime.fromisoformat(exp.settings["time_budget_from"])
    earlier = (started - timedelta(seconds=601)).isoformat()
    service.store.update_experiment(exp, settings={"time_budget_from": earlier})  # time is up
    assert _report(service, lease).status_code == 200
    assert service.lease() is None
    out = service.client.get("/api/experiments/exp", headers=service.admin).json()
    assert out["status"] == "done" and out["finished"] == 1
    assert out["time_budget_s"] == 600.0
    assert datetime.fromisoformat(out["deadline"]) < datetime.now(UTC)


def test_a_report_whose_times_cannot_be_true_is_refused_and_records_nothing(
    service: Service,
) -> None:
    service.create(parallelism=1, budget=2)
    lease = service.lease("a1")
    assert lease is not None
    t = datetime.now(UTC)
    backwards = _report(
        service, lease, started_at=t.isoformat(), finished_at=(t - timedelta(1)).isoformat()
    )
    assert backwards.status_code == 422
    assert "is before started_at" in backwards.json()["detail"]
    epoch = _report(service, lease, started_at=None, finished_at=0)  # 1970
    assert epoch.status_code == 422
    assert (
        "finished_at 1970-01-01T00:00:00+00:00 is before the trial was leased"
        in (epoch.json()["detail"])
    )
    later = (t + timedelta(hours=1)).isoformat()
    future = _report(service, lease, started_at=t.isoformat(), finished_at=later)
    assert future.status_code == 422 and "is in the future" in future.json()["detail"]
    [trial] = service.trials()
    assert trial["status"] == "leased"  # nothing was recorded: the agent may report again
    assert _report(service, lease).status_code == 200


def test_a_store_outage_answers_503_with_retry_after(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    service.create(parallelism=1, budget=2)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(service.store, "running_experiments", down)
    response = service.client.post("/api/lease", json={}, headers=service.agent("a1"))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["detail"] == "the results store is unavailable; retry shortly"
    assert "connection refused" not in response.text  # nothing of the store's internals


def test_a_baseline_reports_the_config_it_ran_and_nothing_else_may(service: Service) -> None:
    service.create(parallelism=2)
    baseline, search = service.lease("a1"), service.lease("a2")
    assert baseline is not None and baseline["is_baseline"] and search is not None
    found = {"shared_buffers": 16384, "work_mem": 6144}  # the server ran work_mem 6MB
    bad = _report(service, baseline, config={**found, "work_mem": 10**9})
    assert bad.status_code == 422 and "work_mem" in bad.json()["detail"]
    assert service.trial(baseline["trial_id"])["status"] == "leased"  # nothing recorded
    sneaky = _report(service, search, agent="a2", config=search["config"])
    assert sneaky.status_code == 422 and "only a baseline" in sneaky.json()["detail"]
    ok = _report(service, baseline, config=found)
    assert ok.status_code == 200, ok.text
    assert service.trial(baseline["trial_id"])["config"] == found


def test_one_host_runs_one_trial_at_a_time_unless_colocated_trials_are_allowed(
    service: Service,
) -> None:
    service.create("apart", parallelism=3, budget=10, optimizer="random")
    first = service.lease("a1", host="boot-aaa")
    assert first is not None
    # a2 shares a1's host: two trials side by side would measure each other's load.
    assert service.lease("a2", host="boot-aaa") is None
    other = service.lease("a3", host="boot-bbb")
    assert other is not None and other["number"] == 2
    assert {t["number"]: t["status"] for t in service.trials("apart")}[3] == "pending"
    # Once a1's trial is reported, its host is free for a2.
    assert _report(service, first, tps=100.0).status_code == 200
    third = service.lease("a2", host="boot-aaa")
    assert third is not None and third["number"] == 3
    # An agent that does not say its host is not kept apart (older agents).
    assert service.lease("a4") is not None
    # Hosts are kept apart across experiments too: a2 holds boot-aaa.
    service.create("beside", parallelism=2, budget=10, optimizer="random", allow_colocated=True)
    assert service.lease("a5", host="boot-aaa", experiment="beside") is None
    listed = service.client.get("/api/agents", headers=service.admin).json()
    assert {a["name"]: a["host"] for a in listed}["a5"] == "boot-aaa"


def test_colocated_experiments_share_a_host_and_an_expired_lease_frees_it(
    make_service: MakeService,
) -> None:
    service = make_service(lease_s=0.5)
    service.create("beside", parallelism=2, budget=10, optimizer="random", allow_colocated=True)
    assert service.client.get("/api/experiments/beside", headers=service.admin).json()[
        "allow_colocated"
    ]
    assert service.lease("a1", host="boot-aaa") is not None
    assert service.lease("a2", host="boot-aaa") is not None  # allowed: side by side
    service.create("apart", parallelism=1, budget=10, optimizer="random")
    # An experiment that does not allow it never joins a busy host...
    assert service.lease("a3", host="boot-aaa", experiment="apart") is None
    time.sleep(0.6)
    # ...until the leases there expire: a dead agent's host is free again.
    assert service.lease("a3", host="boot-aaa", experiment="apart") is not None
    # ...and a colocated experiment does not join a host running one that is not.
    assert service.lease("a4", host="boot-aaa", experiment="beside") is None


def test_a_host_name_is_checked(service: Service) -> None:
    service.create(parallelism=1)
    for bad in ("", "a b", "-x", "x" * 65, "a/b"):
        response = service.client.post(
            "/api/lease", json={"host": bad}, headers=service.agent("a1")
        )
        assert response.status_code == 422 and "host" in response.text, bad
