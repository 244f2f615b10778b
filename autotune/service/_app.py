"""The tuner service: the Scheduler and the store behind an authenticated JSON API.

Admins create experiments and agent tokens; agents lease trials, heartbeat and
report. Every rule that matters (who may report, what a config may be, when
an experiment resumes) lives in the Scheduler, the store and open_experiment,
the same code ``autotune tune`` runs in-process; this module only
authenticates, validates and translates errors into status codes.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at
# runtime, and they name dependencies local to create_app.
import logging
import secrets
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response, Security
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException

from autotune import __version__
from autotune.agent import TrialOutcome
from autotune.service._dashboard import add_dashboard
from autotune.service._fields import TOKEN_RE
from autotune.service._models import (
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
from autotune.service._validation import (
    MAX_BODY_BYTES,
    _bearer,
    _BodyLimit,
    _check_resumable,
    _error_line,
    _machine,
    _spec,
    _unprocessable,
    _with_recorded,
    _workload,
)
from autotune.store import (
    NAME_PATTERN,
    BadReport,
    Experiment,
    LeaseConflict,
    Store,
    StoreError,
    token_hash,
)
from autotune.tuner import (
    DEFAULT_LEASE_S,
    Scheduler,
    SessionOptions,
    TuningError,
    check_repeats,
    check_warm_start,
    open_experiment,
    resolve_start_with,
    select_knobs,
    summarize,
    verify_option,
)

log = logging.getLogger("autotune.service")
RETRY_AFTER_S = 5  # what a 503 for a store outage tells clients to wait


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
            start_with=body.start_with or "none",  # resolved below, with the knobs
            restartable=body.restartable,
            controls=body.controls,
            safety_margin=body.safety_margin,
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
            options.start_with, why = resolve_start_with(
                body.start_with,
                spec,
                selection.names,
                options.machine,
                workload.source,
                body.restartable,
            )
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
            notes=[*selection.notes, *([why] if why else [])],
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
