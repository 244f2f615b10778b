"""Reading an export document back: every key and value checked, hashes included, and
the older recorded format converted (see ``_exchange``)."""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from autotune.domain import PHASES, Trial
from autotune.store._document import (
    ANALYSIS_KEYS,
    DIRECTIONS,
    EXPERIMENT_KEYS,
    EXPERIMENT_STATUSES,
    FORMAT,
    SPEC_KEYS,
    TOP_KEYS,
    TRIAL_KEYS,
    TRIAL_STATUSES,
    V1_TRIAL_DEFAULTS,
    VERSION,
    WORKLOAD_KEYS,
    spec_hash,
    workload_hash,
)
from autotune.store._types import Analysis, Experiment, StoreError


class _Reader:
    """Type checks that fail with one message naming the source and the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> NoReturn:
        raise StoreError(f"{self.source}: {where}: {problem}")

    def obj(self, value: Any, where: str, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where, f"expected an object, got {_kind(value)}")
        if keys is not None:
            for key in keys:
                if key not in value:
                    self.fail(_join(where, key), "missing")
            for key in value:
                if key not in keys:
                    self.fail(
                        _join(where, str(key)),
                        f"unknown field (format version {VERSION} has {', '.join(keys)})",
                    )
        return value

    def text(self, value: Any, where: str, max_len: int | None = None) -> str:
        if not isinstance(value, str):
            self.fail(where, f"expected a string, got {_kind(value)}")
        if max_len is not None and len(value) > max_len:
            self.fail(where, f"longer than {max_len} characters")
        return value

    def name(self, value: Any, where: str, max_len: int = 200) -> str:
        text = self.text(value, where, max_len)
        if not text.strip():
            self.fail(where, "is empty")
        return text

    def opt_text(self, value: Any, where: str, max_len: int | None = None) -> str | None:
        return None if value is None else self.text(value, where, max_len)

    def choice(self, value: Any, where: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            self.fail(where, f"{value!r} is not one of {', '.join(choices)}")
        return str(value)

    def integer(self, value: Any, where: str, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, f"expected an integer, got {_kind(value)}")
        if minimum is not None and value < minimum:
            self.fail(where, f"{value} is below {minimum}")
        return value

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(where, f"expected a number, got {_kind(value)}")
        if not math.isfinite(value):
            self.fail(where, f"{value!r} is not a finite number")
        return value

    def opt_number(self, value: Any, where: str) -> float | None:
        return None if value is None else self.number(value, where)

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            self.fail(where, f"expected true or false, got {_kind(value)}")
        return value

    def when(self, value: Any, where: str) -> datetime:
        text = self.text(value, where)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            self.fail(where, f"{text!r} is not an ISO 8601 date and time")
        if parsed.tzinfo is None:
            self.fail(where, f"{text!r} has no time zone")
        return parsed.astimezone(UTC)

    def opt_when(self, value: Any, where: str) -> datetime | None:
        return None if value is None else self.when(value, where)

    def items(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            self.fail(where, f"expected a list, got {_kind(value)}")
        return value

    def mapping(self, value: Any, where: str, check: Callable[[Any, str], Any]) -> dict[str, Any]:
        out = self.obj(value, where)
        for key, item in out.items():
            check(item, _join(where, key))
        return out


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", str: "a string", int: "an integer", float: "a number"}
    names |= {list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _join(where: str, key: str) -> str:
    return key if not where else f"{where}.{key}"


def _check_header(r: _Reader, doc: Any) -> dict[str, Any]:
    """Format and version first: a file from elsewhere or from later says so, not 'missing x'."""
    if not isinstance(doc, dict):
        r.fail(
            "format", f"not an autotune experiment export (it holds {_kind(doc)}, not an object)"
        )
    if "format" not in doc:
        r.fail("format", f"missing: not an autotune experiment export (expected {FORMAT!r})")
    if doc["format"] != FORMAT:
        r.fail(
            "format",
            f"{doc['format']!r} is not {FORMAT!r}: not an autotune experiment export",
        )
    if "version" not in doc:
        r.fail("version", "missing")
    version = doc["version"]
    if isinstance(version, bool) or not isinstance(version, int):
        r.fail("version", f"expected an integer, got {_kind(version)}")
    if version > VERSION:
        r.fail(
            "version",
            f"{version}: made by a newer autotune (this one reads version {VERSION}); "
            "upgrade autotune to read it",
        )
    if version < 1:
        r.fail("version", f"{version} is not a known version (this autotune reads {VERSION})")
    return doc


def _parse(doc: Any, source: str) -> tuple[Experiment, list[Trial], list[Analysis]]:
    """Validate a document (version 1 or 2) whole and turn it into store objects."""
    r = _Reader(source)
    _check_header(r, doc)
    r.obj(doc, "", TOP_KEYS)
    r.text(doc["autotune_version"], "autotune_version")
    r.when(doc["exported_at"], "exported_at")

    e = r.obj(doc["experiment"], "experiment", EXPERIMENT_KEYS)
    spec = r.obj(e["spec"], "experiment.spec", SPEC_KEYS)
    workload = r.obj(e["workload"], "experiment.workload", WORKLOAD_KEYS)
    files = r.mapping(workload["files"], "experiment.workload.files", r.text)
    state = e["optimizer_state"]
    experiment = Experiment(
        id=0,
        name=r.name(e["name"], "experiment.name"),
        system=r.name(e["system"], "experiment.system"),
        spec_hash=r.text(spec["hash"], "experiment.spec.hash", 64),
        spec_content=r.text(spec["content"], "experiment.spec.content"),
        spec_path=r.text(spec["path"], "experiment.spec.path"),
        workload_name=r.name(workload["name"], "experiment.workload.name"),
        workload_hash=r.text(workload["hash"], "experiment.workload.hash", 64),
        workload_content=r.text(workload["content"], "experiment.workload.content"),
        workload_path=r.text(workload["path"], "experiment.workload.path"),
        objective_metric=r.name(e["objective_metric"], "experiment.objective_metric"),
        direction=r.choice(e["direction"], "experiment.direction", DIRECTIONS),
        optimizer=r.name(e["optimizer"], "experiment.optimizer", 100),
        seed=r.integer(e["seed"], "experiment.seed"),
        settings=r.obj(e["settings"], "experiment.settings"),
        created_at=r.when(e["created_at"], "experiment.created_at"),
        status=r.choice(e["status"], "experiment.status", EXPERIMENT_STATUSES),
        workload_files=files,
        optimizer_state=None if state is None else r.obj(state, "experiment.optimizer_state"),
    )
    actual = spec_hash(experiment.spec_content)
    if actual != experiment.spec_hash:
        r.fail(
            "experiment.spec.hash",
            f"{experiment.spec_hash!r} is not the SHA-256 of experiment.spec.content "
            f"({actual}): the file was changed after export",
        )
    actual = workload_hash(experiment.workload_content, files)
    if actual != experiment.workload_hash:
        r.fail(
            "experiment.workload.hash",
            f"{experiment.workload_hash!r} is not the SHA-256 of experiment.workload.content "
            f"and files ({actual}): the file was changed after export",
        )

    items = r.items(doc["trials"], "trials")
    if doc["version"] == 1:  # written before trials had phases: every one was the search's
        items = [{**V1_TRIAL_DEFAULTS, **t} if isinstance(t, dict) else t for t in items]
    trials = [_parse_trial(r, t, f"trials[{i}]") for i, t in enumerate(items)]
    analyses = []
    for i, item in enumerate(r.items(doc["analyses"], "analyses")):
        where = f"analyses[{i}]"
        a = r.obj(item, where, ANALYSIS_KEYS)
        analyses.append(
            Analysis(
                kind=r.name(a["kind"], f"{where}.kind", 32),
                result=r.obj(a["result"], f"{where}.result"),
                created_at=r.when(a["created_at"], f"{where}.created_at"),
            )
        )
    return experiment, trials, analyses


def _parse_trial(r: _Reader, item: Any, where: str) -> Trial:
    t = r.obj(item, where, TRIAL_KEYS)
    history = []
    for j, entry in enumerate(r.items(t["status_history"], f"{where}.status_history")):
        at = f"{where}.status_history[{j}]"
        parts = r.items(entry, at)
        if not parts:
            r.fail(at, "is empty")
        history.append(tuple(r.text(p, f"{at}[{k}]") for k, p in enumerate(parts)))
    fidelity = r.number(t["fidelity"], f"{where}.fidelity")
    if not 0 < fidelity <= 1:
        r.fail(f"{where}.fidelity", f"{fidelity!r} is not in (0, 1]")
    metrics = r.mapping(t["metrics"], f"{where}.metrics", r.number)
    for key in metrics:
        if len(key) > 200:
            r.fail(f"{where}.metrics", f"metric name {key[:40]!r}… is longer than 200 characters")
    return Trial(
        number=r.integer(t["number"], f"{where}.number"),
        config=r.obj(t["config"], f"{where}.config"),
        status=r.choice(t["status"], f"{where}.status", TRIAL_STATUSES),
        objective=r.opt_number(t["objective"], f"{where}.objective"),
        started_at=r.opt_when(t["started_at"], f"{where}.started_at"),
        finished_at=r.opt_when(t["finished_at"], f"{where}.finished_at"),
        is_baseline=r.boolean(t["is_baseline"], f"{where}.is_baseline"),
        metrics=metrics,
        timings=r.obj(t["timings"], f"{where}.timings"),
        status_history=history,
        not_applied=r.obj(t["not_applied"], f"{where}.not_applied"),
        error=r.opt_text(t["error"], f"{where}.error"),
        log_excerpt=r.opt_text(t["log_excerpt"], f"{where}.log_excerpt"),
        agent=r.opt_text(t["agent"], f"{where}.agent", 200),
        proposed_at=r.opt_when(t["proposed_at"], f"{where}.proposed_at"),
        lease_expires_at=r.opt_when(t["lease_expires_at"], f"{where}.lease_expires_at"),
        attempts=r.integer(t["attempts"], f"{where}.attempts", minimum=0),
        fidelity=fidelity,
        repeat=r.boolean(t["repeat"], f"{where}.repeat"),
        phase=r.choice(t["phase"], f"{where}.phase", PHASES),
        round=None if t["round"] is None else r.integer(t["round"], f"{where}.round", minimum=1),
        arm=r.opt_text(t["arm"], f"{where}.arm", 64),
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def read_export(path: Path | str) -> dict[str, Any]:
    """Read and validate an export file (plain or gzip); returns its document.

    Every problem is one ``StoreError`` naming the file and the field: not JSON,
    another format, a newer version, a missing or mistyped field, a spec or
    workload hash that does not match its content. A file in the older recorded
    format (``{"header": ..., "trials": ...}``) is converted (see ``_from_legacy``).
    """
    path = Path(path)
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StoreError(f"{source}: no such file") from None
    except OSError as exc:
        raise StoreError(f"{source}: cannot read it: {exc.strerror or exc}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise StoreError(f"{source}: not a valid gzip file ({exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StoreError(f"{source}: not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise StoreError(
            f"{source}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    except ValueError as exc:
        raise StoreError(f"{source}: not valid JSON ({exc})") from None
    if isinstance(doc, dict) and "format" not in doc and "header" in doc and "trials" in doc:
        doc = _from_legacy(doc, source, _mtime(path))
    _parse(doc, source)
    return _current(doc)


def _current(doc: dict[str, Any]) -> dict[str, Any]:
    """A valid document of any version as this version writes it: a version 1 trial is
    a search trial (V1_TRIAL_DEFAULTS)."""
    if doc["version"] == VERSION:
        return doc
    trials = [{**V1_TRIAL_DEFAULTS, **t} for t in doc["trials"]]
    return {**doc, "version": VERSION, "trials": trials}


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


LEGACY_TRIAL_KEYS = {"baseline": "is_baseline"}


def _from_legacy(data: dict[str, Any], source: str, mtime: datetime) -> dict[str, Any]:
    """The recorded format before version 1, as a current document.

    That format is ``{"header": {...}, "trials": [...]}``: the trials as
    ``autotune trials NAME --format json`` printed them, and a header with the
    experiment's name, system, workload name, objective, optimizer, seed,
    budget, knobs, machine, duration and spec. What it lacks is filled in:

    - ``status`` is ``"done"``, ``optimizer_state`` null and ``analyses`` empty;
    - ``created_at`` is the first trial's ``proposed_at`` (else its
      ``started_at``, else the file's modification time), ``exported_at`` the
      file's modification time and ``autotune_version`` ``"unknown"``;
    - ``settings`` holds the header's knobs, machine, duration_s and budget;
    - the workload's text was not recorded: its content is a one-line YAML
      comment saying so, its path empty, its files none, its hash that of this
      content (so resuming the experiment with a real workload is refused);
    - each trial's ``baseline`` becomes ``is_baseline``, ``lease_expires_at`` null.
    """
    r = _Reader(source)
    h = r.obj(data["header"], "header")
    for key in ("experiment", "system", "workload", "objective_metric", "direction", "optimizer"):
        if key not in h:
            r.fail(f"header.{key}", "missing (recorded format before version 1)")
        r.text(h[key], f"header.{key}")
    for key in ("seed", "spec_content"):
        if key not in h:
            r.fail(f"header.{key}", "missing (recorded format before version 1)")
    content = r.text(h["spec_content"], "header.spec_content")
    trials = []
    for i, item in enumerate(r.items(data["trials"], "trials")):
        t = dict(r.obj(item, f"trials[{i}]"))
        for old, new in LEGACY_TRIAL_KEYS.items():
            if old in t:
                t[new] = t.pop(old)
        t.setdefault("lease_expires_at", None)
        for key, value in V1_TRIAL_DEFAULTS.items():
            t.setdefault(key, value)
        trials.append(t)
    created = None
    if trials:  # written in trial-number order
        created = trials[0].get("proposed_at") or trials[0].get("started_at")
    placeholder = (
        f"# The recorded format before version 1 kept only this workload's name "
        f"({h['workload']}), not its text.\n"
    )
    settings = {k: h[k] for k in ("knobs", "machine", "duration_s", "budget") if k in h}
    return {
        "format": FORMAT,
        "version": VERSION,
        "autotune_version": "unknown",
        "exported_at": mtime.isoformat(),
        "experiment": {
            "name": h["experiment"],
            "system": h["system"],
            "spec": {
                "path": h.get("spec_path", ""),
                "hash": h.get("spec_hash") or spec_hash(content),
                "content": content,
            },
            "workload": {
                "name": h["workload"],
                "path": "",
                "hash": workload_hash(placeholder, {}),
                "content": placeholder,
                "files": {},
            },
            "objective_metric": h["objective_metric"],
            "direction": h["direction"],
            "optimizer": h["optimizer"],
            "seed": h["seed"],
            "settings": settings,
            "status": "done",
            "created_at": created or mtime.isoformat(),
            "optimizer_state": None,
        },
        "trials": trials,
        "analyses": [],
    }
