"""Clients of the tuner service: agents (HttpClient) and ``autotune tune --server`` (AdminClient).

Both retry connection errors and 5xx answers with exponential backoff, so a
server restart is a pause, not an error: an agent keeps its trial running and
reports when the server is back.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from autotune.agent import Lease, LeaseLost, TrialOutcome
from autotune.domain import Trial
from autotune.service._fields import TOKEN_RE
from autotune.service._models import (
    AgentOut,
    AgentToken,
    BestOut,
    ExperimentCreated,
    ExperimentOut,
    TrialOut,
)

log = logging.getLogger("autotune.service")

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0
RELEASE_RETRY_S = 10.0  # giving a trial back is a courtesy: its lease expires anyway
MAX_ERROR = 10_000  # the service's bounds on reported text (service/_models.py)
MAX_LOG = 64 * 1024


class ServiceError(RuntimeError):
    """The service refused a call, or stayed unreachable; the message says which."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Http:
    """Authenticated JSON calls with retries on connection errors and 5xx."""

    def __init__(
        self,
        base_url: str,
        token: str,
        timeout_s: float = 30,
        retry_s: float = 300,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not TOKEN_RE.match(token):
            raise ServiceError("the token must be 16-512 printable ASCII characters, no spaces")
        if not re.match(r"^https?://[^/\s]+", base_url):
            raise ServiceError(f"server URL {base_url!r}: give it as http://HOST:PORT")
        self.base_url = base_url.rstrip("/")
        self.retry_s = retry_s
        self.sleep = sleep
        self.clock = clock
        self.http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        retry_s: float | None = None,
    ) -> httpx.Response:
        """The response to the first attempt that reached a working server; ServiceError if none.

        4xx answers are returned as they are: the caller decides what each means.
        """
        window = self.retry_s if retry_s is None else retry_s
        deadline = self.clock() + window
        delay = FIRST_DELAY_S
        while True:
            try:
                response = self.http.request(method, path, json=body)
            except httpx.TransportError as exc:
                problem = f"cannot reach {self.base_url}: {exc or type(exc).__name__}"
                status = None
            else:
                if response.status_code < 500:
                    return response
                problem = f"{method} {path}: server error {response.status_code}"
                status = response.status_code
            if self.clock() + delay > deadline:
                raise ServiceError(f"{problem} (gave up after {window:.0f}s)", status)
            log.warning("%s; retrying in %.1fs", problem, delay)
            self.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)

    @staticmethod
    def refused(response: httpx.Response) -> ServiceError:
        """A 4xx as an error naming what the server said."""
        try:
            data = response.json()
            detail = str(data.get("detail", response.text))
            problems = [str(p) for p in data.get("problems", [])]
        except (ValueError, AttributeError, TypeError):
            detail, problems = response.text, []
        lines = [p for p in problems if p != detail and p not in detail]
        message = "\n".join([f"{response.status_code}: {detail}", *lines])
        return ServiceError(message, response.status_code)


class HttpClient(_Http):
    """The TunerClient of ``autotune agent``: the same agent loop, over HTTP."""

    def __init__(
        self,
        base_url: str,
        token: str,
        timeout_s: float = 30,
        retry_s: float = 300,
        *,
        experiment: str | None = None,
        host: str | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            base_url, token, timeout_s, retry_s, transport=transport, sleep=sleep, clock=clock
        )
        self.experiment = experiment
        self.host = host  # said with every lease, so the server keeps trials apart

    def lease(self) -> Lease | None:
        body: dict[str, str] = {}
        if self.experiment is not None:
            body["experiment"] = self.experiment
        if self.host is not None:
            body["host"] = self.host
        response = self.call("POST", "/api/lease", body)
        if response.status_code == 204:
            return None
        if response.status_code != 200:
            raise self.refused(response)
        return Lease.from_json(response.json())

    def _lease_call(
        self, lease: Lease, action: str, body: dict[str, Any], retry_s: float | None = None
    ) -> httpx.Response:
        response = self.call("POST", f"/api/trials/{lease.trial_id}/{action}", body, retry_s)
        if response.status_code == 409:
            raise LeaseLost(str(self.refused(response)))
        if response.status_code != 200:
            raise self.refused(response)
        return response

    def heartbeat(self, lease: Lease) -> None:
        # Beyond a third of the lease the next beat is due anyway.
        window = min(self.retry_s, lease.lease_s / 3)
        self._lease_call(lease, "heartbeat", {"lease_id": lease.lease_id}, window)

    def report(self, lease: Lease, outcome: TrialOutcome) -> Trial:
        body = {"lease_id": lease.lease_id, "outcome": outcome_json(outcome)}
        response = self._lease_call(lease, "report", body)
        return TrialOut.model_validate(response.json()).to_trial()

    def release(self, lease: Lease) -> None:
        """Give the trial back; never raises: if the server is away, the lease expires."""
        body = {"lease_id": lease.lease_id}
        try:
            self._lease_call(lease, "release", body, min(self.retry_s, RELEASE_RETRY_S))
        except LeaseLost:
            pass  # already gone: nothing to give back
        except ServiceError as exc:
            log.warning("could not release trial %s (its lease will expire): %s", lease.number, exc)


