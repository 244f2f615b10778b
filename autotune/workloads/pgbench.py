"""pgbench: built-in TPC-B-like, simple-update and select-only, or custom scripts.

Throughput and average latency come from pgbench's own summary; p95 and p99
from its per-transaction log (``--log``), whose third column is the
transaction's latency in microseconds (PostgreSQL docs, "pgbench", Per-Transaction
Logging). Connection details travel in libpq environment variables, never on
the command line.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2

from autotune._tmp import OwnedTempDir
from autotune.systems import System, SystemError_
from autotune.systems.postgres import PostgresSystem, find_program
from autotune.workloads._base import Phase, Workload, WorkloadError, WorkloadResult

METRICS = ("tps", "latency_avg_ms", "latency_p95_ms", "latency_p99_ms", "transactions", "failed")
_TPS_RE = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.M)
_LAT_RE = re.compile(r"^latency average = ([0-9.]+) ms", re.M)
_TX_RE = re.compile(r"^number of transactions actually processed: (\d+)", re.M)
_FAILED_RE = re.compile(r"^number of failed transactions: (\d+)", re.M)


def _postgres(system: System) -> PostgresSystem:
    found = system.find(PostgresSystem)
    if found is None:
        raise WorkloadError("pgbench workloads need a postgres system")
    return found


def parse_summary(output: str) -> dict[str, float]:
    """tps, average latency, transactions and failures from pgbench's summary."""
    tps = _TPS_RE.search(output)
    if tps is None:
        raise WorkloadError("pgbench printed no tps line", output[-2000:])
    metrics = {"tps": float(tps.group(1))}
    for key, regex in (
        ("latency_avg_ms", _LAT_RE),
        ("transactions", _TX_RE),
        ("failed", _FAILED_RE),
    ):
        m = regex.search(output)
        if m:
            metrics[key] = float(m.group(1))
    return metrics


def keep_state(pg: PostgresSystem, reset: bool) -> None:
    """After loading: fresh statistics and a clean checkpoint; in a sandbox also frozen
    tuples (no anti-wraparound vacuum falls due in a later trial), pg_prewarm installed
    and, for a workload that resets, the pristine copy kept."""
    with pg.connect() as conn, conn.cursor() as cur:
        cur.execute("VACUUM (FREEZE, ANALYZE)" if pg.can_reset() else "VACUUM ANALYZE")
        cur.execute("CHECKPOINT")
    if pg.can_reset():
        pg.enable_prewarm()
        if reset:
            pg.keep_pristine()


def reset_state(pg: PostgresSystem, reset: bool) -> bool:
    """The data back as ``keep_state`` kept it, where it can be; False if not reset."""
    if not (reset and pg.can_reset()):
        return False
    try:
        pg.reset_data()
    except (psycopg2.Error, SystemError_) as exc:
        raise WorkloadError(f"resetting the data failed: {exc}") from None
    return True


def settle_state(pg: PostgresSystem) -> dict[str, float]:
    """``PostgresSystem.settle``, its failures as the trial's."""
    try:
        return pg.settle()
    except (psycopg2.Error, SystemError_) as exc:
        raise WorkloadError(f"settling the server failed: {exc}") from None


def read_latencies_ms(files: list[Path]) -> np.ndarray:
    """Latencies of successful transactions from pgbench per-transaction logs."""
    values: list[float] = []
    for path in files:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2].isdigit():
                    values.append(int(parts[2]) / 1000.0)
    return np.asarray(values)


class PgbenchWorkload(Workload):
    def _env(self, system: PostgresSystem) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(system.client_env())
        return env

    def _pgbench(
        self, system: PostgresSystem, args: list[str], timeout_s: float, cwd: Path | None = None
    ) -> str:
        cmd = [find_program("pgbench"), *args]
        try:
            result = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env=self._env(system),
                cwd=cwd,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise WorkloadError(f"pgbench did not finish within {timeout_s:.0f}s") from None
        output = result.stdout + result.stderr
        if result.returncode != 0:
            raise WorkloadError(f"pgbench exited {result.returncode}", output[-3000:])
        return output

    def _run_args(self, seconds: float) -> list[str]:
        p: dict[str, Any] = self.definition.params
        args = [
            "--no-vacuum",
            "--client",
            str(p["clients"]),
            "--jobs",
            str(p["threads"]),
            "--protocol",
            str(p["mode"]),
            "--time",
            str(max(1, math.ceil(seconds))),
        ]
        if "script" in p:
            # Custom scripts only see the real :scale when told (pgbench docs, -s).
            args += ["--file", str(p["script"]), "--scale", str(p["scale"])]
        else:
            args += ["--builtin", str(p["builtin"])]
        return args

    def prepare(self, system: System) -> None:
        """Initialise pgbench's tables unless they already hold this scale, settle them,
        and keep a pristine copy where the data can be reset (see ``reset``)."""
        pg = _postgres(system)
        scale = int(self.definition.params["scale"])
        with pg.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass('pgbench_branches') IS NOT NULL")
            row = cur.fetchone()
            present = False
            if row and row[0]:
                cur.execute("SELECT count(*) FROM pgbench_branches")
                count = cur.fetchone()
                present = count is not None and count[0] == scale
        if not present:
            self._pgbench(pg, ["--initialize", "--quiet", "--scale", str(scale)], 1800)
        keep_state(pg, reset=bool(self.definition.params["reset"]))

    def reset(self, system: System) -> bool:
        return reset_state(_postgres(system), reset=bool(self.definition.params["reset"]))

    def settle(self, system: System) -> dict[str, float]:
        return settle_state(_postgres(system))

    def run(
        self, system: System, duration_s: float | None, phase: Phase, warmup: bool = True
    ) -> WorkloadResult:
        pg = _postgres(system)
        duration = duration_s or self.definition.duration_s or 30.0
        result = WorkloadResult(metrics={})
        if warmup and self.definition.warmup_s > 0:
            phase("warmup")
            t0 = time.monotonic()
            self._pgbench(pg, self._run_args(self.definition.warmup_s), self._timeout(duration))
            result.warmup_s = time.monotonic() - t0
        with OwnedTempDir("autotune-pgbench-") as tmp:
            phase("measure")
            t0 = time.monotonic()
            output = self._pgbench(
                pg,
                [*self._run_args(duration), "--log", "--log-prefix", str(Path(tmp) / "tx")],
                self._timeout(duration),
                cwd=Path(tmp),
            )
            result.measure_s = time.monotonic() - t0
            phase("collect")
            t0 = time.monotonic()
            metrics = parse_summary(output)
            latencies = read_latencies_ms(sorted(Path(tmp).glob("tx.*")))
        if latencies.size:
            metrics["latency_p95_ms"] = float(np.percentile(latencies, 95))
            metrics["latency_p99_ms"] = float(np.percentile(latencies, 99))
        result.metrics = metrics
        result.collect_s = time.monotonic() - t0
        return result

    def _timeout(self, duration: float) -> float:
        return duration + self.definition.warmup_s + 120
