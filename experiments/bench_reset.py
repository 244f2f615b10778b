"""Which way of giving every trial the freshly loaded database is fastest, and exact?

A write workload changes the data it measures: pgbench's tpcb-like adds a
history row and three dead tuples a transaction, autovacuum falls behind, the
tables bloat. Three ways to bring the data back before a trial, each timed
after a write run and checked against the loaded state:

- ``clone-file-copy``: ``DROP DATABASE … WITH (FORCE)`` then ``CREATE DATABASE …
  TEMPLATE pristine STRATEGY FILE_COPY`` (a file-level copy between two
  checkpoints), then a ``VACUUM`` that only refreshes the statistics (what
  ``PostgresSystem.reset_data`` does);
- ``clone-wal-log``: the same with PostgreSQL 15's default ``STRATEGY WAL_LOG``,
  which copies block by block through the WAL;
- ``snapshot-restore``: stop the server, replace the data directory by a copy
  taken after the load, start it again (the restart a restart-class knob pays
  anyway is part of its cost here).

Exact means: the row count of every pgbench table, the sum of every balance,
the size of every relation and ``n_dead_tup`` equal what they were right
after the load.

    python experiments/bench_reset.py --scales 10,100 --rounds 3

Writes results/reset.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from psycopg2 import sql

from autotune.spec import load_spec
from autotune.systems.postgres import PostgresSystem, Sandbox
from autotune.systems.postgres._system import DATA_DB, PRISTINE_DB
from autotune.workloads import make_workload, parse_workload

ROOT = Path(__file__).resolve().parent
SPEC = ROOT.parent / "knobs" / "postgres.yaml"
WORKLOAD = """
name: reset-bench
system: postgres
kind: pgbench
builtin: tpcb-like
scale: {scale}
clients: 8
threads: 2
duration: {write_s}s
objective: {{metric: tps, direction: maximize}}
"""
TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history")
BALANCES = {
    "pgbench_accounts": "abalance",
    "pgbench_branches": "bbalance",
    "pgbench_tellers": "tbalance",
}


def state(pg: PostgresSystem) -> dict[str, Any]:
    """What must equal the loaded state: rows, balances, sizes, dead tuples."""
    out: dict[str, Any] = {}
    with pg.connect() as conn, conn.cursor() as cur:
        for table in TABLES:
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
            out[f"{table}.rows"] = cur.fetchone()[0]
            cur.execute("SELECT pg_relation_size(%s)", (table,))
            out[f"{table}.bytes"] = cur.fetchone()[0]
        for table, column in BALANCES.items():
            cur.execute(
                sql.SQL("SELECT sum({}) FROM {}").format(
                    sql.Identifier(column), sql.Identifier(table)
                )
            )
            out[f"{table}.balance"] = int(cur.fetchone()[0] or 0)
        cur.execute("SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables")
        out["n_dead_tup"] = int(cur.fetchone()[0])
    return out


def clone(strategy: str) -> Callable[[PostgresSystem], None]:
    def reset(pg: PostgresSystem) -> None:
        with pg.connect(maintenance=True) as conn, conn.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATA_DB))
            )
            cur.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY {}").format(
                    sql.Identifier(DATA_DB), sql.Identifier(PRISTINE_DB), sql.SQL(strategy)
                )
            )
        with pg.connect() as conn, conn.cursor() as cur:
            cur.execute("VACUUM")

    return reset


def snapshot_restore(copy: Path) -> Callable[[PostgresSystem], None]:
    def reset(pg: PostgresSystem) -> None:
        box = pg.sandbox
        assert box is not None
        box.stop()
        shutil.rmtree(box.data_dir)
        subprocess.run(["cp", "-a", str(copy), str(box.data_dir)], check=True)
        box.start()

    return reset


def measure(scale: int, rounds: int, write_s: int, workdir: Path) -> list[dict[str, Any]]:
    spec = load_spec(SPEC)
    definition = parse_workload(WORKLOAD.format(scale=scale, write_s=write_s), workdir / "w.yaml")
    workload = make_workload(definition)
    pg = PostgresSystem(spec, sandbox=Sandbox(root=workdir / "sandboxes"))
    rows: list[dict[str, Any]] = []
    try:
        pg.start()
        t0 = time.monotonic()
        workload.prepare(pg)  # loads, vacuums, checkpoints, keeps the pristine copy
        load_s = time.monotonic() - t0
        loaded = state(pg)
        box = pg.sandbox
        assert box is not None
        copy = box.dir / "pristine-data"  # type: ignore[operator]
        box.stop()
        subprocess.run(["cp", "-a", str(box.data_dir), str(copy)], check=True)
        box.start()
        size = loaded["pgbench_accounts.bytes"]
        options = {
            "clone-file-copy": clone("FILE_COPY"),
            "clone-wal-log": clone("WAL_LOG"),
            "snapshot-restore": snapshot_restore(copy),
        }
        for r in range(rounds):
            for name, reset in options.items():
                workload.run(pg, write_s, lambda _: None)
                dirty = state(pg)
                t0 = time.monotonic()
                reset(pg)
                took = time.monotonic() - t0
                after = state(pg)
                rows.append(
                    {
                        "scale": scale,
                        "option": name,
                        "round": r + 1,
                        "reset_s": took,
                        "exact": after == loaded,
                        "changed_before": dirty != loaded,
                        "load_s": load_s,
                        "accounts_mb": size / 2**20,
                        "diff": {k: (loaded[k], after[k]) for k in loaded if loaded[k] != after[k]},
                    }
                )
                print(
                    f"scale {scale} {name} round {r + 1}: {took:.2f}s, exact {after == loaded}",
                    flush=True,
                )
    finally:
        pg.stop()
    return rows


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| scale | accounts MB | option | rounds | median s | min s | max s | exact |",
        "|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    keys = sorted({(r["scale"], r["option"]) for r in rows})
    for scale, option in keys:
        mine = [r for r in rows if (r["scale"], r["option"]) == (scale, option)]
        times = [r["reset_s"] for r in mine]
        exact = all(r["exact"] for r in mine)
        lines.append(
            f"| {scale} | {mine[0]['accounts_mb']:.0f} | {option} | {len(mine)} | "
            f"{statistics.median(times):.2f} | {min(times):.2f} | {max(times):.2f} | "
            f"{'yes' if exact else 'NO: ' + str(mine[0]['diff'])} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="10,100")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write-s", type=int, default=10, help="pgbench writes before a reset")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "reset.md")
    args = parser.parse_args()
    started = datetime.datetime.now(datetime.UTC)
    load0 = os.getloadavg()[0]
    workdir = Path("/tmp") / f"autotune-reset-bench-{os.getpid()}"
    workdir.mkdir()
    workdir.chmod(0o755)
    rows: list[dict[str, Any]] = []
    try:
        for scale in (int(s) for s in args.scales.split(",")):
            rows += measure(scale, args.rounds, args.write_s, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    changed = all(r["changed_before"] for r in rows)
    text = [
        "# Resetting the data before a trial",
        "",
        f"Measured {started:%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores, "
        f"load {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end), PostgreSQL 15 sandbox "
        "with default settings; nothing else ran.",
        "",
        f"    python experiments/bench_reset.py --scales {args.scales} --rounds {args.rounds} "
        f"--write-s {args.write_s}",
        "",
        f"Each round: {args.write_s} s of pgbench tpcb-like writes (8 clients), then the "
        "option, timed; the options take turns. Exact: rows, balances, relation sizes and "
        "n_dead_tup equal the loaded state"
        + ("" if changed else " (NOTE: some write run left the state unchanged)")
        + ".",
        "",
        *table(rows),
        "",
    ]
    args.out.write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
