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
import json
import os
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from autotune.domain import Trial, now
from autotune.store._document import FORMAT, TRIAL_KEYS, VERSION
from autotune.store._reading import _parse, _Reader
from autotune.store._store import Store
from autotune.store._types import Experiment, StoreError


# -- export --------------------------------------------------------------------------------
def _autotune_version() -> str:
    try:
        return metadata.version("autotune")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _trial_doc(t: Trial) -> dict[str, Any]:
    """Every field of the trial but its store id (``TRIAL_KEYS``), times as ISO text."""
    doc = {name: getattr(t, name) for name in TRIAL_KEYS}
    for name, value in doc.items():
        if isinstance(value, datetime):
            doc[name] = _iso(value)
    doc["status_history"] = [list(item) for item in t.status_history]
    return doc


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
