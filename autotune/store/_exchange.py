"""One experiment as one versioned file: ``autotune export`` and ``autotune import``.

The file is JSON (gzip-compressed when its name ends in ``.gz``), written with
sorted keys and a one-space indent so that two exports diff line by line::

    {"format": "autotune-experiment", "version": 2,
     "autotune_version": "0.1.0", "exported_at": "2026-11-27T10:00:00+00:00",
     "experiment": {"name", "system",
                    "spec": {"path", "hash", "content"},
                    "workload": {"name", "path", "hash", "content", "files"},
                    "objective_metric", "direction", "optimizer", "seed", "settings",
                    "status", "created_at", "optimizer_state"},
     "trials": [{every field of Trial but its store id: "number", "config", "status",
                 "objective", "metrics", "timings", "status_history", "not_applied",
                 "error", "log_excerpt", "agent", "attempts", "proposed_at",
                 "started_at", "finished_at", "lease_expires_at", "fidelity",
                 "repeat", "phase", "round", "arm", "is_baseline"}, ...],
     "analyses": [{"kind", "created_at", "result"}, ...]}

Every key is always written (``null`` where a value is absent). Times are ISO
8601 in UTC with their offset; floats are written by ``repr``, so they read back
bit for bit. The round trip is lossless: export, import into another store,
export again, and the two files differ only in ``exported_at`` (and the name,
if the import renamed it). Two things are deliberately not carried over:

- A trial that was ``leased`` when exported is imported as ``pending`` with its
  lease expiry cleared (its agent, attempts and history stay), because the
  lease itself (its secret id) is never exported and no agent in the new store
  holds it; the next agent simply runs it again. Nothing else changes.
- Spec and workload texts are shared by content hash across a store's
  experiments. If the target store already holds the same text recorded from
  another path, the imported experiment uses that row, so a later export names
  that path.

``read_export`` also reads the older recorded format written by
``autotune bench export-recorded`` before version 1 (``{"header": ..., "trials": ...}``,
see ``_from_legacy``) and returns it converted to a current document. Version 1
is version 2 without a trial's ``phase``, ``round`` and ``arm``; it is read with
every trial a search trial.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import json
import math
import os
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

from autotune.domain import PHASES, Trial, now
from autotune.store._store import Store
from autotune.store._types import Analysis, Experiment, StoreError

FORMAT = "autotune-experiment"
VERSION = 2  # 2: a trial's phase, round and arm

TOP_KEYS = (
    "format",
    "version",
    "autotune_version",
    "exported_at",
    "experiment",
    "trials",
    "analyses",
)
EXPERIMENT_KEYS = (
    "name",
    "system",
    "spec",
    "workload",
    "objective_metric",
    "direction",
    "optimizer",
    "seed",
    "settings",
    "status",
    "created_at",
    "optimizer_state",
)
SPEC_KEYS = ("path", "hash", "content")
WORKLOAD_KEYS = ("name", "path", "hash", "content", "files")
# Every field of Trial but ``id``, the store's own key (tests check this list stays whole).
TRIAL_KEYS = (
    "number",
    "config",
    "status",
    "objective",
    "started_at",
    "finished_at",
    "is_baseline",
    "metrics",
    "timings",
    "status_history",
    "not_applied",
    "error",
    "log_excerpt",
    "agent",
    "proposed_at",
    "lease_expires_at",
    "attempts",
    "fidelity",
    "repeat",
    "phase",
    "round",
    "arm",
)
# Trial fields version 1 lacked, with the value every version 1 trial has.
V1_TRIAL_DEFAULTS = {"phase": "search", "round": None, "arm": None}
ANALYSIS_KEYS = ("kind", "created_at", "result")

TRIAL_STATUSES = ("pending", "leased", "ok", "failed")
EXPERIMENT_STATUSES = ("running", "done")
DIRECTIONS = ("maximize", "minimize")


# -- hashes: the same digests the spec and workload loaders record ------------------------
def spec_hash(content: str) -> str:
    """What ``Spec.content_hash`` records: the SHA-256 of the spec text."""
    return hashlib.sha256(content.encode()).hexdigest()


def workload_hash(content: str, files: dict[str, str]) -> str:
    """What ``WorkloadDef.content_hash`` records: the workload text and the files it names."""
    digest = hashlib.sha256(content.encode())
    for name in sorted(files):
        digest.update(b"\0" + name.encode() + b"\0" + files[name].encode())
    return digest.hexdigest()


# -- export --------------------------------------------------------------------------------
def _autotune_version() -> str:
    try:
        return metadata.version("autotune")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _trial_doc(t: Trial) -> dict[str, Any]:
    return {
        "number": t.number,
        "config": t.config,
        "status": t.status,
        "objective": t.objective,
        "started_at": _iso(t.started_at),
        "finished_at": _iso(t.finished_at),
        "is_baseline": t.is_baseline,
        "metrics": t.metrics,
        "timings": t.timings,
        "status_history": [list(item) for item in t.status_history],
        "not_applied": t.not_applied,
        "error": t.error,
        "log_excerpt": t.log_excerpt,
        "agent": t.agent,
        "proposed_at": _iso(t.proposed_at),
        "lease_expires_at": _iso(t.lease_expires_at),
        "attempts": t.attempts,
        "fidelity": t.fidelity,
        "repeat": t.repeat,
        "phase": t.phase,
        "round": t.round,
        "arm": t.arm,
    }


def export_experiment(store: Store, name: str) -> dict[str, Any]:
    """The current document of experiment ``name``: it, every trial and every analysis.

    An experiment still running is exported as it stands when its trials are read.
    """
    e = store.require_experiment(name)
    trials = store.trials(e)
    analyses = store.analyses(e)
    return {
        "format": FORMAT,
        "version": VERSION,
        "autotune_version": _autotune_version(),
        "exported_at": _iso(now()),
        "experiment": {
            "name": e.name,
            "system": e.system,
            "spec": {"path": e.spec_path, "hash": e.spec_hash, "content": e.spec_content},
            "workload": {
                "name": e.workload_name,
                "path": e.workload_path,
                "hash": e.workload_hash,
                "content": e.workload_content,
                "files": dict(e.workload_files),
            },
            "objective_metric": e.objective_metric,
            "direction": e.direction,
            "optimizer": e.optimizer,
            "seed": e.seed,
            "settings": e.settings,
            "status": e.status,
            "created_at": _iso(e.created_at),
            "optimizer_state": e.optimizer_state,
        },
        "trials": [_trial_doc(t) for t in trials],
        "analyses": [
            {"kind": a.kind, "created_at": _iso(a.created_at), "result": a.result} for a in analyses
        ],
    }


def write_export(doc: dict[str, Any], path: Path | str) -> None:
    """Write ``doc`` as sorted, 1-space-indented JSON; gzip it if ``path`` ends in ``.gz``.

    The file appears whole or not at all (written beside it, then renamed).
    """
    path = Path(path)
    try:
        text = json.dumps(doc, sort_keys=True, indent=1, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise StoreError(f"cannot write {path}: {exc}") from None
    data = text.encode()
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)  # no timestamp: the same document, the same bytes
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None


# -- reading and validating ------------------------------------------------------------------
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


# -- import ----------------------------------------------------------------------------------
def import_experiment(store: Store, doc: dict[str, Any], name: str | None = None) -> Experiment:
    """Insert a document's experiment, trials and analyses into ``store``.

    ``name`` renames it. All or nothing: the document is validated whole (hashes
    included) before anything is written, and the rows go in one transaction, so
    a failure half-way leaves the store unchanged. An existing name is refused.
    A trial ``leased`` at export comes in as ``pending`` with its lease expiry
    cleared (see the module docstring); nothing else is changed.
    """
    experiment, trials, analyses = _parse(doc, "export document")
    if name is not None:
        experiment.name = _Reader("--name").name(name, "experiment name")
    if store.experiment(experiment.name) is not None:
        raise StoreError(
            f"experiment {experiment.name!r} already exists in {store.safe_url}; give --name NEW"
        )
    trials = [
        dataclasses.replace(t, status="pending", lease_expires_at=None)
        if t.status == "leased"
        else t
        for t in trials
    ]
    return store.restore_experiment(experiment, trials, analyses)
