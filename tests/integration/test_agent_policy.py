"""A real agent of a real server runs only what its owner allowed (issue 20's attacks).

Whoever holds the admin token submits experiments. A ``command`` workload whose
run is a shell, and a spec labelled ``system: postgres`` whose applier starts a
shell, must be refused by a default agent, before anything runs, and run once
the agent's owner allows them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from autotune.systems.postgres import sweep_stale
from tests.integration.pgutil import Service, cli_env

pytestmark = pytest.mark.pg


@pytest.fixture
def service(workdir: Path) -> Any:
    svc = Service(workdir, f"sqlite:///{workdir / 'service.db'}")
    svc.start_server()
    try:
        yield svc
    finally:
        svc.stop()
        sweep_stale(workdir / "sandboxes")


def submit(svc: Service, name: str, spec: str, workload: Path) -> subprocess.Popen[str]:
    """`autotune tune --server` of one trial, once the server has it; it follows the
    experiment until it ends."""
    follower = subprocess.Popen(
        [
            sys.executable, "-m", "autotune", "tune", "--system", spec, "--workload",
            str(workload), "--trials", "1", "--experiment", name, "--server", svc.url,
        ],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=svc.workdir,
        env={**cli_env(svc.workdir), "AUTOTUNE_ADMIN_TOKEN": svc.admin_token},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and follower.poll() is None:
        try:
            svc.admin(f"/api/experiments/{name}")
            return follower
        except httpx.HTTPStatusError:
            time.sleep(0.2)
    raise AssertionError(f"{name} was not submitted:\n{ended(follower)}")


def ended(follower: subprocess.Popen[str]) -> str:
    out, _ = follower.communicate(timeout=120)
    return out


def agent_once(svc: Service, name: str, *allow: str, check: bool = True) -> str:
    token = svc.add_agent(name)
    result = subprocess.run(
        [
            sys.executable, "-m", "autotune", "agent", "--server", svc.url, "--once",
            "--poll-s", "0.2", *allow,
        ],
        capture_output=True, text=True, cwd=svc.workdir, timeout=300,
        env={**cli_env(svc.workdir), "AUTOTUNE_AGENT_TOKEN": token},
    )  # fmt: skip
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def only_trial(svc: Service, name: str) -> dict[str, Any]:
    trials = svc.admin(f"/api/experiments/{name}/trials")
    assert isinstance(trials, list) and len(trials) == 1
    trial: dict[str, Any] = trials[0]
    return trial


def test_a_command_workload_runs_only_with_its_program_allowed(
    service: Service, workdir: Path
) -> None:
    marker = workdir / "owned-by-command"
    workload = workdir / "shell.yaml"
    workload.write_text(
        "name: shell\nsystem: postgres\nkind: command\n"
        f"run: [/bin/sh, -c, 'id > {marker}; echo t=1']\n"
        "metrics: {t: {regex: 't=([0-9]+)'}}\nobjective: {metric: t}\nduration: 1s\n"
    )
    follower = submit(service, "cmd", "postgres", workload)
    out = agent_once(service, "default")
    ended(follower)
    trial = only_trial(service, "cmd")
    assert trial["status"] == "failed" and not marker.exists()
    assert "its run runs /bin/sh" in trial["error"] and "--allow-command" in trial["error"]
    assert "FAILED" in out

    follower = submit(service, "cmd2", "postgres", workload)
    agent_once(service, "trusting", "--allow-command", "/bin/sh")
    ended(follower)
    assert only_trial(service, "cmd2")["status"] == "ok"
    assert marker.read_text().startswith("uid=")


def test_a_spec_that_starts_a_shell_runs_only_when_its_file_is_allowed(
    service: Service, workdir: Path
) -> None:
    marker = workdir / "owned-by-spec"
    spec = workdir / "evil.yaml"
    spec.write_text(
        "system: postgres\n"
        "applier:\n  kind: command-args\n"
        f"  start: [/bin/sh, -c, 'id > {marker}; exec sleep 60']\n"
        "  ready: {command: [/bin/true], timeout: 5s}\n"
        "knobs:\n  x: {type: integer, min: 1, max: 9, default: 1, apply: restart}\n"
    )
    workload = Path(__file__).parents[1] / "data" / "workloads" / "tiny-tpcb.yaml"
    follower = submit(service, "evil", str(spec), workload)
    agent_once(service, "default")
    ended(follower)
    trial = only_trial(service, "evil")
    assert trial["status"] == "failed" and not marker.exists()
    assert "does not run spec" in trial["error"] and "--allow-spec FILE" in trial["error"]

    follower = submit(service, "evil2", str(spec), workload)
    # The owner allowed it, so it ran. The agent then stops: a pgbench workload cannot
    # drive this fake server, which is beside the point here.
    agent_once(service, "trusting", "--allow-spec", str(spec), check=False)
    follower.kill()
    follower.communicate(timeout=30)
    assert marker.read_text().startswith("uid=")
