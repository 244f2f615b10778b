"""The tuner service under faults: an agent killed mid-trial, the server killed, an
agent stopped, the store cut off. Real server, real agents, real PostgreSQL store.
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from autotune.systems.postgres import Sandbox
from tests.integration.pgutil import Service
from tests.integration.test_service import service, submit, trials_of, wait_for

__all__ = ["service"]

pytestmark = pytest.mark.slow


def test_an_agent_killed_mid_trial_loses_its_lease_and_the_trial_completes_elsewhere(
    service: Service,
) -> None:
    service.start_server(lease_s=6)
    victim = service.start_agent("victim", "--experiment", "killed")
    follower = submit(service, "killed", trials=4, parallel=1, duration=4)

    def victim_measuring() -> bool:
        return any(
            t["status"] == "leased" and t["agent"] == "victim" for t in trials_of(service, "killed")
        )

    wait_for(victim_measuring, 120, "the victim to lease a trial", service)
    time.sleep(3)  # inside its pgbench run
    os.killpg(victim.pid, signal.SIGKILL)  # no cleanup, no release, no heartbeats
    victim.wait()
    held = next(t for t in trials_of(service, "killed") if t["status"] == "leased")
    left = {p for p in (service.workdir / "sandboxes").glob("autotune-pg-*")}
    assert len(left) == 2  # the store's, and the one the killed agent could not remove
    service.start_agent("rescuer", "--experiment", "killed")
    out, _ = follower.communicate(timeout=600)
    assert follower.returncode == 0, out + service.dump()
    trials = trials_of(service, "killed")
    assert sorted(t["number"] for t in trials) == [1, 2, 3, 4]  # no duplicate rows
    redone = next(t for t in trials if t["number"] == held["number"])
    assert redone["status"] == "ok"
    assert redone["agent"] == "rescuer"
    assert redone["attempts"] == 2
    assert "expired" in [h[0] for h in redone["status_history"]]
    # The next agent to start on this host swept the killed agent's sandbox.
    still = {p for p in (service.workdir / "sandboxes").glob("autotune-pg-*")}
    assert len(still & left) == 1


def test_the_server_killed_and_restarted_loses_nothing(service: Service) -> None:
    service.start_server(lease_s=60)
    service.start_agent("b1")
    service.start_agent("b2")
    follower = submit(service, "restart", trials=8, parallel=2, duration=2)
    wait_for(
        lambda: sum(t["status"] == "ok" for t in trials_of(service, "restart")) >= 3,
        300,
        "three finished trials",
        service,
    )
    before = {t["number"]: t for t in trials_of(service, "restart") if t["status"] == "ok"}
    assert service.server is not None
    os.killpg(service.server.pid, signal.SIGKILL)
    service.server.wait()
    time.sleep(2)
    service.start_server(lease_s=60)  # same port, same store
    out, _ = follower.communicate(timeout=600)
    assert follower.returncode == 0, out + service.dump()
    trials = trials_of(service, "restart")
    assert sorted(t["number"] for t in trials) == list(range(1, 9))
    assert all(t["status"] in ("ok", "failed") for t in trials)
    after = {t["number"]: t for t in trials}
    for number, trial in before.items():  # no completed trial lost or changed
        assert after[number]["metrics"] == trial["metrics"]
        assert after[number]["finished_at"] == trial["finished_at"]


def test_an_agent_stopped_by_sigterm_releases_its_trial_and_cleans_up(service: Service) -> None:
    service.start_server(lease_s=60)
    leaving = service.start_agent("leaving", "--experiment", "handover")
    follower = submit(service, "handover", trials=2, parallel=1, duration=5)

    def leaving_measuring() -> bool:
        return any(t["agent"] == "leaving" and t["status"] == "leased"
                   for t in trials_of(service, "handover"))  # fmt: skip

    wait_for(leaving_measuring, 120, "the agent to lease a trial", service)
    time.sleep(2)
    os.killpg(leaving.pid, signal.SIGTERM)
    assert leaving.wait(timeout=90) in (0, 130, 143)
    (trial,) = [t for t in trials_of(service, "handover") if t["agent"] == "leaving"]
    assert trial["status"] == "pending"  # handed back at once, not after the lease runs out
    assert "released" in [h[0] for h in trial["status_history"]]
    mine = {p for p in (service.workdir / "sandboxes").glob("autotune-pg-*")}
    assert len(mine) == 1  # only the store's: the agent removed its sandbox on the way out
    service.start_agent("staying", "--experiment", "handover")
    out, _ = follower.communicate(timeout=600)
    assert follower.returncode == 0, out + service.dump()
    trials = trials_of(service, "handover")
    assert [t["status"] for t in sorted(trials, key=lambda t: t["number"])] == ["ok", "ok"]
    assert {t["agent"] for t in trials} == {"staying"}


def test_a_store_outage_is_a_pause_not_a_loss(service: Service, sandbox: Sandbox) -> None:
    """The store's PostgreSQL stopped for 8 s mid-run: the API answers 503 with
    Retry-After meanwhile, and agents and the follower carry on once it is back."""
    service.start_server(lease_s=30)
    service.start_agent("c1")
    service.start_agent("c2")
    follower = submit(service, "outage", trials=8, parallel=2, duration=2)
    wait_for(
        lambda: sum(t["status"] == "ok" for t in trials_of(service, "outage")) >= 2,
        300,
        "two finished trials",
        service,
    )
    before = {t["number"]: t for t in trials_of(service, "outage") if t["status"] == "ok"}
    sandbox.stop()
    try:
        down = httpx.get(
            f"{service.url}/api/experiments/outage",
            headers={"Authorization": f"Bearer {service.admin_token}"},
            timeout=30,
        )
        assert down.status_code == 503, down.text
        assert down.headers["retry-after"] == "5"
        time.sleep(8)
    finally:
        sandbox.start()
    out, _ = follower.communicate(timeout=600)
    assert follower.returncode == 0, out + service.dump()
    trials = trials_of(service, "outage")
    assert sorted(t["number"] for t in trials) == list(range(1, 9))  # none lost, none twice
    assert all(t["status"] in ("ok", "failed") for t in trials)
    after = {t["number"]: t for t in trials}
    for number, trial in before.items():
        assert after[number]["metrics"] == trial["metrics"]
    assert sum(t["status"] == "ok" for t in trials) >= 6
