"""autotune server | agents add/list/rotate/revoke | agent: the service and its agents."""

from __future__ import annotations

import ipaddress
import re
import signal
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from autotune._resources import find_all
from autotune.agent import (
    HOST_PATTERN,
    AgentPolicy,
    AgentRunner,
    ExperimentInfo,
    Lease,
    RunnerEvents,
)
from autotune.agent import host_id as this_host
from autotune.cli._common import (
    DataDirOption,
    DsnOption,
    RestartCommandOption,
    StoreOption,
    console,
    fail,
    friendly,
    open_store,
    postgres_target,
)
from autotune.cli._listing import Column, Format, FormatOption, print_listing
from autotune.cli._progress import _action
from autotune.cli._signals import _Interrupted, _on_sigterm, interrupt_once, raise_if_lost
from autotune.service import HttpClient, ServiceError, check_admin_token, create_app
from autotune.spec import Spec, SpecError
from autotune.store import NAME_PATTERN, NAME_RULE, StoreError, Trial
from autotune.systems import System, SystemError_
from autotune.systems.postgres import public_dsn
from autotune.tuner import DEFAULT_LEASE_S
from autotune.workloads import load_workload

TOKEN_HINT = "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"

AdminTokenOption = Annotated[
    str | None,
    typer.Option(
        envvar="AUTOTUNE_ADMIN_TOKEN",
        show_envvar=True,
        show_default=False,
        help="The admin token. Prefer the environment variable: command lines are visible "
        "to every user of the host.",
    ),
]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@friendly
def server(
    store: StoreOption = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; loopback unless you mean to expose it.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8765,
    admin_token: AdminTokenOption = None,
    lease_s: Annotated[
        float,
        typer.Option(
            min=0.1, help="Seconds a trial stays leased without a heartbeat (per experiment too)."
        ),
    ] = DEFAULT_LEASE_S,
    dashboard: Annotated[
        bool, typer.Option("--dashboard/--no-dashboard", help="Serve the HTML dashboard at /.")
    ] = True,
    dashboard_token: Annotated[
        str | None,
        typer.Option(
            envvar="AUTOTUNE_DASHBOARD_TOKEN",
            show_envvar=True,
            show_default=False,
            help="Require this token for the dashboard (a browser asks for it as the "
            "password). Prefer the environment variable.",
        ),
    ] = None,
) -> None:
    """Run the tuner service: experiments, agent tokens, leases and reports over HTTP."""
    if not admin_token:
        fail(f"no admin token: set AUTOTUNE_ADMIN_TOKEN (or pass --admin-token); {TOKEN_HINT}")
    assert admin_token is not None
    try:
        check_admin_token(admin_token)
    except ValueError as exc:
        fail(str(exc))
    import uvicorn

    with open_store(store) as st:
        app = create_app(
            st, admin_token, lease_s, dashboard=dashboard, dashboard_token=dashboard_token
        )
        shown = f"[{host}]" if ":" in host else host
        base = f"http://{shown}:{port}"
        console.print(f"autotune server on {base}, store {st.safe_url}")
        console.print(f"API docs: {base}/docs")
        if dashboard:
            guard = "behind --dashboard-token" if dashboard_token else "open, no token"
            console.print(f"dashboard: {base}/ ({guard})")
        if not _is_loopback(host):
            console.print(
                "[yellow]warning:[/] listening beyond loopback over plain HTTP: tokens cross "
                "the network in the clear; put a TLS proxy in front or use a private network"
            )
            if dashboard and not dashboard_token:
                console.print(
                    "[yellow]warning:[/] the dashboard shows every trial's config, errors and "
                    "logs to anyone who can reach it: give --dashboard-token or --no-dashboard"
                )
        if st.engine.dialect.name == "sqlite":
            console.print(
                "note: SQLite store: run one server on it; for several, use a PostgreSQL store"
            )
        uvicorn.run(app, host=host, port=port, log_level="info")


agents_app = typer.Typer(
    help="Agent tokens for autotune server (written to the store directly).",
    no_args_is_help=True,
)


@agents_app.command("add")
@friendly
def agents_add(
    name: Annotated[str, typer.Argument(help="The agent's name, e.g. the host it runs on.")],
    store: StoreOption = None,
) -> None:
    """Register an agent and print its token once; the store keeps only a hash of it."""
    if not re.match(NAME_PATTERN, name):
        fail(f"agent name {name!r}: use {NAME_RULE}")
    with open_store(store) as st:
        token = st.add_agent(name)
    console.print(f"agent [bold]{name}[/] added. Its token, shown only now:", soft_wrap=True)
    console.print(token, markup=False, highlight=False)
    console.print(
        f"[dim]run: AUTOTUNE_AGENT_TOKEN=<token> autotune agent --server URL  (on {name})[/]"
    )


