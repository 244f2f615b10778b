"""What the API checks before anything reaches the tuner: bearer tokens, request bodies
(the spec and workload YAML, their size and depth), resume defaults, and the 422's
one-line problems."""

# Annotations are evaluated: FastAPI and pydantic read them at runtime.
import dataclasses
import logging
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from autotune.agent import ExperimentInfo, materialize_workload
from autotune.service._fields import TOKEN_RE
from autotune.service._models import ExperimentCreate, Problem
from autotune.spec import Machine, Spec, SpecError, parse_spec
from autotune.store import (
    Experiment,
)
from autotune.systems import applier_kind, known_kinds
from autotune.tuner import SessionOptions, recorded_defaults
from autotune.workloads import WorkloadDef

log = logging.getLogger("autotune.service")

MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_YAML_DEPTH = 40  # PyYAML composes recursively: bound nesting before it runs


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
    recorded = recorded_defaults(existing, body.budget)
    updates = {k: v for k, v in recorded.items() if k not in given}
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
