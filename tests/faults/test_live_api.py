"""schemathesis against a live `autotune server` on a PostgreSQL store: over real HTTP,
no request answers 5xx, and what the store held before the fuzzing is still there.

The in-process property test (tests/unit/service/test_fuzz.py) covers the app on
SQLite; this one covers what an operator runs: uvicorn, the PostgreSQL store, its
locking and its error handlers.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode

from tests.integration.pgutil import Service
from tests.integration.test_service import service, trials_of
from tests.unit.service._support import experiment_body

__all__ = ["service"]

pytestmark = pytest.mark.slow


def test_the_live_api_never_answers_5xx_and_keeps_what_it_stored(service: Service) -> None:
    service.start_server(lease_s=600)
    admin = {"Authorization": f"Bearer {service.admin_token}"}
    agent = {"Authorization": f"Bearer {service.add_agent('fuzzer')}"}
    made = httpx.post(
        f"{service.url}/api/experiments",
        json=experiment_body("kept", parallelism=2, budget=10_000),
        headers=admin,
        timeout=30,
    )
    assert made.status_code == 201, made.text
    leased = httpx.post(f"{service.url}/api/lease", json={}, headers=agent, timeout=30)
    assert leased.status_code == 200, leased.text
    before = trials_of(service, "kept")
    assert [t["status"] for t in before] == ["leased", "pending"]

    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json", timeout=30)
    strategy = schema.as_strategy() | schema.as_strategy(GenerationMode.NEGATIVE)
    seen: dict[int, int] = {}
    errors: list[str] = []

    @settings(
        max_examples=300,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def call(case: Any) -> None:
        for headers in (admin, agent):
            response = case.call(base_url=service.url, headers=headers, timeout=30)
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                errors.append(f"{case.method} {case.formatted_path}: {response.status_code}")

    call()
    assert not errors, errors[:10]
    assert sum(seen.values()) >= 400, seen  # the run did reach the server
    assert any(200 <= code < 300 for code in seen), seen  # and not only its refusals
    # Nothing stored was lost or changed by 600 requests of any shape.
    assert httpx.get(f"{service.url}/healthz", timeout=10).status_code == 200
    after = {t["number"]: t for t in trials_of(service, "kept")}
    assert [after[t["number"]]["config"] for t in before] == [t["config"] for t in before]
    assert after[before[0]["number"]]["agent"] == "fuzzer"  # its lease still held
    assert service.server is not None and service.server.poll() is None
    assert "Traceback" not in service.dump()
