"""Admin endpoints: create and resume experiments, read them, issue agent tokens."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from autotune.optimizers import OPTIMIZERS
from autotune.service._fields import OptimizerName
from autotune.store import token_hash
from tests.unit._support import ROOT
from tests.unit.service._support import Service, experiment_body, ok_outcome


def test_health_needs_no_token(service: Service) -> None:
    response = service.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_openapi_and_docs_are_served(service: Service) -> None:
    schema = service.client.get("/openapi.json").json()
    assert "/api/lease" in schema["paths"]
    assert {"admin", "agent"} <= set(schema["components"]["securitySchemes"])
    assert service.client.get("/docs").status_code == 200


def test_optimizer_names_match_the_optimizers() -> None:
    assert set(get_args(OptimizerName)) == set(OPTIMIZERS)


def test_create_records_the_experiment_as_autotune_tune_would(service: Service) -> None:
    response = service.client.post(
        "/api/experiments",
        json=experiment_body(duration_s=5.0, lease_s=30.0, seed=7),
        headers=service.admin,
    )
    assert response.status_code == 201, response.text
    out = response.json()
    assert out["resumed"] is False
    exp = out["experiment"]
    assert exp["name"] == "exp"
    assert exp["status"] == "running"
    assert exp["system"] == "postgres"
    assert exp["workload"] == "tiny-tpcb"
    assert exp["workload_path"] == "tiny-tpcb.yaml"
    assert exp["spec_path"] == "poison.yaml"
    assert (exp["objective_metric"], exp["direction"]) == ("tps", "maximize")
    assert exp["knobs"] == ["shared_buffers", "work_mem"]
    assert (exp["budget"], exp["parallelism"], exp["seed"]) == (8, 3, 7)
    assert (exp["duration_s"], exp["lease_s"]) == (5.0, 30.0)
    assert exp["machine"] == {"memory_bytes": 16 * 1024**3, "cpus": 4}
    assert (exp["trials"], exp["finished"], exp["failed"]) == (0, 0, 0)
    stored = service.store.require_experiment("exp")
    assert stored.optimizer == "random"
    assert stored.settings["parallelism"] == 3
    assert stored.settings["lease_s"] == 30.0


def test_list_and_get(service: Service) -> None:
    service.create("one")
    service.create("two", budget=3)
    listed = service.client.get("/api/experiments", headers=service.admin).json()
    assert [e["name"] for e in listed] == ["one", "two"]
    got = service.client.get("/api/experiments/two", headers=service.admin)
    assert got.status_code == 200
    assert got.json()["budget"] == 3
    missing = service.client.get("/api/experiments/nope", headers=service.admin)
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no experiment 'nope'"
    for suffix in ("/trials", "/best"):
        response = service.client.get(f"/api/experiments/nope{suffix}", headers=service.admin)
        assert response.status_code == 404


def test_knob_selection_by_list_group_and_restartable(service: Service) -> None:
    listed = service.create("listed", knobs=["work_mem"])
    assert listed["knobs"] == ["work_mem"]
    response = service.client.post(
        "/api/experiments",
        json=experiment_body("norestart", restartable=False),
        headers=service.admin,
    )
    assert response.status_code == 201
    assert response.json()["experiment"]["knobs"] == ["work_mem"]
    assert any("restart-class" in note for note in response.json()["notes"])
    spec = (ROOT / "knobs" / "postgres.yaml").read_text()
    grouped = service.create("grouped", spec=spec, spec_path="postgres.yaml", knobs="group:oltp")
    assert 0 < len(grouped["knobs"]) < 20


def test_resume_with_the_same_definition_raises_the_budget(service: Service) -> None:
    service.create(knobs=["work_mem"], seed=3, duration_s=4.0)
    # Left-out settings take the recorded values, as `autotune tune --experiment` does.
    again = service.client.post(
        "/api/experiments",
        json={
            k: v
            for k, v in experiment_body(budget=12).items()
            if k not in ("parallelism", "optimizer")
        },
        headers=service.admin,
    )
    assert again.status_code == 200, again.text
    assert again.json()["resumed"] is True
    exp = again.json()["experiment"]
    assert (exp["budget"], exp["seed"], exp["knobs"]) == (12, 3, ["work_mem"])
    assert (exp["parallelism"], exp["optimizer"]) == (3, "random")
    assert service.store.require_experiment("exp").budget == 12


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"seed": 99}, "--seed"),
        ({"optimizer": "lhs"}, "--optimizer"),
        ({"duration_s": 9.0}, "--duration"),
        ({"knobs": ["shared_buffers"]}, "--knobs"),
        ({"parallelism": 1}, "parallelism"),
        ({"lease_s": 5.0}, "lease_s"),
        ({"machine": {"memory_bytes": 2 * 1024**3, "cpus": 1}}, "machine"),
        # Left out, start_with was pgtune: this spec is postgres and pgtune sizes its knobs.
        ({"start_with": "none"}, "--start-with is 'none', recorded 'pgtune'"),
    ],
)
def test_resume_with_a_different_definition_is_a_conflict(
    service: Service, change: dict[str, Any], named: str
) -> None:
    service.create()
    response = service.client.post(
        "/api/experiments", json=experiment_body(**change), headers=service.admin
    )
    assert response.status_code == 409, response.text
    assert "cannot resume experiment 'exp'" in response.json()["detail"]
    assert named in response.json()["detail"]
    assert service.store.require_experiment("exp").settings["parallelism"] == 3


def test_a_changed_spec_or_workload_is_a_conflict(service: Service) -> None:
    service.create()
    spec = experiment_body()["spec"] + "\n# a comment changes the hash\n"
    response = service.client.post(
        "/api/experiments", json=experiment_body(spec=spec), headers=service.admin
    )
    assert response.status_code == 409
    assert "knob spec" in response.json()["detail"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"spec": "system: postgres\nknobs: 3\n"}, "poison.yaml"),
        ({"spec": "a: [unclosed"}, "not valid YAML"),
        ({"spec": "a: &x [1]\nb: *x\n"}, "YAML aliases"),
        ({"spec": "a: " + "[" * 60 + "]" * 60}, "nested deeper"),
        ({"workload": "name: w\nkind: nope\n"}, "tiny-tpcb.yaml: field 'kind'"),
        ({"workload": "a: b: c"}, "not valid YAML"),
        ({"knobs": ["no_such_knob"]}, "unknown knob(s) no_such_knob"),
        ({"knobs": "group:missing"}, "no group 'missing'"),
        ({"files": {"extra.sql": "select 1"}}, "does not name: extra.sql"),
    ],
)
def test_bad_specs_and_workloads_are_422_with_the_loaders_lines(
    service: Service, overrides: dict[str, Any], expected: str
) -> None:
    response = service.client.post(
        "/api/experiments", json=experiment_body(**overrides), headers=service.admin
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert any(expected in line for line in body["problems"]), body
    assert service.store.experiment("exp") is None


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"spec": "system: postgres\nknobs: {}\ngroups:\n  g: [[1]]\n"}, "unknown knob [1]"),
        (
            {
                "workload": "name: w\nsystem: postgres\nkind: sql-set\nsetup: s.sql\n"
                "queries: /etc/*\nobjective: {metric: qps}\n",
                "workload_name": "w",
            },
            "must be a pattern inside the workload's folder",
        ),
        (
            {
                "workload": "name: w\nsystem: postgres\nkind: pgbench\nscript: "
                + "x" * 300
                + "\nobjective: {metric: tps}\n",
                "workload_name": "w",
            },
            "file not found",
        ),
    ],
)
def test_inputs_that_once_crashed_a_loader_are_clear_422s(
    service: Service, overrides: dict[str, Any], expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = service.client.post(
        "/api/experiments", json=experiment_body(**overrides), headers=service.admin
    )
    assert response.status_code == 422, response.text
    assert expected in str(response.json()["problems"])
    assert "loader failed" not in caplog.text  # the loader reports it; nothing crashed
    assert service.store.experiment("exp") is None


def test_workload_system_must_match_the_spec(service: Service) -> None:
    workload = experiment_body()["workload"].replace("system: postgres", "system: toy")
    response = service.client.post(
        "/api/experiments", json=experiment_body(workload=workload), headers=service.admin
    )
    assert response.status_code == 422
    assert "is for system 'toy', not 'postgres'" in response.json()["detail"]


def test_unsafe_knobs_need_allow_unsafe(service: Service) -> None:
    spec = (ROOT / "knobs" / "postgres.yaml").read_text()
    body = experiment_body(spec=spec, spec_path="postgres.yaml", knobs=["fsync", "work_mem"])
    refused = service.client.post("/api/experiments", json=body, headers=service.admin)
    assert refused.status_code == 422
    assert "fsync" in refused.json()["detail"]
    body["allow_unsafe"] = True
    allowed = service.client.post("/api/experiments", json=body, headers=service.admin)
    assert allowed.status_code == 201
    assert allowed.json()["experiment"]["knobs"] == ["fsync", "work_mem"]


def test_left_out_start_with_is_pgtune_where_it_can_be_tried(service: Service) -> None:
    """The CLI's default, and its note where a PostgreSQL session is left at none."""
    spec = (ROOT / "knobs" / "postgres.yaml").read_text()
    body = experiment_body(spec=spec, spec_path="postgres.yaml", knobs=["work_mem"])
    sized = service.client.post("/api/experiments", json=body, headers=service.admin)
    assert sized.status_code == 201, sized.text
    assert sized.json()["notes"] == []
    assert service.store.require_experiment("exp").settings["start_with"] == "pgtune"
    body = experiment_body("left", spec=spec, spec_path="postgres.yaml", knobs=["commit_delay"])
    left = service.client.post("/api/experiments", json=body, headers=service.admin)
    assert left.status_code == 201, left.text
    assert left.json()["notes"] == [
        "not starting from pgtune's config: pgtune's config is the default within the knobs tuned"
    ]
    assert service.store.require_experiment("left").settings["start_with"] == "none"
    body = experiment_body("asked", start_with="none")
    assert service.client.post("/api/experiments", json=body, headers=service.admin).is_success
    assert service.store.require_experiment("asked").settings["start_with"] == "none"