class AdminClient(_Http):
    """What ``autotune tune --server`` needs: create an experiment and follow it."""

    def _json(self, response: httpx.Response, *ok: int) -> Any:
        if response.status_code not in ok:
            raise self.refused(response)
        return response.json()

    def create_experiment(self, request: dict[str, Any]) -> ExperimentCreated:
        """Create, or resume when the definition matches (as `autotune tune`); else 409."""
        response = self.call("POST", "/api/experiments", request)
        return ExperimentCreated.model_validate(self._json(response, 200, 201))

    def experiment(self, name: str) -> ExperimentOut | None:
        response = self.call("GET", f"/api/experiments/{name}")
        if response.status_code == 404:
            return None
        return ExperimentOut.model_validate(self._json(response, 200))

    def experiments(self) -> list[ExperimentOut]:
        response = self.call("GET", "/api/experiments")
        return [ExperimentOut.model_validate(e) for e in self._json(response, 200)]

    def trials(self, name: str) -> list[TrialOut]:
        response = self.call("GET", f"/api/experiments/{name}/trials")
        return [TrialOut.model_validate(t) for t in self._json(response, 200)]

    def best(self, name: str) -> BestOut:
        response = self.call("GET", f"/api/experiments/{name}/best")
        return BestOut.model_validate(self._json(response, 200))

    def agents(self) -> list[AgentOut]:
        response = self.call("GET", "/api/agents")
        return [AgentOut.model_validate(a) for a in self._json(response, 200)]

    def add_agent(self, name: str) -> AgentToken:
        response = self.call("POST", "/api/agents", {"name": name})
        return AgentToken.model_validate(self._json(response, 201))


def outcome_json(outcome: TrialOutcome) -> dict[str, Any]:
    """A TrialOutcome as the service takes it; trimmed to its bounds so a result is never lost.

    A non-finite metric cannot be stored: it is left out and named in ``error``.
    """
    metrics = {k: float(v) for k, v in outcome.metrics.items() if _finite(v)}
    dropped = sorted(set(outcome.metrics) - set(metrics))
    error = outcome.error
    if dropped:
        note = f"non-finite metrics left out: {', '.join(dropped)}"
        error = f"{error}; {note}" if error else note
    history = [[str(x)[:200] for x in item[:4]] for item in outcome.status_history if item]
    return {
        "status": outcome.status,
        "metrics": metrics,
        "timings": {k: float(v) for k, v in outcome.timings.items() if _finite(v) and v >= 0},
        "status_history": history[-200:],
        "not_applied": {k: _text(v)[:MAX_ERROR] for k, v in outcome.not_applied.items()},
        "error": None if error is None else _text(error)[:MAX_ERROR],
        "log_excerpt": None
        if outcome.log_excerpt is None
        else _text(outcome.log_excerpt)[-MAX_LOG:],
        "started_at": _iso(outcome.started_at),
        "finished_at": _iso(outcome.finished_at),
        **({} if outcome.config is None else {"config": dict(outcome.config)}),
    }


def _text(value: object) -> str:
    """Valid UTF-8 whatever a log held (a lone surrogate from a surrogateescape read)."""
    return str(value).encode("utf-8", "replace").decode("utf-8")


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _iso(value: object) -> str | None:
    if not isinstance(value, datetime):
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
