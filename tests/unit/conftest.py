"""Shared fixtures for the unit tests: no PostgreSQL, no network, a fixed machine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from autotune.spec import Machine, Spec, parse_spec
from autotune.store import Experiment, Store, Trial
from autotune.workloads import WorkloadDef, parse_workload
from tests.unit._support import MACHINE, ROOT, T0, TOY_SPEC, TOY_WORKLOAD


@pytest.fixture
def machine() -> Machine:
    return MACHINE


@pytest.fixture
def make_spec() -> Callable[..., Spec]:
    """Parse spec text on the fixed machine."""

    def make(text: str, path: str = "toy.yaml", machine: Machine = MACHINE) -> Spec:
        return parse_spec(text, path, machine)

    return make


@pytest.fixture
def toy_spec(make_spec: Callable[..., Spec]) -> Spec:
    return make_spec(TOY_SPEC)


@pytest.fixture
def postgres_spec(make_spec: Callable[..., Spec]) -> Spec:
    path = ROOT / "knobs" / "postgres.yaml"
    return make_spec(path.read_text(), str(path))


@pytest.fixture
def make_workload(tmp_path: Path) -> Callable[..., WorkloadDef]:
    """Parse workload text as if it were a file in tmp_path."""

    def make(text: str = TOY_WORKLOAD, name: str = "toy-bench.yaml") -> WorkloadDef:
        path = tmp_path / name
        path.write_text(text)
        return parse_workload(text, path)

    return make


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'autotune.db'}"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    st = Store(store_url)
    yield st
    st.close()


@pytest.fixture
def make_experiment(store: Store) -> Callable[..., Experiment]:
    def make(name: str = "exp", direction: str = "maximize", **overrides: Any) -> Experiment:
        fields: dict[str, Any] = dict(
            name=name,
            system="toy",
            spec_content=TOY_SPEC,
            spec_hash="spec-hash",
            spec_path="toy.yaml",
            workload_name="toy-bench",
            workload_content=TOY_WORKLOAD,
            workload_hash="workload-hash",
            workload_path="toy-bench.yaml",
            objective_metric="tps" if direction == "maximize" else "latency_p95_ms",
            direction=direction,
            optimizer="gp",
            seed=0,
            settings={"knobs": ["mem", "ratio"], "duration_s": None},
        )
        fields.update(overrides)
        return store.create_experiment(**fields)

    return make


@pytest.fixture
def make_trial() -> Callable[..., Trial]:
    def make(
        number: int,
        objective: float | None = 100.0,
        status: str = "ok",
        *,
        baseline: bool = False,
        **fields: Any,
    ) -> Trial:
        values: dict[str, Any] = dict(
            number=number,
            config={"mem": 4096, "ratio": 0.5},
            status=status,
            objective=objective,
            started_at=T0 + timedelta(minutes=number),
            finished_at=T0 + timedelta(minutes=number, seconds=30),
            is_baseline=baseline,
            metrics={} if objective is None else {"tps": objective},
        )
        values.update(fields)
        return Trial(**values)

    return make


@pytest.fixture
def one_blas_thread() -> Iterator[None]:
    """GP fits are many tiny BLAS calls; threads only add overhead (5x slower on 2 CPUs)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield
