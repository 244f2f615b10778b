"""Refusals: 401 without a usable token, 403 for the wrong one, 422 for malformed bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.service._support import ADMIN, Service, bearer, experiment_body, ok_outcome


def _operations(service: Service) -> list[tuple[str, str, str]]:
    """(method, concrete path, "admin" | "agent") for every authenticated operation."""
    out = []
    for path, methods in service.app.openapi()["paths"].items():
        for method, op in methods.items():
            if path == "/healthz":
                assert "security" not in op
                continue
            (scheme,) = op["security"][0]  # every other operation names exactly one scheme
            concrete = path.replace("{name}", "exp").replace("{trial_id}", "1")
            out.append((method.upper(), concrete, scheme))
    return out


def _call(service: Service, method: str, path: str, headers: dict[str, str]) -> Any:
    return service.client.request(method, path, headers=headers, content=b"{not json")


def test_every_operation_but_health_needs_a_token(service: Service) -> None:
    operations = _operations(service)
    assert len(operations) == 11
    assert {scheme for *_, scheme in operations} == {"admin", "agent"}


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Basic YWRtaW46c2VjcmV0c2VjcmV0c2VjcmV0",
        "Bearer",
        "Bearer ",
        "Bearer short",
        "Bearer two words-that-are-long-enough",
        "Bearer " + "x" * 513,
        "Token " + ADMIN,
    ],
)
def test_missing_or_garbled_authorization_is_401_before_anything_else(
    service: Service, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path, _ in _operations(service):
        response = _call(service, method, path, headers)  # the body is garbage too
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["detail"]


def test_wrong_tokens_are_403(service: Service) -> None:
    service.create()
    agent = service.agent("a1")
    unknown = bearer("u" * 43)
    for method, path, scheme in _operations(service):
        for headers in (unknown, agent if scheme == "admin" else service.admin):
            response = _call(service, method, path, headers)
            assert response.status_code == 403, (method, path, scheme, response.text)
            assert response.json()["problems"]
        right = agent if scheme == "agent" else service.admin
        assert _call(service, method, path, right).status_code not in (401, 403), (method, path)


def test_refused_calls_change_nothing(service: Service) -> None:
    agent = service.agent("a1")
    created = service.client.post("/api/experiments", json=experiment_body(), headers=agent)
    assert created.status_code == 403
    assert service.store.experiment("exp") is None
    added = service.client.post("/api/agents", json={"name": "sneaky"}, headers=agent)
    assert added.status_code == 403
    assert [a.name for a in service.store.agents()] == ["a1"]
    service.create()
    leased = service.client.post("/api/lease", json={}, headers=service.admin)
    assert leased.status_code == 403
    assert service.trials() == []


def _post_raw(service: Service, path: str, body: Any, headers: dict[str, str]) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return service.client.post(
        path, content=raw, headers={**headers, "Content-Type": "application/json"}
    )


CREATE_422: list[tuple[dict[str, Any], str]] = [
    ({"surprise": 1}, "body.surprise: Extra inputs are not permitted"),
    ({"budget": 0}, "body.budget"),
    ({"budget": "5"}, "body.budget: Input should be a valid integer"),
    ({"budget": 5.0}, "body.budget"),
    ({"parallelism": 1000}, "body.parallelism"),
    ({"name": "../etc"}, "body.name: String should match pattern"),
    ({"name": ""}, "body.name"),
    ({"optimizer": "bogus"}, "body.optimizer"),
    ({"seed": -1}, "body.seed"),
    ({"seed": 2**40}, "body.seed"),
    ({"allow_unsafe": "yes"}, "body.allow_unsafe"),
    ({"files": {"../x.sql": "x"}}, "body.files"),
    ({"files": {"/etc/passwd": "x"}}, "body.files"),
    ({"files": {"a/./b.sql": "x"}}, "body.files"),
    ({"files": {"a//b.sql": "x"}}, "body.files"),
    ({"files": {"a.sql": "nul\x00"}}, "must not contain NUL"),
    ({"knobs": []}, "body.knobs"),
    ({"knobs": ["bad name"]}, "body.knobs"),
    ({"knobs": "oltp"}, "body.knobs"),
    ({"machine": {"memory_bytes": 1, "cpus": 1}}, "body.machine.memory_bytes"),
    ({"machine": {"memory_bytes": 2**34}}, "body.machine.cpus: Field required"),
    ({"spec_path": "line\nbreak"}, "body.spec_path"),
    ({"spec": ""}, "body.spec"),
    ({"spec": "x" * (1024 * 1024 + 1)}, "body.spec"),
    ({"duration_s": 0}, "body.duration_s"),
    ({"lease_s": -1}, "body.lease_s"),
    ({"start_with": "pgtnue"}, "body.start_with: Input should be 'none' or 'pgtune'"),
]


@pytest.mark.parametrize(("change", "expected"), CREATE_422)
def test_malformed_create_is_422_with_a_clear_message(
    service: Service, change: dict[str, Any], expected: str
) -> None:
    response = _post_raw(service, "/api/experiments", experiment_body(**change), service.admin)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["detail"].startswith("invalid request: ")
    assert any(expected in line for line in body["problems"]), body
    assert service.store.experiment("exp") is None


def test_missing_fields_are_named(service: Service) -> None:
    response = _post_raw(service, "/api/experiments", {"name": "x"}, service.admin)
    assert response.status_code == 422
    problems = response.json()["problems"]
    for field in ("spec", "spec_path", "workload", "workload_name", "budget"):
        assert f"body.{field}: Field required" in problems


def test_non_json_bodies_are_422(service: Service) -> None:
    nan = (
        json.dumps(experiment_body())
        .replace('"budget": 8', '"budget": 8, "duration_s": NaN')
        .encode()
    )
    for raw, expected in (
        (b"{not json", "body: not valid JSON at character 1"),
        (nan, "body.duration_s: Input should be a finite number"),
        (b"[]", "body: Input should be a valid dictionary"),
        (b'{"name": "\xff"}', "body: not valid JSON: 'utf-8' codec can't decode byte 0xff"),
        (b"", "body: Field required"),
        (b"[" * 100_000 + b"]" * 100_000, "body: not valid JSON: nested too deeply"),
    ):
        response = _post_raw(service, "/api/experiments", raw, service.admin)
        assert response.status_code == 422, raw
        assert any(expected in p for p in response.json()["problems"]), response.json()


def test_a_body_sent_as_another_type_is_422_with_a_hint(service: Service) -> None:
    response = service.client.post(
        "/api/agents",
        content=b'{"name": "db1"}',
        headers={**service.admin, "Content-Type": "text/plain"},
    )
    assert response.status_code == 422
    assert response.json()["problems"][0] == (
        "body: send JSON with Content-Type: application/json, not text/plain"
    )
    assert service.store.agents() == []


def _report_body(lease_id: str, **change: Any) -> dict[str, Any]:
    return {"lease_id": lease_id, "outcome": ok_outcome(**change)}


REPORT_422: list[tuple[dict[str, Any], str]] = [
    ({"status": "running"}, "body.outcome.status"),
    ({"metrics": {"bad name": 1.0}}, "body.outcome.metrics.bad name.[key]"),
    ({"metrics": {"tps": "fast"}}, "body.outcome.metrics.tps"),
    ({"metrics": {"tps": True}}, "body.outcome.metrics.tps"),
    ({"metrics": {f"m{i}": 1.0 for i in range(2001)}}, "body.outcome.metrics"),
    ({"timings": {"measure_s": -1.0}}, "body.outcome.timings.measure_s"),
    ({"status_history": [[]]}, "body.outcome.status_history.0"),
    ({"status_history": "apply"}, "body.outcome.status_history"),
    ({"started_at": "2026-01-01T00:00:00"}, "body.outcome.started_at"),  # no time zone
    ({"started_at": "0001-01-01T00:00:00+14:00"}, "body.outcome.started_at"),
    ({"finished_at": "yesterday"}, "body.outcome.finished_at"),
    ({"log_excerpt": "x" * (64 * 1024 + 1)}, "body.outcome.log_excerpt"),
    ({"not_applied": {"work_mem": 5}}, "body.outcome.not_applied.work_mem"),
    ({"extra": 1}, "body.outcome.extra: Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("change", "expected"), REPORT_422)
def test_malformed_report_is_422_and_records_nothing(
    service: Service, change: dict[str, Any], expected: str
) -> None:
    service.create(parallelism=1)
    lease = service.lease()
    assert lease is not None
    path = f"/api/trials/{lease['trial_id']}/report"
    response = _post_raw(service, path, _report_body(lease["lease_id"], **change), service.agent())
    assert response.status_code == 422, response.text
    assert any(expected in line for line in response.json()["problems"]), response.json()
    trial = service.trial(lease["trial_id"])
    assert trial["status"] == "leased" and trial["metrics"] == {}
    good = _post_raw(service, path, _report_body(lease["lease_id"]), service.agent())
    assert good.status_code == 200  # the lease survived the bad attempt


def test_malformed_lease_refs_and_trial_ids_are_422(service: Service) -> None:
    agent = service.agent()
    cases = [
        ("/api/trials/1/heartbeat", {"lease_id": "xyz"}, "body.lease_id"),
        ("/api/trials/1/heartbeat", {}, "body.lease_id: Field required"),
        ("/api/trials/1/release", {"lease_id": "A" * 32}, "body.lease_id"),
        ("/api/trials/abc/heartbeat", {"lease_id": "0" * 32}, "path.trial_id"),
        ("/api/trials/0/heartbeat", {"lease_id": "0" * 32}, "path.trial_id"),
        ("/api/trials/2147483648/release", {"lease_id": "0" * 32}, "path.trial_id"),
        ("/api/trials/1/report", {"lease_id": "0" * 32}, "body.outcome: Field required"),
        ("/api/lease", {"experiment": "no spaces please"}, "body.experiment"),
        ("/api/lease", {"experiment": "x", "more": 1}, "body.more"),
        ("/api/agents", {"name": "a/b"}, "body.name"),
    ]
    for path, body, expected in cases:
        headers = service.admin if path == "/api/agents" else agent
        response = _post_raw(service, path, body, headers)
        assert response.status_code == 422, (path, body, response.text)
        assert any(expected in line for line in response.json()["problems"]), response.json()


def test_bad_experiment_names_in_paths_are_422(service: Service) -> None:
    response = service.client.get("/api/experiments/-dash/trials", headers=service.admin)
    assert response.status_code == 422
    assert "path.name" in response.json()["detail"]


def test_oversized_bodies_are_413(service: Service) -> None:
    huge = b'{"name": "' + b"x" * (33 * 1024 * 1024) + b'"}'
    response = _post_raw(service, "/api/agents", huge, service.admin)
    assert response.status_code == 413
    assert "request body over" in response.json()["detail"]
    assert service.store.agents() == []
