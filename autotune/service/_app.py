"""The tuner service: the Scheduler and the store behind an authenticated JSON API.

Admins create experiments and agent tokens; agents lease trials, heartbeat and
report. Every rule that matters (who may report, what a config may be, when
an experiment resumes) lives in the Scheduler, the store and open_experiment,
the same code ``autotune tune`` runs in-process; this module only
authenticates, validates and translates errors into status codes.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at
# runtime, and they name dependencies local to create_app.
import dataclasses
import logging
import secrets
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import Depends, FastAPI, Request, Response, Security
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from autotune import __version__
from autotune.agent import ExperimentInfo, TrialOutcome, materialize_workload
from autotune.service._dashboard import add_dashboard
from autotune.service._models import (
    TOKEN_RE,
    AgentCreate,
    AgentOut,
    AgentToken,
    BestOut,
    ExperimentCreate,
    ExperimentCreated,
    ExperimentOut,
    Health,
    HeartbeatOut,
    LeaseOut,
    LeaseRef,
    LeaseRequest,
    Problem,
    Released,
    ReportIn,
    RobustOut,
    TrialOut,
)
from autotune.spec import Machine, Spec, SpecError, parse_spec
from autotune.store import (
    NAME_PATTERN,
    BadReport,
    Experiment,
    LeaseConflict,
    Store,
    StoreError,
    token_hash,
)
from autotune.systems import applier_kind, known_kinds
from autotune.tuner import (
    DEFAULT_LEASE_S,
    Scheduler,
    SessionOptions,
    TuningError,
    check_repeats,
    check_warm_start,
    open_experiment,
    select_knobs,
    summarize,
    verify_option,
)
from autotune.workloads import WorkloadDef

log = logging.getLogger("autotune.service")
RETRY_AFTER_S = 5  # what a 503 for a store outage tells clients to wait

MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_YAML_DEPTH = 40  # PyYAML composes recursively: bound nesting before it runs

ExperimentName = Annotated[str, PathParam(pattern=NAME_PATTERN)]
TrialId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Problem} for code in codes}


ADMIN_ERRORS = _responses(401, 403, 422)
AGENT_ERRORS = _responses(401, 403, 409, 422)


def check_admin_token(token: str) -> None:
    """Refuse tokens a client could not send, or guess: 16-512 printable ASCII characters."""
    if not TOKEN_RE.match(token):
        raise ValueError(
            "the admin token must be 16 to 512 printable ASCII characters without spaces; "
            "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )


def create_app(
    store: Store,
    admin_token: str,
    lease_s: float = DEFAULT_LEASE_S,
    *,
    dashboard: bool = True,
    dashboard_token: str | None = None,
) -> FastAPI:
    """The service over ``store``; one Scheduler, so proposals are serialised in-process.

    ``dashboard``: serve the HTML pages too, behind ``dashboard_token`` if given.
    """
    check_admin_token(admin_token)
    admin_digest = token_hash(admin_token)
    scheduler = Scheduler(store, lease_s)
    # Leases are atomic in the store itself: row locks on PostgreSQL, BEGIN IMMEDIATE on
    # SQLite; nothing here needs to serialise requests.
    app = FastAPI(
        title="autotune tuner service",
        version=__version__,
        description="Experiments, trials and leases for autotune agents. "
        "Admin endpoints take the admin token, agent endpoints an agent token, "
        "both as `Authorization: Bearer TOKEN`.",
    )
    app.add_middleware(_BodyLimit, limit=MAX_BODY_BYTES)
    admin_scheme = HTTPBearer(
        scheme_name="admin", auto_error=False, description="The server's admin token."
    )
    agent_scheme = HTTPBearer(
        scheme_name="agent", auto_error=False, description="A token from `autotune agents add`."
    )

    Credentials = HTTPAuthorizationCredentials | None

    def admin(creds: Annotated[Credentials, Security(admin_scheme)]) -> None:
        token = _bearer(creds)
        if not secrets.compare_digest(token_hash(token), admin_digest):
            raise HTTPException(403, "this endpoint needs the admin token")

    def agent(creds: Annotated[Credentials, Security(agent_scheme)]) -> str:
        token = _bearer(creds)
        if secrets.compare_digest(token_hash(token), admin_digest):
            raise HTTPException(
                403, "the admin token cannot act as an agent; use a token from autotune agents add"
            )
        name = store.agent_for_token(token)
        if name is None:
            raise HTTPException(403, "unknown agent token")
        return name

    Admin = Annotated[None, Depends(admin)]
    AgentName = Annotated[str, Depends(agent)]

    # -- errors: one shape, never a traceback --------------------------------------------------

    @app.exception_handler(HTTPException)
    def _http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI's answer to a body json.loads cannot decode (not UTF-8, nested too
            # deeply, an endless number): a malformed body, like any other.
            cause = exc.__cause__
            why = "nested too deeply" if isinstance(cause, RecursionError) else str(cause)
            line = f"body: not valid JSON: {why}"
            return JSONResponse(
                Problem(detail=f"invalid request: {line}", problems=[line]).model_dump(),
                status_code=422,
            )
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        problems = getattr(exc, "problems", None) or [detail]
        body = Problem(detail=detail, problems=problems).model_dump()
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> Response:
        lines = [_error_line(e) for e in exc.errors()]
        content_type = request.headers.get("content-type", "")
        if exc.body and "json" not in content_type:  # a body FastAPI did not read as JSON
            sent = content_type or "no Content-Type"
            lines.insert(0, f"body: send JSON with Content-Type: application/json, not {sent}")
        shown = "; ".join(lines[:5]) + (f"; and {len(lines) - 5} more" if len(lines) > 5 else "")
        body = Problem(detail=f"invalid request: {shown}", problems=lines).model_dump()
        return JSONResponse(body, status_code=422)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    def _store_down(request: Request, exc: DBAPIError) -> Response:
        # The store is unreachable or refused the connection: a pause, not a bug. Agents
        # and clients retry 5xx with backoff; Retry-After says when.
        line = "the results store is unavailable; retry shortly"
        log.warning("store error on %s %s: %s", request.method, request.url.path, exc.orig)
        body = Problem(detail=line, problems=[line]).model_dump()
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(BadReport)
    def _bad_report(request: Request, exc: BadReport) -> Response:
        body = Problem(detail=str(exc), problems=[str(exc)]).model_dump()
        return JSONResponse(body, status_code=422)

    @app.exception_handler(LeaseConflict)
    def _conflict(request: Request, exc: LeaseConflict) -> Response:
        body = Problem(detail=f"{exc}; nothing was recorded", problems=[str(exc)]).model_dump()
        return JSONResponse(body, status_code=409)

    if dashboard:
        add_dashboard(app, store, dashboard_token)

    # -- health ---------------------------------------------------------------------------------

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        """Liveness, without credentials: for load balancers and agents waiting on a restart."""
        return Health()

    # -- admin ----------------------------------------------------------------------------------

    @app.post(
        "/api/experiments",
        status_code=201,
        response_model=ExperimentCreated,
        responses={**ADMIN_ERRORS, **_responses(409), 200: {"model": ExperimentCreated}},
        tags=["admin"],
    )
    def create_experiment(
        body: ExperimentCreate, response: Response, _: Admin
    ) -> ExperimentCreated:
        """Create an experiment, or resume one with the same definition (200, budget may grow).

        The rules are `autotune tune`'s: fields left out on a resume take the
        recorded values; a different spec, workload, knob set, duration,
        optimiser, seed, parallelism, lease length or machine is a 409.
        """
        existing = store.experiment(body.name)
        # A time budget given now starts its clock now; one taken from the record keeps its own.
        restart_clock = "time_budget_s" in body.model_fields_set
        if existing is not None:
            body = _with_recorded(body, existing)
        machine = _machine(body)
        spec = _spec(body, machine)
        workload = _workload(body)
        if not spec.drives(workload.system):
            raise _unprocessable(
                f"workload {workload.name!r} is for system {workload.system!r}, not {spec.system!r}"
            )
        try:
            selection = select_knobs(
                spec,
                ",".join(body.knobs) if isinstance(body.knobs, list) else body.knobs,
                allow_unsafe=body.allow_unsafe,
                restartable=body.restartable,
            )
        except TuningError as exc:
            raise _unprocessable(str(exc).removeprefix("--knobs: ")) from None
        options = SessionOptions(
            name=body.name,
            optimizer=body.optimizer,
            seed=body.seed,
            duration_s=body.duration_s,
            knobs=selection.names,
            allow_unsafe=body.allow_unsafe,
            target="remote agents",
            machine={"memory_bytes": machine.memory_bytes, "cpus": machine.cpus},
            budget=body.budget,
            parallelism=body.parallelism,
            lease_s=body.lease_s,
            repeats=body.repeats,
            time_budget_s=body.time_budget_s,
            restart_clock=restart_clock,
            warm_start=body.warm_start,
            restartable=body.restartable,
            controls=body.controls,
            allow_colocated=body.allow_colocated,
        )
        try:
            options.verify = verify_option(
                body.budget, body.verify, body.precision, body.max_rounds, body.twin
            )
        except ValueError as exc:
            raise _unprocessable(str(exc)) from None
        try:
            check_warm_start(store, body.warm_start, spec.system, workload.objective_metric)
        except TuningError as exc:
            raise _unprocessable(str(exc)) from None
        try:
            check_repeats(options.budget, options.resolved_repeats)
        except TuningError as exc:
            raise _unprocessable(str(exc).replace("--repeats", "repeats")) from None
        if existing is not None:
            _check_resumable(existing, options)
        try:
            experiment, resumed = open_experiment(store, spec, workload, options)
        except (TuningError, StoreError) as exc:  # a different definition, or a racing create
            raise HTTPException(409, str(exc)) from None
        response.status_code = 200 if resumed else 201
        return ExperimentCreated(
            experiment=ExperimentOut.of(experiment, store.trial_counts(experiment)),
            resumed=resumed,
            notes=selection.notes,
        )

    @app.get(
        "/api/experiments",
        response_model=list[ExperimentOut],
        responses=_responses(401, 403),
        tags=["admin"],
    )
    def list_experiments(_: Admin) -> list[ExperimentOut]:
        return [ExperimentOut.of(e, store.trial_counts(e)) for e in store.experiments()]

    def _experiment(name: str) -> Experiment:
        experiment = store.experiment(name)
        if experiment is None:
            raise HTTPException(404, f"no experiment {name!r}")
        return experiment

    read_errors = {**ADMIN_ERRORS, **_responses(404)}

    @app.get(
        "/api/experiments/{name}",
        response_model=ExperimentOut,
        responses=read_errors,
        tags=["admin"],
    )
    def get_experiment(name: ExperimentName, _: Admin) -> ExperimentOut:
        experiment = _experiment(name)
        return ExperimentOut.of(experiment, store.trial_counts(experiment))

    @app.get(
        "/api/experiments/{name}/trials",
        response_model=list[TrialOut],
        responses=read_errors,
        tags=["admin"],
    )
    def get_trials(name: ExperimentName, _: Admin) -> list[TrialOut]:
        """Every trial by number, in flight included: config, status, lease, result."""
        return [TrialOut.of(t) for t in store.trials(_experiment(name))]

    @app.get(
        "/api/experiments/{name}/best",
        response_model=BestOut,
        responses=read_errors,
        tags=["admin"],
    )
    def get_best(name: ExperimentName, _: Admin) -> BestOut:
        """The baseline, the best config and the improvement, as `autotune tune` prints.

        After a verification, ``best`` is its best contender and ``verification``
        holds the paired rounds' verdict. ``robust`` is the search's own best: the
        best median over two or more runs (else the best single run, with
        ``robust.confirmed`` false), with its ratio to the baseline and a 95%
        bootstrap CI.
        """
        experiment = _experiment(name)
        s = summarize(store, experiment)
        return BestOut(
            experiment=experiment.name,
            status=experiment.status,
            objective_metric=s.objective_metric,
            direction=s.direction,
            budget=experiment.budget,
            trials=s.trials,
            failed=s.failed,
            baseline=None if s.baseline is None else TrialOut.of(s.baseline),
            best=None if s.best is None else TrialOut.of(s.best),
            improvement_pct=s.improvement_pct,
            robust=None if s.robust is None else RobustOut.of(s.robust),
            verification=None if s.verification is None else s.verification.to_json(),
        )

    @app.post(
        "/api/agents",
        status_code=201,
        response_model=AgentToken,
        responses={**ADMIN_ERRORS, **_responses(409)},
        tags=["admin"],
    )
    def add_agent(body: AgentCreate, _: Admin) -> AgentToken:
        """Register an agent; its token is in this response only, the store keeps a hash."""
        try:
            token = store.add_agent(body.name)
        except StoreError as exc:
            raise HTTPException(409, str(exc)) from None
        return AgentToken(name=body.name, token=token)

    @app.get("/api/agents", response_model=list[AgentOut], responses=ADMIN_ERRORS, tags=["admin"])
    def list_agents(_: Admin) -> list[AgentOut]:
        """Registered agents: their last call and the host each last leased from."""
        return [
            AgentOut(name=a.name, created_at=a.created_at, last_seen_at=a.last_seen_at, host=a.host)
            for a in store.agents()
        ]

    # -- agents ---------------------------------------------------------------------------------

    @app.post(
        "/api/lease",
        response_model=LeaseOut,
        # A full-length first run's lease then reads as a v0.2 lease: older agents run it.
        response_model_exclude_defaults=True,
        responses={**AGENT_ERRORS, 204: {"description": "No trial to run right now."}},
        tags=["agent"],
    )
    def lease(agent: AgentName, body: LeaseRequest | None = None) -> LeaseOut | Response:
        """The next trial for this agent (from one experiment, if named), or 204."""
        got = scheduler.lease(agent, body.experiment if body else None, body.host if body else None)
        if got is None:
            return Response(status_code=204)
        return LeaseOut.of(got)

    @app.post(
        "/api/trials/{trial_id}/heartbeat",
        response_model=HeartbeatOut,
        responses=AGENT_ERRORS,
        tags=["agent"],
    )
    def heartbeat(trial_id: TrialId, body: LeaseRef, agent: AgentName) -> HeartbeatOut:
        """Extend the lease; 409 if it expired or is not this agent's."""
        return HeartbeatOut(expires_at=scheduler.heartbeat(agent, trial_id, body.lease_id))

    @app.post(
        "/api/trials/{trial_id}/report",
        response_model=TrialOut,
        responses=AGENT_ERRORS,
        tags=["agent"],
    )
    def report(trial_id: TrialId, body: ReportIn, agent: AgentName) -> TrialOut:
        """Record the trial's result, once, from its lease holder; 409 records nothing."""
        o = body.outcome
        outcome = TrialOutcome(
            status=o.status,
            metrics=dict(o.metrics),
            timings=dict(o.timings),
            status_history=[tuple(item) for item in o.status_history],
            not_applied=dict(o.not_applied),
            error=o.error,
            log_excerpt=o.log_excerpt,
            started_at=o.started_at,
            finished_at=o.finished_at,
            config=None if o.config is None else dict(o.config),
        )
        return TrialOut.of(scheduler.report(agent, trial_id, body.lease_id, outcome))

    @app.post(
        "/api/trials/{trial_id}/release",
        response_model=Released,
        responses=AGENT_ERRORS,
        tags=["agent"],
    )
    def release(trial_id: TrialId, body: LeaseRef, agent: AgentName) -> Released:
        """Give an unfinished trial back so another agent can run it at once."""
        scheduler.release(agent, trial_id, body.lease_id)
        return Released(trial_id=trial_id)

    app.state.scheduler = scheduler
    app.state.store = store
    return app