def test_workload_files_travel_with_the_experiment(service: Service) -> None:
    path = ROOT / "workloads" / "pgbench-read-mostly.yaml"
    script = (ROOT / "workloads" / "scripts" / "read-mostly.sql").read_text()
    body = experiment_body(
        workload=path.read_text(),
        workload_name="pgbench-read-mostly",
        files={"scripts/read-mostly.sql": script},
    )
    created = service.client.post("/api/experiments", json=body, headers=service.admin)
    assert created.status_code == 201, created.text
    lease = service.lease()
    assert lease is not None
    assert lease["experiment"]["workload_files"] == {"scripts/read-mostly.sql": script}
    missing = service.client.post(
        "/api/experiments", json={**body, "name": "nofile", "files": {}}, headers=service.admin
    )
    assert missing.status_code == 422
    line = missing.json()["problems"][0]
    assert "file not found: scripts/read-mostly.sql" in line
    assert "/tmp" not in line  # the server's temporary folder stays private


def test_trials_and_best_follow_the_reports(service: Service) -> None:
    service.create(parallelism=2)
    first, second = service.lease(), service.lease()
    assert first is not None and second is not None
    for lease, tps in ((first, 100.0), (second, 150.0)):
        response = service.client.post(
            f"/api/trials/{lease['trial_id']}/report",
            json={"lease_id": lease["lease_id"], "outcome": ok_outcome(tps)},
            headers=service.agent(),
        )
        assert response.status_code == 200, response.text
    trials = service.trials()
    assert [t["number"] for t in trials] == [1, 2]
    t1 = trials[0]
    assert t1["status"] == "ok" and t1["baseline"] is True
    assert t1["agent"] == "a1" and t1["attempts"] == 1
    assert t1["metrics"] == {"tps": 100.0, "latency_avg_ms": 2.5}
    assert t1["objective"] == 100.0
    assert t1["proposed_at"] and t1["started_at"] and t1["finished_at"]
    assert t1["lease_expires_at"] is None
    best = service.client.get("/api/experiments/exp/best", headers=service.admin).json()
    assert best["baseline"]["number"] == 1
    assert best["best"]["number"] == 2
    assert best["improvement_pct"] == pytest.approx(50.0)
    assert (best["trials"], best["failed"], best["budget"]) == (2, 0, 8)
    robust = best["robust"]
    assert (robust["trial"], robust["runs"], robust["confirmed"]) == (2, 1, False)
    assert robust["ratio"] == pytest.approx(1.5) and robust["ratio_ci"] is None
    assert robust["significant"] is False


