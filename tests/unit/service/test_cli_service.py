"""`autotune server | agents | agent` and `autotune tune --server`, over a live server."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from autotune.agent import AgentRunner
from autotune.cli import app
from autotune.service import AdminClient, HttpClient, ServiceError, create_app
from autotune.spec import Machine
from autotune.store import Store
from autotune.systems._registry import Target
from tests.unit._support import MACHINE, T0
from tests.unit.service._support import (
    ADMIN,
    SPEC_PATH,
    WORKLOAD_PATH,
    FakeAgent,
    experiment_body,
    live_server,
)

runner = CliRunner()
ENV = {"COLUMNS": "200", "AUTOTUNE_ADMIN_TOKEN": None, "AUTOTUNE_AGENT_TOKEN": None}


def invoke(*args: str, **env: str | None) -> Any:
    return runner.invoke(app, list(args), env={**ENV, **env})


@pytest.fixture(autouse=True)
def fixed_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Machine, "local", classmethod(lambda cls: MACHINE))


@pytest.fixture
def served(store_url: str) -> Iterator[tuple[str, Store]]:
    store = Store(store_url)
    with live_server(create_app(store, ADMIN, lease_s=60)) as url:
        yield url, store
    store.close()


# -- agents add / list ----------------------------------------------------------------------


def test_agents_add_prints_the_token_once_and_list_shows_it(store_url: str) -> None:
    added = invoke("agents", "add", "db1", "--store", store_url)
    assert added.exit_code == 0, added.output
    token = added.output.splitlines()[1].strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    store = Store(store_url)
    assert store.agent_for_token(token) == "db1"
    store.close()
    listed = invoke("agents", "list", "--store", store_url)
    assert listed.exit_code == 0
    assert "db1" in listed.output
    assert token not in listed.output
    again = invoke("agents", "add", "db1", "--store", store_url)
    assert again.exit_code == 2
    assert "agent 'db1' already exists" in again.output
    bad = invoke("agents", "add", "no/slash", "--store", store_url)
    assert bad.exit_code == 2
    assert "agent name 'no/slash'" in bad.output


def test_agents_rotate_and_revoke_end_the_old_token(served: tuple[str, Store]) -> None:
    url, store = served
    old = store.add_agent("db1")
    assert HttpClient(url, old).lease() is None  # accepted: no experiment yet
    rotated = invoke("agents", "rotate", "db1", "--store", str(store.url))
    assert rotated.exit_code == 0, rotated.output
    new = rotated.output.splitlines()[1].strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", new) and new != old
    assert store.agent_for_token(old) is None and store.agent_for_token(new) == "db1"
    with pytest.raises(ServiceError, match="403: unknown agent token"):
        HttpClient(url, old, retry_s=0).lease()
    revoked = invoke("agents", "revoke", "db1", "--store", str(store.url))
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert store.agent_for_token(new) is None
    assert "db1" not in invoke("agents", "list", "--store", str(store.url)).output
    for verb in ("rotate", "revoke"):
        missing = invoke("agents", verb, "db1", "--store", str(store.url))
        assert missing.exit_code == 2 and "no agent 'db1'" in missing.output


def test_an_agents_last_use_is_written_at_most_once_a_minute(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = store.add_agent("db1")
    clock = [T0]
    monkeypatch.setattr("autotune.store._agents.now", lambda: clock[0])
    assert store.agent_for_token(token) == "db1"
    seen = lambda: store.agents()[0].last_seen_at  # noqa: E731
    assert seen() == T0
    clock[0] = T0 + timedelta(seconds=59)
    store.agent_for_token(token)
    assert seen() == T0  # not written again within the minute
    clock[0] = T0 + timedelta(seconds=61)
    store.agent_for_token(token)
    assert seen() == T0 + timedelta(seconds=61)


# -- server ------------------------------------------------------------------------------------


def test_server_refuses_to_start_without_a_good_admin_token(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Any] = []
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: started.append((a, k)))
    missing = invoke("server", "--store", store_url)
    assert missing.exit_code == 2
    assert "no admin token" in missing.output
    weak = invoke("server", "--store", store_url, AUTOTUNE_ADMIN_TOKEN="short")
    assert weak.exit_code == 2
    assert "16 to 512 printable ASCII" in weak.output
    assert started == []


def test_server_binds_loopback_by_default_and_says_where_the_docs_are(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[dict[str, Any]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **k: started.append({"app": app, **k}))
    result = invoke("server", "--store", store_url, "--port", "9123", AUTOTUNE_ADMIN_TOKEN=ADMIN)
    assert result.exit_code == 0, result.output
    assert "API docs: http://127.0.0.1:9123/docs" in result.output
    assert "warning" not in result.output
    (call,) = started
    assert (call["host"], call["port"]) == ("127.0.0.1", 9123)
    assert call["app"].title == "autotune tuner service"
    exposed = invoke(
        "server", "--store", store_url, "--host", "0.0.0.0", AUTOTUNE_ADMIN_TOKEN=ADMIN
    )
    assert exposed.exit_code == 0
    assert "listening beyond loopback" in exposed.output


# -- agent --------------------------------------------------------------------------------------


@pytest.fixture
def fake_system(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """`autotune agent`'s make_system builds this instead of a PostgreSQL sandbox."""
    built: list[Any] = []

    def system(spec: Any, target: Target) -> dict[str, Any]:
        made = {
            "managed": target.managed,
            "dsn": target.dsn,
            "restart_command": target.restart_command,
            "data_dir": target.data_dir,
        }
        built.append(made)
        return made

    monkeypatch.setattr("autotune.cli._common.make_system", system)
    return built