@agents_app.command("rotate")
@friendly
def agents_rotate(
    name: Annotated[str, typer.Argument(help="The agent whose token to replace.")],
    store: StoreOption = None,
) -> None:
    """Give an agent a new token and print it once; the old token is refused from now on."""
    with open_store(store) as st:
        try:
            token = st.rotate_agent(name)
        except StoreError as exc:
            fail(str(exc))
    console.print(f"agent [bold]{name}[/] has a new token, shown only now:", soft_wrap=True)
    console.print(token, markup=False, highlight=False)
    console.print("[dim]the old token no longer works; restart the agent with the new one[/]")


@agents_app.command("revoke")
@friendly
def agents_revoke(
    name: Annotated[str, typer.Argument(help="The agent to remove.")],
    store: StoreOption = None,
) -> None:
    """Remove an agent: its token is refused from now on; its recorded trials stay."""
    with open_store(store) as st:
        try:
            st.revoke_agent(name)
        except StoreError as exc:
            fail(str(exc))
    console.print(f"agent [bold]{name}[/] revoked: its token is refused from now on")


AGENT_COLUMNS = [
    Column("agent", name=True),
    Column("created", drop=1),
    Column("last_seen", "last seen"),
    Column("host", drop=2),
]


@agents_app.command("list")
@friendly
def agents_list(format: FormatOption = Format.table, store: StoreOption = None) -> None:
    """List registered agents, when each last called the server, and its host."""
    with open_store(store) as st:
        agents = st.agents()

    def at(when: datetime | None) -> str | None:
        """ISO times for CSV and JSON; the table's to the second."""
        if when is None:
            return None
        return when.strftime("%Y-%m-%d %H:%M:%S") if format is Format.table else when.isoformat()

    rows = [
        {
            "agent": a.name,
            "created": at(a.created_at),
            "last_seen": at(a.last_seen_at),
            "host": a.host,
        }
        for a in agents
    ]
    print_listing(rows, AGENT_COLUMNS, format)


class _AgentLines(RunnerEvents):
    """One line per trial, and one per setup phase: an agent runs unattended, in a log."""

    def setup(self, experiment: ExperimentInfo, phase: str) -> None:
        console.print(f"{experiment.name}: {phase}…")

    def trial_started(self, lease: Lease) -> None:
        raise_if_lost()

    def phase(self, name: str) -> None:
        raise_if_lost()

    def trial_finished(self, lease: Lease, trial: Trial) -> None:
        where = f"{lease.experiment.name} trial {trial.number:>3}"
        if not trial.ok:
            console.print(f"{where}  [red]FAILED[/]  {trial.error}", soft_wrap=True)
            return
        metric = lease.experiment.objective_metric
        action = _action(trial)
        took = trial.timings.get(f"{action}_s")
        console.print(
            f"{where}  ok  {metric}={trial.objective:.6g}"
            + (" (baseline)" if trial.is_baseline else "")
            + f"  [dim]{action}{f' {took:.1f}s' if took is not None else ''}"
            f"  measure {trial.timings.get('measure_s', 0):.1f}s[/]"
        )

    def trial_lost(self, lease: Lease, reason: str) -> None:
        console.print(
            f"{lease.experiment.name} trial {lease.number:>3}  [yellow]LEASE LOST[/]  {reason}",
            soft_wrap=True,
        )


def agent_policy(specs: list[Path], commands: list[str], sql: bool) -> AgentPolicy:
    """The agent's policy: what it could load itself, plus the owner's --allow-* options."""
    texts = []
    for found in find_all("knobs"):
        try:
            texts.append(found.path.read_text())
        except OSError:
            continue
    for path in specs:
        try:
            texts.append(path.read_text())
        except OSError as exc:
            raise ValueError(f"--allow-spec {path}: {exc.strerror}") from None
    workloads = []
    for found in find_all("workloads"):
        try:
            workloads.append(load_workload(str(found.path)))
        except (SpecError, OSError):
            continue  # a broken file allows nothing
    return AgentPolicy.of(texts, workloads, commands, sql)


