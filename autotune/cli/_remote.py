"""autotune tune --server: submit the experiment, then follow it while agents run it."""

from __future__ import annotations

import math
import signal
import time
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from autotune.cli._common import (
    console,
    fail,
)
from autotune.cli._progress import _change, _kind, _print_summary
from autotune.cli._signals import _Interrupted, _on_sigterm
from autotune.service import AdminClient, ExperimentOut, ServiceError, TrialOut
from autotune.spec import Spec
from autotune.store import now
from autotune.tuner import (
    capacity,
    summary_of,
)

CAPACITY_EVERY_S = 10.0  # how often a follow asks which agents can run its trials


def _tune_remote(
    server: str, admin_token: str | None, spec: Spec, request: dict[str, Any], poll_s: float = 1.0
) -> None:
    """Submit the experiment to a server, then follow it until its budget is spent."""
    if not admin_token:
        fail("--server needs the admin token: set AUTOTUNE_ADMIN_TOKEN or pass --admin-token")
    assert admin_token is not None
    name = str(request["name"])
    try:
        client = AdminClient(server, admin_token)
    except ServiceError as exc:
        fail(str(exc))
    # Ctrl-C must work even when a parent shell started us with SIGINT ignored
    # (as `cmd &` does): cleanup depends on it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        created = client.create_experiment(request)
        exp = created.experiment
        for note in created.notes:
            console.print(f"note: {note}")
        console.print(
            f"{'resuming' if created.resumed else 'submitted'} experiment [bold]{name}[/] on "
            f"{server}: {exp.system} × {exp.workload}, {len(exp.knobs)} knobs, optimizer "
            f"{exp.optimizer}, {exp.budget} trials, up to {exp.parallelism} at a time"
            + (f" ({exp.finished} recorded)" if created.resumed else "")
        )
        _follow(client, exp, poll_s)
        best = client.best(name)
        done = [t.to_trial() for t in client.trials(name) if t.status in ("ok", "failed")]
    except (KeyboardInterrupt, _Interrupted):
        console.print(
            f"[yellow]stopped following[/]: {name} goes on on the server; "
            f"follow it again with: autotune tune … --server {server} --experiment {name}"
        )
        raise typer.Exit(130) from None
    except ServiceError as exc:
        fail(str(exc))
        return
    finally:
        signal.signal(signal.SIGTERM, previous)
        client.close()
    summary = summary_of(
        name, best.objective_metric, best.direction, done, f"the server's, at {server}"
    )
    _print_summary(spec, summary, 0.0, 0.0)


def _follow(client: AdminClient, exp: ExperimentOut, poll_s: float) -> None:
    """A bar of finished trials and one line per trial, until the budget is spent; a
    note whenever fewer trials can run at once than were asked for, and why."""
    name, budget = exp.name, exp.budget
    metric, direction = exp.objective_metric, exp.direction
    reported: set[int] = set()
    baseline: float | None = None
    said: str | None = None
    checked = -math.inf
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("waiting for agents", total=budget)
        while True:
            if exp.parallelism > 1 and time.monotonic() - checked >= CAPACITY_EVERY_S:
                checked = time.monotonic()
                agents = [a.to_info() for a in client.agents()]
                room = capacity(exp.parallelism, exp.allow_colocated, agents, now())
                if room.note is not None and room.note != said:
                    progress.console.print(f"note: {room.note}", markup=False)
                said = room.note
            trials = client.trials(name)
            finished = [t for t in trials if t.status in ("ok", "failed")]
            for t in finished:
                if t.id in reported:
                    continue
                reported.add(t.id)
                if t.baseline and t.status == "ok":
                    baseline = t.objective
                progress.console.print(_remote_line(t, metric, direction, baseline))
            running = sum(t.status == "leased" for t in trials)
            searched = sum(t.phase == "search" for t in finished)
            verifying = searched >= budget or any(t.phase == "verify" for t in trials)
            progress.update(
                task,
                completed=min(searched, budget),
                description=(
                    "verifying"
                    if verifying
                    else f"{running} running"
                    if running
                    else "waiting for agents"
                ),
            )
            if searched >= budget:
                # The search is spent; the experiment may still verify its claim.
                state = client.experiment(name)
                if state is None or state.status == "done" or not state.verify:
                    return
            time.sleep(poll_s)


def _remote_line(t: TrialOut, metric: str, direction: str, baseline: float | None) -> str:
    by = f"  [dim]{t.agent}, attempt {t.attempts}[/]"
    if t.phase == "verify":
        value = f"{metric}={t.objective:.6g}" if t.status == "ok" else f"[red]FAILED[/] {t.error}"
        return f"verify {t.round:>2}  {t.arm:<10}  {value}{by}"
    if t.status != "ok":
        return f"trial {t.number:>3}  [red]FAILED[/]  {t.error}{by}"
    delta = ""
    if baseline and t.objective is not None and not t.baseline:
        delta = f"  ({_change(t.objective, baseline, direction)})"
    label = (" (baseline)" if t.baseline else "") + _kind(t.to_trial())
    return f"trial {t.number:>3}  ok  {metric}={t.objective:.6g}{label}{delta}{by}"
