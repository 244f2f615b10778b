"""The tuner service end to end: a real server on a PostgreSQL store, real agents,
each with its own managed PostgreSQL sandbox, real pgbench.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from autotune.systems.postgres import Sandbox, sweep_stale
from tests.conftest import DATA
from tests.integration.pgutil import Service, cli_env, store_url

pytestmark = [pytest.mark.pg, pytest.mark.slow]

TINY_TPCB = str(DATA / "workloads" / "tiny-tpcb.yaml")
KNOBS = "shared_buffers,work_mem,random_page_cost"


@pytest.fixture
def service(workdir: Path, sandbox: Sandbox) -> Any:
    svc = Service(workdir, store_url(sandbox.conn_params()))
    try:
        yield svc
    finally:
        svc.stop()
        # A killed agent cannot clean up; the next agent start would sweep its sandbox.
        sweep_stale(workdir / "sandboxes")


def submit(
    svc: Service, name: str, trials: int, parallel: int, duration: float, *extra: str
) -> subprocess.Popen[str]:
    """`autotune tune --server`: submit, then follow until the budget is spent."""
    return subprocess.Popen(
        [
            sys.executable, "-m", "autotune", "tune", "--system", "postgres",
            "--workload", TINY_TPCB, "--trials", str(trials), "--duration", str(duration),
            "--knobs", KNOBS, "--experiment", name, "--server", svc.url,
            "--parallel", str(parallel), *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=svc.workdir,
        env={**cli_env(svc.workdir), "AUTOTUNE_ADMIN_TOKEN": svc.admin_token},
    )  # fmt: skip


def trials_of(svc: Service, name: str) -> list[dict[str, Any]]:
    """The experiment's trials; none while it is still being submitted."""
    try:
        data = svc.admin(f"/api/experiments/{name}/trials")
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == 404:
            return []
        raise
    assert isinstance(data, list)
    return data


def wait_for(predicate: Any, timeout: float, what: str, svc: Service) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{svc.dump()}")


def max_in_flight(trials: list[dict[str, Any]]) -> int:
    """The most trials running at once, from their started/finished timestamps."""
    events = []
    for t in trials:
        events.append((datetime.fromisoformat(t["started_at"]), 1))
        events.append((datetime.fromisoformat(t["finished_at"]), -1))
    running = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    return peak


def test_two_agents_on_one_host_take_turns_and_the_follow_says_so(service: Service) -> None:
    """Both agents report this machine's own host id: their trials never overlap."""
    service.start_server(lease_s=60)
    for name in ("h1", "h2"):
        service.start_agent(name, own_host=False)
    wait_for(
        lambda: all(a["last_seen_at"] for a in service.admin("/api/agents")),
        60,
        "both agents to call the server",
        service,
    )
    follower = submit(service, "turns", 4, 2, 1, "--no-verify")
    out, _ = follower.communicate(timeout=600)
    assert follower.returncode == 0, out + service.dump()
    trials = trials_of(service, "turns")
    assert sorted(t["number"] for t in trials) == [1, 2, 3, 4]
    assert all(t["status"] == "ok" for t in trials), trials
    assert max_in_flight(trials) == 1
    assert "agents share hosts (h1, h2 on host boot-" in " ".join(out.split()), out
    hosts = {a["name"]: a["host"] for a in service.admin("/api/agents")}
    assert hosts["h1"] == hosts["h2"] and hosts["h1"].startswith("boot-")


def test_four_agents_run_sixteen_trials_once_each(service: Service) -> None:
    """Sixteen search trials over four agents, then the paired verification's rounds."""
    service.start_server(lease_s=60)
    for name in ("a1", "a2", "a3", "a4"):
        service.start_agent(name)
    follower = submit(service, "four", 16, 4, 1, "--max-rounds", "3")
    out, _ = follower.communicate(timeout=600)
    assert follower.returncode == 0, out + service.dump()
    trials = trials_of(service, "four")
    searched = [t for t in trials if t["phase"] == "search"]
    verified = [t for t in trials if t["phase"] == "verify"]
    assert sorted(t["number"] for t in searched) == list(range(1, 17))
    # The default, the two best and pgtune, one run each a round, capped at 3 rounds.
    assert sorted(t["number"] for t in verified) == list(range(17, 29))
    assert len(trials) == 28
    for r in (1, 2, 3):
        arms = [t["arm"] for t in sorted(verified, key=lambda t: t["number"]) if t["round"] == r]
        assert len(arms) == 4 and set(arms) >= {"default", "pgtune"}, arms
    assert "verification: 3 paired rounds" in out, out
    assert all(t["status"] in ("ok", "failed") for t in trials)
    assert sum(t["status"] == "ok" for t in searched) >= 14
    # Batches are distinct: no config is searched twice.
    assert len({str(sorted(t["config"].items())) for t in searched}) == 16
    assert not any(t["repeat"] for t in trials)
    assert {t["agent"] for t in trials} <= {"a1", "a2", "a3", "a4"}
    assert len({t["agent"] for t in trials}) >= 3
    assert all(t["attempts"] == 1 for t in trials)
    assert 2 <= max_in_flight(trials) <= 4
    for t in sorted(trials, key=lambda t: t["number"]):  # shown with -s: the schedule
        print(t["number"], t["agent"], t["status"], t["started_at"], t["finished_at"])
