"""An analytic query set: setup SQL once, then every query repeated, timed one by one.

The objective is usually the p95 of the per-query latencies; total time and
the average are recorded too.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import psycopg2

from autotune.systems import System
from autotune.workloads._base import Phase, Workload, WorkloadError, WorkloadResult
from autotune.workloads.pgbench import _postgres, keep_state, reset_state, settle_state

METRICS = ("latency_avg_ms", "latency_p95_ms", "latency_p99_ms", "total_s", "queries", "qps")


class SqlSetWorkload(Workload):
    def prepare(self, system: System) -> None:
        pg = _postgres(system)
        setup = Path(self.definition.params["setup"]).read_text()
        try:
            with pg.connect(timeout_s=30) as conn, conn.cursor() as cur:
                cur.execute(setup)
        except psycopg2.Error as exc:
            raise WorkloadError(f"setup SQL failed: {exc.pgerror or exc}") from None
        keep_state(pg, reset=bool(self.definition.params["reset"]))

    def reset(self, system: System) -> bool:
        return reset_state(_postgres(system), reset=bool(self.definition.params["reset"]))

    def settle(self, system: System) -> dict[str, float]:
        return settle_state(_postgres(system))

    def run(
        self, system: System, duration_s: float | None, phase: Phase, warmup: bool = True
    ) -> WorkloadResult:
        pg = _postgres(system)
        p = self.definition.params
        queries = [(Path(q).name, Path(q).read_text()) for q in p["queries"]]
        result = WorkloadResult(metrics={})
        timings: list[float] = []
        per_query: dict[str, list[float]] = {name: [] for name, _ in queries}
        try:
            with pg.connect(timeout_s=30) as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT set_config('statement_timeout', %s, false)",
                    (str(int(p["timeout_s"] * 1000)),),
                )
                phase("warmup")
                t0 = time.monotonic()
                for _ in range(int(p["warmup_rounds"]) if warmup else 0):
                    for _, text in queries:
                        cur.execute(text)
                        cur.fetchall()
                result.warmup_s = time.monotonic() - t0
                phase("measure")
                t0 = time.monotonic()
                rounds = 0
                # With --duration, run whole rounds until it is used up; else `repeat` rounds.
                while (
                    rounds < p["repeat"]
                    if duration_s is None
                    else (rounds == 0 or time.monotonic() - t0 < duration_s)
                ):
                    for name, text in queries:
                        q0 = time.perf_counter()
                        cur.execute(text)
                        cur.fetchall()
                        elapsed = (time.perf_counter() - q0) * 1000
                        timings.append(elapsed)
                        per_query[name].append(elapsed)
                    rounds += 1
                result.measure_s = time.monotonic() - t0
        except psycopg2.Error as exc:
            raise WorkloadError(f"query failed: {exc.pgerror or exc}") from None
        phase("collect")
        t0 = time.monotonic()
        values = np.asarray(timings)
        result.metrics = {
            "latency_avg_ms": float(values.mean()),
            "latency_p95_ms": float(np.percentile(values, 95)),
            "latency_p99_ms": float(np.percentile(values, 99)),
            "total_s": float(values.sum() / 1000),
            "queries": float(values.size),
            "qps": float(values.size / max(result.measure_s, 1e-9)),
        }
        for name, times in per_query.items():
            result.metrics[f"{Path(name).stem}_median_ms"] = float(np.median(times))
        result.collect_s = time.monotonic() - t0
        return result
