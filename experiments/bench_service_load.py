"""Load on the tuner service: 64 simulated agents, one server, a PostgreSQL store, 2,000 trials.

The agents are real HTTP clients (autotune's own HttpClient) running a no-op
workload: each leased trial "runs" for a random 0.1-0.5 s and reports a random
tps. The server is a real `autotune server` process; the store is a real
PostgreSQL (a managed sandbox). The optimiser is random search, so the numbers
measure the service, not model fitting.

It checks, from the store afterwards:
- zero double leases: every trial was leased once (no expiry happened), by one agent;
- zero lost reports: every report the server accepted is in the store, and the
  store holds exactly the budget, each trial number once.

It writes experiments/results/service_load.md with p50/p95/p99 latency per call.

    python experiments/bench_service_load.py [--agents 64] [--trials 2000]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from autotune.agent import TrialOutcome
from autotune.service._client import AdminClient, HttpClient
from autotune.store import Store, now
from autotune.systems.postgres import Sandbox

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
ADMIN = "bench-admin-token-0123456789"
POLL_S = 2.0  # as `autotune agent --poll-s` by default: how often an idle agent asks again


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = {"lease": [], "report": [], "idle lease": []}
        self.reports_ok = 0
        self.conflicts = 0
        self.errors: list[str] = []

    def add(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latency[kind].append(seconds * 1000)


def agent_loop(
    url: str,
    token: str,
    experiment: str,
    stats: Stats,
    done: threading.Event,
    work_s: tuple[float, float],
) -> None:
    client = HttpClient(url, token, experiment=experiment, retry_s=30)
    rng = random.Random(token)
    try:
        while not done.is_set():
            t0 = time.perf_counter()
            lease = client.lease()
            elapsed = time.perf_counter() - t0
            if lease is None:
                stats.add("idle lease", elapsed)
                time.sleep(POLL_S)
                continue
            stats.add("lease", elapsed)
            started = now()
            time.sleep(rng.uniform(*work_s))  # the no-op workload
            outcome = TrialOutcome(
                status="ok",
                metrics={"tps": rng.uniform(1000, 2000)},
                timings={"measure_s": 0.3, "total_s": 0.3},
                started_at=started,
                finished_at=now(),
            )
            t0 = time.perf_counter()
            try:
                client.report(lease, outcome)
                with stats.lock:
                    stats.reports_ok += 1
            except Exception as exc:  # a refused report is counted, not fatal
                with stats.lock:
                    stats.conflicts += 1
                    stats.errors.append(repr(exc))
            stats.add("report", time.perf_counter() - t0)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=64)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument(
        "--work-s",
        default="2,6",
        help="how long the no-op workload 'runs' per trial: a uniform range MIN,MAX in seconds",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "service_load.md")
    args = parser.parse_args()
    low, high = (float(x) for x in args.work_s.split(","))

    box = Sandbox()
    box.create()
    box.start()
    server: subprocess.Popen[bytes] | None = None
    try:
        p = box.conn_params()
        url_store = (
            f"postgresql+psycopg2://{p['user']}@/{p['dbname']}?host={p['host']}&port={p['port']}"
        )
        store = Store(url_store)
        tokens = [store.add_agent(f"sim-{i:02d}") for i in range(args.agents)]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "autotune", "server", "--store", url_store,
             "--port", str(port), "--admin-token", ADMIN, "--lease-s", "120"],
            stdout=open(args.out.with_suffix(".server.log"), "w"),  # noqa: SIM115
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        admin = AdminClient(url, ADMIN)
        spec = (ROOT / "knobs" / "postgres.yaml").read_text()
        workload = (ROOT / "tests" / "data" / "workloads" / "tiny-tpcb.yaml").read_text()
        name = f"load-{int(time.time())}"
        admin.create_experiment(
            {
                "name": name,
                "spec": spec,
                "spec_path": "knobs/postgres.yaml",
                "workload": workload,
                "workload_name": "tiny-tpcb",
                "knobs": "group:oltp",
                "budget": args.trials,
                "parallelism": args.agents,
                "optimizer": "random",
            }
        )
        stats = Stats()
        done = threading.Event()
        threads = [
            threading.Thread(
                target=agent_loop, args=(url, t, name, stats, done, (low, high)), daemon=True
            )
            for t in tokens
        ]
        t_start = time.monotonic()
        for thread in threads:
            thread.start()
        experiment = store.require_experiment(name)
        while True:
            time.sleep(1)
            finished = sum(
                n for s, n in store.trial_counts(experiment).items() if s in ("ok", "failed")
            )
            print(f"\r{finished}/{args.trials} trials", end="", flush=True)
            if finished >= args.trials:
                break
        wall = time.monotonic() - t_start
        done.set()
        for thread in threads:
            thread.join(timeout=30)
        print()
        trials = store.trials(experiment)
        numbers = [t.number for t in trials]
        double_leases = sum(
            1
            for t in trials
            if t.attempts != 1 or sum(h[0] == "leased" for h in t.status_history) != 1
        )
        all_finished = all(t.finished for t in trials)
        lost = stats.reports_ok - sum(t.finished for t in trials)
        lines = [
            "# Tuner service under load",
            "",
            f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
            f"({os.cpu_count()} CPUs, shared). One `autotune server` process (uvicorn), "
            f"store on a PostgreSQL 15 sandbox on the same host, {args.agents} simulated agents "
            "(threads of one client process, autotune's HttpClient, keep-alive), no-op workload "
            f"of {low:g}-{high:g} s per trial, random optimiser, parallelism = agents.",
            "",
            f"- trials: {len(trials)} recorded (budget {args.trials}), numbers unique: "
            f"{len(set(numbers)) == len(numbers)}, all finished: {all_finished}",
            f"- double leases: {double_leases}",
            f"- lost reports: {lost} "
            f"(accepted reports {stats.reports_ok}, refused {stats.conflicts})",
            f"- wall time: {wall:.1f} s, {len(trials) / wall:.1f} trials/s",
            "",
            "Latency as the agents saw it (ms, includes client-side queuing on 2 shared cores):",
            "",
            "| call | n | p50 | p95 | p99 | max |",
            "|---|---|---|---|---|---|",
        ]
        every: list[float] = []
        for kind, values in stats.latency.items():
            if not values:
                continue
            every += values
            a = np.asarray(values)
            lines.append(
                f"| {kind} | {a.size} | {np.percentile(a, 50):.1f} | {np.percentile(a, 95):.1f} "
                f"| {np.percentile(a, 99):.1f} | {a.max():.1f} |"
            )
        a = np.asarray(every)
        lines.append(
            f"| all | {a.size} | {np.percentile(a, 50):.1f} | {np.percentile(a, 95):.1f} "
            f"| {np.percentile(a, 99):.1f} | {a.max():.1f} |"
        )
        if stats.errors:
            lines += ["", "Refusals seen:", *sorted(set(stats.errors))[:10]]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        store.close()
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        box.destroy()


if __name__ == "__main__":
    main()