def test_best_is_the_median_over_repeats_with_a_ci(service: Service) -> None:
    service.create(parallelism=1, budget=6, repeats=3)
    # Trials 1-3 search; 4-6 repeat the baseline, then trial 2's and trial 3's configs.
    values = iter([100.0, 130.0, 120.0, 101.0, 121.0, 119.0])
    while (lease := service.lease()) is not None:
        response = service.client.post(
            f"/api/trials/{lease['trial_id']}/report",
            json={"lease_id": lease["lease_id"], "outcome": ok_outcome(next(values))},
            headers=service.agent(),
        )
        assert response.status_code == 200, response.text
    trials = service.trials()
    assert [t["repeat"] for t in trials] == [False, False, False, True, True, True]
    best = service.client.get("/api/experiments/exp/best", headers=service.admin).json()
    robust = best["robust"]
    assert robust["trial"] == 2 and robust["runs"] == 2 and robust["confirmed"] is True
    assert robust["trials"] == [2, 5] and robust["median"] == pytest.approx(125.5)
    assert robust["baseline_median"] == pytest.approx(100.5)
    assert robust["ratio"] == pytest.approx(125.5 / 100.5)
    assert len(robust["ratio_ci"]) == 2 and robust["significant"] is True
    assert best["best"]["number"] == 2
    assert best["improvement_pct"] == pytest.approx((125.5 - 100.5) / 100.5 * 100)