@pytest.mark.usefixtures("fake_agents")
def test_agent_once_runs_every_trial_and_restores(
    served: tuple[str, Store], fake_system: list[Any]
) -> None:
    url, store = served
    AdminClient(url, ADMIN).create_experiment(experiment_body(parallelism=1, budget=3))
    token = store.add_agent("db1")
    result = invoke(
        "agent",
        "--server",
        url,
        "--once",
        "--poll-s",
        "0.1",
        "--allow-spec",
        str(SPEC_PATH),
        AUTOTUNE_AGENT_TOKEN=token,
    )
    assert result.exit_code == 0, result.output
    assert "agent for a managed sandbox" in result.output
    assert len(re.findall(r"exp trial +\d+  ok  tps=", result.output)) == 3
    assert "3 trials run" in result.output
    assert fake_system == [
        {"managed": True, "dsn": None, "restart_command": None, "data_dir": None}
    ]
    assert [a.stopped for a in FakeAgent.instances] == [True]  # the system was restored
    trials = AdminClient(url, ADMIN).trials("exp")
    assert [(t.status, t.agent) for t in trials] == [("ok", "db1")] * 3


@pytest.mark.usefixtures("fake_agents")
def test_agent_interrupted_gives_the_trial_back_and_restores(
    served: tuple[str, Store], fake_system: list[Any]
) -> None:
    url, store = served
    AdminClient(url, ADMIN).create_experiment(experiment_body(parallelism=1, budget=3))
    FakeAgent.interrupt_on = 2  # Ctrl-C during the second trial
    token = store.add_agent("db1")
    result = invoke(
        "agent", "--server", url, "--allow-spec", str(SPEC_PATH), AUTOTUNE_AGENT_TOKEN=token
    )
    assert result.exit_code == 130, result.output
    assert "interrupted: giving the trial back" in result.output
    assert [a.stopped for a in FakeAgent.instances] == [True]
    trials = AdminClient(url, ADMIN).trials("exp")
    assert [t.status for t in trials] == ["ok", "pending"]  # released, not left leased
    assert "released" in [h[0] for h in trials[1].status_history]


@pytest.mark.usefixtures("fake_agents")
def test_an_agent_refuses_a_spec_its_owner_has_not_allowed(
    served: tuple[str, Store], fake_system: list[Any]
) -> None:
    url, store = served
    AdminClient(url, ADMIN).create_experiment(experiment_body(parallelism=1, budget=2))
    token = store.add_agent("db1")
    result = invoke(
        "agent", "--server", url, "--once", "--poll-s", "0.1", AUTOTUNE_AGENT_TOKEN=token
    )
    assert result.exit_code == 0, result.output
    assert fake_system == []  # nothing was set up
    trials = AdminClient(url, ADMIN).trials("exp")
    assert [(t.status, t.agent) for t in trials] == [("failed", "db1")] * 2
    assert trials[0].error is not None
    assert "does not run spec poison.yaml" in trials[0].error
    assert "--allow-spec FILE" in trials[0].error  # the rule, and how to lift it
    bad = invoke(
        "agent", "--server", url, "--allow-command", "no-such-program-x", AUTOTUNE_AGENT_TOKEN=token
    )
    assert bad.exit_code == 2
    assert "--allow-command 'no-such-program-x': no such program on PATH" in bad.output


def test_agent_refusals(served: tuple[str, Store]) -> None:
    url, _ = served
    no_token = invoke("agent", "--server", url)
    assert no_token.exit_code == 2 and "no agent token" in no_token.output
    unknown = invoke("agent", "--server", url, "--once", AUTOTUNE_AGENT_TOKEN="u" * 43)
    assert unknown.exit_code == 2
    assert "403: unknown agent token" in unknown.output
    other = invoke("agent", "--server", url, "--system", "my sql", AUTOTUNE_AGENT_TOKEN="u" * 43)
    assert other.exit_code == 2 and "'my sql' is not a system name" in other.output
    stray = invoke("agent", "--server", url, "--data-dir", "/x", AUTOTUNE_AGENT_TOKEN="u" * 43)
    assert stray.exit_code == 2 and "need --dsn" in stray.output


# -- tune --server ------------------------------------------------------------------------------


def _tune(url: str, *extra: str, **env: str | None) -> Any:
    args = [
        "tune",
        "--system",
        str(SPEC_PATH),
        "--workload",
        str(WORKLOAD_PATH),
        "--trials",
        "6",
        "--server",
        url,
        "--experiment",
        "remote",
        *extra,
    ]
    return invoke(*args, **{"AUTOTUNE_ADMIN_TOKEN": ADMIN, **env})