@friendly
def agent(
    server: Annotated[str, typer.Option(help="The tuner service, e.g. http://tuner:8765.")],
    token: Annotated[
        str | None,
        typer.Option(
            envvar="AUTOTUNE_AGENT_TOKEN",
            show_envvar=True,
            show_default=False,
            help="This agent's token (autotune agents add). Prefer the environment variable.",
        ),
    ] = None,
    system: Annotated[
        str,
        typer.Option(
            help="What this agent tunes: a system name as in the specs (postgres, "
            "postgres+linux, …); it takes only experiments for that system."
        ),
    ] = "postgres",
    dsn: DsnOption = None,
    restart_command: RestartCommandOption = None,
    data_dir: DataDirOption = None,
    experiment: Annotated[
        str | None, typer.Option(help="Only run trials of this experiment.")
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Stop when the server has no trial to run.")
    ] = False,
    poll_s: Annotated[
        float, typer.Option(min=0.1, help="Seconds between asks when there is no work.")
    ] = 2.0,
    retry_s: Annotated[
        float, typer.Option(min=0, help="How long to keep retrying an unreachable server.")
    ] = 300.0,
    allow_spec: Annotated[
        list[Path] | None,
        typer.Option(
            "--allow-spec",
            help="Also run experiments of this knob spec file (repeatable). By default only "
            "the specs this agent could load itself.",
        ),
    ] = None,
    allow_command: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-command",
            help="Let command workloads run this program, as PATH resolves it (repeatable).",
        ),
    ] = None,
    allow_sql: Annotated[
        bool,
        typer.Option(
            "--allow-sql",
            help="Run SQL the server sends: sql-set workloads and pgbench scripts.",
        ),
    ] = False,
    host_id: Annotated[
        str | None,
        typer.Option(
            "--host-id",
            show_default=False,
            help="The host this agent runs on, as the server compares hosts so as not to run "
            "two trials on one at once (default: this kernel's boot id, shared by the "
            "containers on it). Give VMs on one physical machine the same name.",
        ),
    ] = None,
) -> None:
    """Run trials for a tuner service: lease, apply, run, collect, report; restore on exit.

    The agent runs only what its owner allows: specs and workloads it could load
    itself, pgbench's built-in scripts, and what the --allow-* options add. A
    trial it refuses fails with the rule that refused it.
    """
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_.+-]*$", system):
        fail(f"--system {system!r} is not a system name")
    if not token:
        fail("no agent token: set AUTOTUNE_AGENT_TOKEN (or pass --token); see autotune agents add")
    assert token is not None
    if dsn is None and (restart_command or data_dir):
        fail("--restart-command and --data-dir need --dsn")
    if experiment is not None and not re.match(NAME_PATTERN, experiment):
        fail(f"--experiment {experiment!r} is not an experiment name")
    if host_id is not None and not re.match(HOST_PATTERN, host_id):
        fail(f"--host-id {host_id!r}: up to 64 letters, digits and . _ : -, from a letter or digit")
    host = host_id or this_host()

    try:
        policy = agent_policy(allow_spec or [], allow_command or [], allow_sql)
    except ValueError as exc:
        fail(str(exc))
    build = postgres_target(dsn, restart_command, data_dir)

    def make_system(spec: Spec) -> System:
        if system not in (spec.system, spec.applier):
            raise SystemError_(f"this agent tunes {system}; the experiment is for {spec.system}")
        return build(spec)

    try:
        client = HttpClient(server, token, retry_s=retry_s, experiment=experiment, host=host)
    except ServiceError as exc:
        fail(str(exc))
    target = "a managed sandbox" if dsn is None else public_dsn(dsn)
    console.print(
        f"agent for {target} on host {host}, asking {server} for trials"
        + (f" of {experiment}" if experiment else "")
        + (" until there are none" if once else " (Ctrl-C to stop)")
    )
    runner = AgentRunner(client, make_system, _AgentLines(), poll_s=poll_s, policy=policy)
    # Ctrl-C must work even when a parent shell started us with SIGINT ignored
    # (as `cmd &` does): cleanup depends on it.
    signal.signal(signal.SIGINT, interrupt_once)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    interrupted = False
    refused: ServiceError | None = None
    try:
        runner.run(until_idle=once)
        raise_if_lost()  # one that landed after the last trial's phases
    except (KeyboardInterrupt, _Interrupted):
        interrupted = True
        console.print("[yellow]interrupted: giving the trial back and restoring the system…[/]")
    except ServiceError as exc:
        refused = exc
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        try:
            runner.close()
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN if interrupted else interrupt_once)
            signal.signal(signal.SIGTERM, previous)
            client.close()
    console.print(f"{runner.trials_run} trials run")
    if refused is not None:
        fail(str(refused))
    if interrupted:
        raise typer.Exit(130)
