"""Property: whatever a client sends, the service never answers 5xx.

schemathesis generates requests for every operation of the OpenAPI schema
(valid ones and, in negative mode, ones that break it) and each is sent twice,
with the admin token and with an agent token. A store with a running
experiment and a leased trial makes the happy paths reachable too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
import yaml
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from autotune.service import create_app
from autotune.store import Store
from tests.unit.service._support import ADMIN, TestClient, bearer, experiment_body

BUDGET_S = 60.0


@dataclass
class Fuzzed:
    app: FastAPI
    store: Store
    headers: list[dict[str, str]]
    started: float


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "store.db"
    store = Store(f"sqlite:///{path}")
    app = create_app(store, ADMIN, lease_s=60)
    agent = bearer(store.add_agent("fuzzer"))
    with TestClient(app) as client:
        made = client.post(
            "/api/experiments",
            json=experiment_body("exp", parallelism=4, budget=10_000),
            headers=bearer(ADMIN),
        )
        assert made.status_code == 201
        assert client.post("/api/lease", json={}, headers=agent).status_code == 200
    fuzzed = Fuzzed(app, store, [bearer(ADMIN), agent], time.monotonic())
    yield fuzzed
    assert time.monotonic() - fuzzed.started < BUDGET_S, "the fuzz run is over its time budget"
    store.close()


@pytest.fixture(scope="module")
def api_schema(fuzzed: Fuzzed) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed.app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_endpoint_answers_5xx(case: schemathesis.Case, fuzzed: Fuzzed) -> None:
    for headers in fuzzed.headers:
        response = case.call(headers=headers)
        assert response.status_code < 500, (case.method, case.path, response.text)
        case.validate_response(
            response,
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
            ],
        )


# -- structured documents: specs and workloads shaped like the real ones -------------------------

_words = st.sampled_from(
    [
        "1MB",
        "25% memory",
        "2x cpus",
        "log",
        "linear",
        "restart",
        "reload",
        "integer",
        "real",
        "enum",
        "bool",
        "unsafe",
        "-1",
        "5min",
        "a + b <= 10",
        "a * 2 <= 1GB",
        "scripts/x.sql",
    ]
)
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(),
    st.text(max_size=8),
    _words,
)
_fields = st.sampled_from(
    ["type", "min", "max", "default", "unit", "scale", "apply", "safety", "special", "values"]
)
_value = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_fields, inner, max_size=4)
    ),
    max_leaves=8,
)
_specs = st.fixed_dictionaries(
    {"system": st.one_of(st.just("postgres"), _value)},
    optional={
        "knobs": st.dictionaries(
            st.sampled_from(["a", "b", "work_mem"]),
            st.one_of(st.dictionaries(_fields, _value, max_size=6), _value),
            max_size=3,
        ),
        "constraints": st.lists(st.one_of(_words, st.text(max_size=20), _value), max_size=3),
        "groups": st.dictionaries(
            st.text(max_size=4), st.one_of(_value, st.lists(_words)), max_size=2
        ),
        "applier": _value,
    },
)
_workloads = st.fixed_dictionaries(
    {"kind": st.sampled_from(["pgbench", "sql-set", "other"])},
    optional={
        key: _value
        for key in [
            "name",
            "system",
            "objective",
            "duration",
            "warmup",
            "builtin",
            "script",
            "scale",
            "clients",
            "mode",
            "setup",
            "queries",
            "repeat",
            "timeout",
        ]
    },
)


def test_structured_specs_and_workloads_never_get_a_5xx(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    client = TestClient(create_app(store, ADMIN), raise_server_exceptions=False)
    seen: dict[int, int] = {}

    @settings(max_examples=150, deadline=None, derandomize=True, database=None)
    @given(spec=_specs, workload=_workloads)
    def create(spec: dict[str, object], workload: dict[str, object]) -> None:
        body = experiment_body(
            f"s{len(seen)}",
            spec=yaml.safe_dump(spec),
            workload=yaml.safe_dump(workload),
            workload_name="w",
        )
        response = client.post("/api/experiments", json=body, headers=bearer(ADMIN))
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (spec, workload, response.text)

    create()
    client.close()
    store.close()
    assert set(seen) <= {201, 422}  # created, or refused with the problems named
    assert seen.get(422, 0) > 100  # the generator does reach the loaders' refusals
