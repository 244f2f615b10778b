"""The export document's format: its name and version, the keys each part carries, and
the digests that tie a spec and a workload to their text (see ``_exchange``)."""

from __future__ import annotations

import dataclasses
import hashlib

from autotune.domain import Trial

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
# Every field of Trial but its store id: the dataclass is the one list of them.
TRIAL_KEYS = tuple(f.name for f in dataclasses.fields(Trial) if f.name != "id")
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