# -- helpers ------------------------------------------------------------------------------------


def _bearer(creds: HTTPAuthorizationCredentials | None) -> str:
    """The bearer token, or 401: missing, another scheme, or not a token at all."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if creds is None:
        raise HTTPException(401, "needs the header Authorization: Bearer TOKEN", headers=challenge)
    if not TOKEN_RE.match(creds.credentials):
        raise HTTPException(401, "malformed bearer token", headers=challenge)
    return creds.credentials


class _Unprocessable(HTTPException):
    def __init__(self, detail: str, problems: list[str]) -> None:
        super().__init__(422, detail)
        self.problems = problems


def _unprocessable(message: str, problems: list[str] | None = None) -> HTTPException:
    return _Unprocessable(message, problems or [message])


def _error_line(error: Any) -> str:
    """One readable line per pydantic error: where, then what."""
    loc = tuple(error.get("loc", ()))
    ctx = error.get("ctx") or {}
    if error.get("type") == "json_invalid":
        where = f" at character {loc[1]}" if len(loc) > 1 else ""
        return f"body: not valid JSON{where}: {ctx.get('error', 'cannot parse')}"
    message = str(error.get("msg", "invalid"))
    return f"{'.'.join(str(p) for p in loc)}: {message}" if loc else message


def _loader_failed(what: str, label: str, exc: Exception, hide: str = "") -> HTTPException:
    """A loader raised something other than SpecError: refuse the input, log the bug."""
    log.error("the %s loader failed on %s", what, label, exc_info=exc)
    message = str(exc).replace(hide, "") if hide else str(exc)
    return _unprocessable(
        f"the {what} could not be checked: {type(exc).__name__}: {message}",
        [f"{label}: the {what} loader failed ({type(exc).__name__}); fix the input"],
    )


def _with_recorded(body: ExperimentCreate, existing: Experiment) -> ExperimentCreate:
    """On a resume, what the request leaves out is what was recorded (as `autotune tune`)."""
    given = body.model_fields_set
    settings = existing.settings
    recorded: dict[str, Any] = {
        "knobs": settings.get("knobs"),
        "optimizer": existing.optimizer,
        "seed": existing.seed,
        "duration_s": settings.get("duration_s"),
        "parallelism": settings.get("parallelism", 1),
        "lease_s": settings.get("lease_s"),
        "allow_unsafe": settings.get("allow_unsafe", False),
        "machine": settings.get("machine"),
        "time_budget_s": settings.get("time_budget_s"),
        "warm_start": settings.get("warm_start"),
        "controls": settings.get("controls"),
        "allow_colocated": settings.get("allow_colocated"),
    }
    verify = settings.get("verify")
    if isinstance(verify, dict):  # how it verifies is kept; whether, follows the budget
        recorded.update(precision=verify.get("precision"), max_rounds=verify.get("max_rounds"))
    if "repeats" in settings and "repeats" not in given:
        # Kept, but never more than a budget given now leaves room for.
        budget = body.budget
        recorded["repeats"] = min(int(settings["repeats"] or 0), max(0, budget - 2))
    updates = {k: v for k, v in recorded.items() if k not in given and v is not None}
    if not updates:
        return body
    try:
        return ExperimentCreate.model_validate({**body.model_dump(exclude_unset=True), **updates})
    except ValidationError as exc:  # recorded by a local session, outside the API's bounds
        lines = [_error_line(e).removeprefix("body.") for e in exc.errors()]
        raise HTTPException(
            409, f"cannot resume experiment {existing.name!r} here: recorded " + "; ".join(lines)
        ) from None


def _check_resumable(existing: Experiment, options: SessionOptions) -> None:
    """What open_experiment does not compare but a service run depends on."""
    recorded = existing.settings
    wanted = options.settings()
    changed = [
        f"{key} is {wanted.get(key)!r}, recorded {recorded.get(key)!r}"
        for key in ("parallelism", "lease_s", "machine")
        if recorded.get(key) != wanted.get(key)
    ]
    if changed:
        raise HTTPException(
            409, f"cannot resume experiment {existing.name!r}: " + "; ".join(changed)
        )


def _machine(body: ExperimentCreate) -> Machine:
    if body.machine is None:
        return Machine.local()
    return Machine(memory_bytes=body.machine.memory_bytes, cpus=body.machine.cpus)


def _yaml_problems(text: str, label: str) -> list[str]:
    """Refuse YAML the loaders cannot take safely: aliases (exponential) and deep nesting."""
    opening = (
        yaml.BlockMappingStartToken,
        yaml.BlockSequenceStartToken,
        yaml.FlowMappingStartToken,
        yaml.FlowSequenceStartToken,
    )
    closing = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)
    depth = 0
    try:
        for token in yaml.scan(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if isinstance(token, yaml.AliasToken):
                return [f"{label}: YAML aliases (*name) are not accepted"]
            if isinstance(token, opening):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    return [f"{label}: nested deeper than {MAX_YAML_DEPTH} levels"]
            elif isinstance(token, closing):
                depth -= 1
    except yaml.YAMLError as exc:
        return [f"{label}: not valid YAML: {exc}"]
    return []


def _spec(body: ExperimentCreate, machine: Machine) -> Spec:
    problems = _yaml_problems(body.spec, body.spec_path)
    if problems:
        raise _unprocessable("the knob spec has problems", problems)
    try:
        spec = parse_spec(body.spec, body.spec_path, machine)
    except SpecError as exc:
        raise _unprocessable("the knob spec has problems", exc.problems) from None
    except Exception as exc:  # a loader bug, but the input caused it: still not a 500
        raise _loader_failed("knob spec", body.spec_path, exc) from None
    kind = applier_kind(spec)
    if kind not in known_kinds():
        raise _unprocessable(f"no applier {kind!r} (known: {', '.join(known_kinds())})")
    return spec


def _workload(body: ExperimentCreate) -> WorkloadDef:
    """Load the workload as an agent will: its files written out beside it, paths checked."""
    label = body.workload_path or f"{body.workload_name}.yaml"
    problems = _yaml_problems(body.workload, label)
    if problems:
        raise _unprocessable("the workload has problems", problems)
    info = ExperimentInfo(  # only the workload fields matter to materialize_workload
        name=body.name,
        system="",
        spec_content="",
        spec_path="",
        spec_hash="",
        workload_name=body.workload_name,
        workload_content=body.workload,
        workload_path=label,
        workload_hash="",
        objective_metric="",
        direction="",
        duration_s=None,
        knobs=[],
        workload_files=dict(body.files),
    )
    with tempfile.TemporaryDirectory(prefix="autotune-service-") as tmp:
        root = Path(tmp).resolve()
        try:
            workload = materialize_workload(info, root)
        except SpecError as exc:
            # Name the workload by its label, not the server's temporary folder.
            lines = [
                line.replace(str(root / f"{body.workload_name}.yaml"), label).replace(
                    f"{root}/", ""
                )
                for line in exc.problems
            ]
            raise _unprocessable("the workload has problems", lines) from None
        except Exception as exc:  # a loader bug, but the input caused it: still not a 500
            raise _loader_failed("workload", label, exc, hide=f"{root}/") from None
    unused = sorted(set(body.files) - set(workload.files))
    if unused:
        raise _unprocessable(f"files the workload does not name: {', '.join(unused)}")
    return dataclasses.replace(workload, path=Path(label))


class _BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


class _BodyLimit:
    """Refuse request bodies over ``limit`` bytes before they are read into memory."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(send, 413 if declared.isdigit() else 400)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _BodyTooLarge(self.limit)  # FastAPI re-raises HTTPException from the body
            return message

        await self.app(scope, limited, send)

    async def _refuse(self, send: Callable[[Message], Awaitable[None]], status: int) -> None:
        detail = f"request body over {self.limit} bytes" if status == 413 else "bad Content-Length"
        body = Problem(detail=detail, problems=[detail]).model_dump_json().encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