def test_repeats_and_time_budget_are_recorded_and_kept_on_a_follow(service: Service) -> None:
    exp = service.create(budget=20, time_budget_s=600.0)
    assert exp["repeats"] == 0  # default: the verification makes the claim
    assert exp["time_budget_s"] == 600.0 and exp["deadline"] is not None
    stored = service.store.require_experiment("exp").settings
    assert stored["verify"] == {
        "precision": 0.03, "min_rounds": 3, "max_rounds": 10, "contenders": 2, "pgtune": True,
        "twin": False,
    }  # fmt: skip
    again = service.client.post(
        "/api/experiments", json=experiment_body(budget=20), headers=service.admin
    )
    assert again.status_code == 200, again.text
    out = again.json()["experiment"]
    assert out["repeats"] == 0 and out["time_budget_s"] == 600.0
    assert out["deadline"] == exp["deadline"]  # following it again does not restart the clock
    assert service.store.require_experiment("exp").settings == stored
    changed = service.client.post(
        "/api/experiments", json=experiment_body(budget=20, repeats=2), headers=service.admin
    )
    assert changed.status_code == 200 and changed.json()["experiment"]["repeats"] == 2


def test_repeats_that_leave_nothing_to_search_are_refused(service: Service) -> None:
    response = service.client.post(
        "/api/experiments", json=experiment_body(budget=5, repeats=4), headers=service.admin
    )
    assert response.status_code == 422
    assert "repeats 4 leaves no trial to search" in response.json()["detail"]
    assert service.store.experiment("exp") is None


def test_agents_endpoint_returns_a_token_once_and_stores_its_hash(service: Service) -> None:
    response = service.client.post("/api/agents", json={"name": "db1"}, headers=service.admin)
    assert response.status_code == 201
    token = response.json()["token"]
    assert response.json()["name"] == "db1"
    assert service.store.agent_for_token(token) == "db1"
    with service.store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT token_hash FROM agents").all()
    assert rows == [(token_hash(token),)]
    assert token not in str(rows)
    again = service.client.post("/api/agents", json={"name": "db1"}, headers=service.admin)
    assert again.status_code == 409
    leased = service.client.post(
        "/api/lease", json={}, headers={"Authorization": f"Bearer {token}"}
    )
    assert leased.status_code == 204
