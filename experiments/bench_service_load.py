"""Load on the tuner service: 64 simulated agents over several servers sharing one
PostgreSQL store, 2,000 trials, one server killed mid-run.

The agents are real HTTP clients (autotune's own HttpClient) running a no-op
workload: each leased trial "runs" for a random 0.1-0.5 s and reports a random
tps. The server is a real `autotune server` process; the store is a real
PostgreSQL (a managed sandbox). The optimiser is random search, so the numbers
measure the service, not model fitting.

Agents are spread over ``--servers`` real ``autotune server`` processes on the
same store, as behind a load balancer. With ``--kill-at F`` the first server is
killed with SIGKILL once a share F of the budget is finished; its agents then
go to the next server, as a load balancer's health check would send them.

It checks, from the store afterwards:
- zero double leases: every trial was leased once, by one agent (a trial whose
  lease was held through the killed server may expire and be leased again:
  those are counted apart, as re-leases after the kill);
- zero lost reports: every report a server accepted is in the store, and the
  store holds exactly the budget, each trial number once;
- duplicate proposals: search configs proposed more than once across servers.

It writes experiments/results/service_load.md with p50/p95/p99 latency per call.

    python experiments/bench_service_load.py [--agents 64] [--trials 2000] \
        [--servers 3] [--kill-at 0.4]
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
from autotune.service import AdminClient, HttpClient, ServiceError
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
        self.failovers = 0

    def add(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latency[kind].append(seconds * 1000)


def agent_loop(
    urls: list[str],
    token: str,
    experiment: str,
    stats: Stats,
    done: threading.Event,
    work_s: tuple[float, float],
) -> None:
    """One agent: its own server first, the next one when that stops answering."""
    at = 0
    client = HttpClient(urls[at], token, experiment=experiment, retry_s=3)
    rng = random.Random(token)

    def failover() -> None:
        nonlocal at, client
        client.close()
        at = (at + 1) % len(urls)
        client = HttpClient(urls[at], token, experiment=experiment, retry_s=3)
        with stats.lock:
            stats.failovers += 1

    try:
        while not done.is_set():
            t0 = time.perf_counter()
            try:
                lease = client.lease()
            except Exception:  # its server is gone: the next one
                failover()
                continue
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
            for _ in range(len(urls)):
                try:
                    client.report(lease, outcome)
                    with stats.lock:
                        stats.reports_ok += 1
                    break
                except ServiceError as exc:
                    if exc.status is None:  # unreachable (its retries gave up): the next one
                        failover()
                        continue
                    with stats.lock:  # refused by a server (409): counted, not fatal
                        stats.conflicts += 1
                        stats.errors.append(str(exc)[:200])
                    break
                except Exception:  # the server died under the call: the next one
                    failover()
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
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument(
        "--kill-at",
        type=float,
        default=0.4,
        help="kill -9 the first server once this share of the budget is done (0: never)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "service_load.md")
    args = parser.parse_args()
    low, high = (float(x) for x in args.work_s.split(","))

    box = Sandbox()
    box.create()
    box.start()
    servers: list[subprocess.Popen[bytes]] = []
    try:
        p = box.conn_params()
        url_store = (
            f"postgresql+psycopg2://{p['user']}@/{p['dbname']}?host={p['host']}&port={p['port']}"
        )
        store = Store(url_store)
        tokens = [store.add_agent(f"sim-{i:02d}") for i in range(args.agents)]
        urls = []
        for i in range(args.servers):
            port = free_port()
            urls.append(f"http://127.0.0.1:{port}")
            servers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "autotune",
                        "server",
                        "--store",
                        url_store,
                        "--port",
                        str(port),
                        "--admin-token",
                        ADMIN,
                        "--lease-s",
                        "30",
                    ],
                    stdout=open(args.out.with_suffix(f".server{i}.log"), "w"),  # noqa: SIM115
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        for url in urls:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        url = urls[-1]
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
                # A load test of the search: no paired verification after it (from 10
                # trials up it would follow, one run at a time, past the budget).
                "verify": False,
            }
        )
        stats = Stats()
        done = threading.Event()
        # Agent i starts on server i mod N and fails over to the next.
        threads = [
            threading.Thread(
                target=agent_loop,
                args=(urls[i % len(urls) :] + urls[: i % len(urls)], t, name, stats, done,
                      (low, high)),
                daemon=True,
            )
            for i, t in enumerate(tokens)
        ]  # fmt: skip
        killed_at: float | None = None
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
            if args.kill_at and killed_at is None and finished >= args.kill_at * args.trials:
                os.killpg(servers[0].pid, signal.SIGKILL)  # mid-run, requests in flight
                servers[0].wait()
                killed_at = time.monotonic() - t_start
            if finished >= args.trials:
                break
        wall = time.monotonic() - t_start
        done.set()
        for thread in threads:
            thread.join(timeout=30)
        print()
        trials = store.trials(experiment)
        numbers = [t.number for t in trials]
        releases = [t for t in trials if t.attempts != 1]
        # A lease held through the killed server can expire and go to another agent:
        # a re-lease after an expiry, not two agents holding one trial at once.
        expired = [t for t in releases if any(h[0] == "expired" for h in t.status_history)]
        double_leases = len(releases) - len(expired)
        configs = [str(sorted(t.config.items())) for t in trials if t.phase == "search"]
        duplicates = len(configs) - len(set(configs))
        all_finished = all(t.finished for t in trials)
        lost = stats.reports_ok - sum(t.finished for t in trials)
        lines = [
            "# Tuner service under load",
            "",
            f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
            f"({os.cpu_count()} CPUs, shared). {args.servers} `autotune server` processes "
            "(uvicorn) on one store, a PostgreSQL 15 sandbox on the same host; "
            f"{args.agents} simulated agents spread over them "
            "(threads of one client process, autotune's HttpClient, keep-alive), no-op workload "
            f"of {low:g}-{high:g} s per trial, random optimiser, parallelism = agents. "
            + (
                f"Server 1 killed with SIGKILL at {killed_at:.1f} s "
                f"({args.kill_at:.0%} of the budget done); its agents failed over."
                if killed_at is not None
                else "No server killed."
            ),
            "",
            "Command: `python experiments/bench_service_load.py --agents "
            f"{args.agents} --trials {args.trials} --servers {args.servers} "
            f"--kill-at {args.kill_at:g} --work-s {args.work_s}`",
            "",
            f"- trials: {len(trials)} recorded (budget {args.trials}; "
            f"{sum(t.phase == 'search' for t in trials)} search), numbers unique: "
            f"{len(set(numbers)) == len(numbers)}, all finished: {all_finished}",
            f"- double leases: {double_leases}; re-leased after an expired lease: {len(expired)}",
            f"- lost reports: {max(0, lost)} "
            f"(accepted reports {stats.reports_ok}, refused {stats.conflicts})",
            f"- duplicate proposals (search configs proposed twice): {duplicates}",
            f"- agent failovers to another server: {stats.failovers}",
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
        for server in servers:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
        box.destroy()


if __name__ == "__main__":
    main()