@pytest.mark.usefixtures("fake_agents")
def test_tune_server_submits_and_follows_while_agents_run_it(served: tuple[str, Store]) -> None:
    url, store = served
    runners = [
        AgentRunner(HttpClient(url, store.add_agent(f"a{i}")), lambda spec: None, poll_s=0.05)
        for i in range(2)
    ]
    threads = [threading.Thread(target=r.run, kwargs={"until_idle": False}) for r in runners]
    for t in threads:
        t.start()
    try:
        result = _tune(
            url, "--parallel", "2", "--optimizer", "random", "--knobs", "work_mem",
            "--repeats", "2", "--time-budget", "600",
        )  # fmt: skip
    finally:
        for r in runners:
            r.stopping.set()
        for t in threads:
            t.join(timeout=10)
    assert result.exit_code == 0, result.output
    assert "submitted experiment remote" in result.output
    assert "1 knobs, optimizer random, 6 trials, up to 2 at a time" in result.output
    assert len(re.findall(r"^trial +\d+  ok  tps=", result.output, re.M)) == 6
    assert "(baseline)" in result.output
    repeated_baseline = r"^trial +\d+  ok  tps=\S+ \(baseline\) \(repeat\)"
    assert len(re.findall(repeated_baseline, result.output, re.M)) == 1
    assert "summary: remote" in result.output
    assert re.search(r"^best +trial \d+ \(2 runs\), median \S+ tps, ", result.output, re.M)
    assert "trials        6 done, 0 failed, 2 repeats" in result.output
    assert "work_mem = " in result.output  # the best config, rendered with the local spec
    exp = AdminClient(url, ADMIN).experiment("remote")
    assert exp is not None and exp.status == "done" and exp.parallelism == 2
    assert exp.repeats == 2 and exp.time_budget_s == 600.0
    assert store.require_experiment("remote").settings["target"] == "remote agents"
    # Again with more trials: it resumes, keeping what it recorded.
    follow = _tune(url, "--trials", "6")
    assert follow.exit_code == 0, follow.output
    assert "resuming experiment remote" in follow.output
    assert "(6 recorded)" in follow.output


@pytest.mark.usefixtures("fake_agents")
@pytest.mark.parametrize("colocated", [False, True])
def test_agents_on_one_host_run_one_trial_at_a_time_and_the_follow_says_so(
    served: tuple[str, Store], colocated: bool
) -> None:
    url, store = served
    runners = [
        AgentRunner(
            HttpClient(url, store.add_agent(f"a{i}"), host="boot-same"),
            lambda spec: None,
            poll_s=0.01,
        )
        for i in range(2)
    ]
    for r in runners:  # each has called the server, so the follow counts it as active
        assert r.client.lease() is None
    threads = [threading.Thread(target=r.run, kwargs={"until_idle": False}) for r in runners]
    for t in threads:
        t.start()
    try:
        flag = ["--allow-colocated"] if colocated else []
        result = _tune(
            url, "--parallel", "2", "--optimizer", "random", "--knobs", "work_mem", *flag
        )
    finally:
        for r in runners:
            r.stopping.set()
        for t in threads:
            t.join(timeout=10)
    assert result.exit_code == 0, result.output
    assert len(re.findall(r"^trial +\d+  ok  tps=", result.output, re.M)) == 6
    note = (
        "note: up to 2 trials at a time were asked for, but agents share hosts (a0, a1 on "
        "host boot-same) and a host runs one trial at a time, so at most 1 at once"
    )
    if colocated:
        assert "note: up to 2" not in result.output
    else:
        assert note in " ".join(result.output.split()), result.output
        assert FakeAgent.peak == 1  # never two trials side by side on the one host
    agents = invoke("agents", "list", "--store", str(store.url))
    assert "boot-same" in agents.output


def test_tune_server_refusals(served: tuple[str, Store]) -> None:
    url, _ = served
    no_token = _tune(url, AUTOTUNE_ADMIN_TOKEN=None)
    assert no_token.exit_code == 2 and "needs the admin token" in no_token.output
    local_only = _tune(url, "--dsn", "host=db1")
    assert local_only.exit_code == 2 and "are for local sessions" in local_only.output
    bad_knob = _tune(url, "--knobs", "no_such_knob")
    assert bad_knob.exit_code == 2
    assert "422" in bad_knob.output and "no_such_knob" in bad_knob.output
    parallel_local = invoke(
        "tune", "--system", str(SPEC_PATH), "--workload", str(WORKLOAD_PATH), "--parallel", "2"
    )
    assert parallel_local.exit_code == 2
    assert "--parallel and --allow-colocated need --server" in parallel_local.output
    colocated_local = invoke(
        "tune", "--system", str(SPEC_PATH), "--workload", str(WORKLOAD_PATH), "--allow-colocated"
    )
    assert colocated_local.exit_code == 2 and "need --server" in colocated_local.output
