"""The workload seam: prepare data once per session, then run and measure per trial.

Workload files are a user contract (see knob-spec.md); loading reports every
problem at once, naming the file and the field.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune.systems import System, SystemError_


class WorkloadError(SystemError_):
    """A workload run that failed; ``log_excerpt`` holds the tool's output."""


@dataclass(frozen=True)
class WorkloadDef:
    """A parsed workload file."""

    name: str
    system: str
    kind: str
    objective_metric: str
    direction: str  # maximize | minimize
    duration_s: float | None
    warmup_s: float
    params: dict[str, Any]
    source: str
    path: Path
    files: dict[str, str] = field(default_factory=dict)  # files it names, relative to it

    @property
    def content_hash(self) -> str:
        """Covers the files the workload names too: a changed query is a changed workload."""
        digest = hashlib.sha256(self.source.encode())
        for name in sorted(self.files):
            digest.update(b"\0" + name.encode() + b"\0" + self.files[name].encode())
        return digest.hexdigest()

    def dataset_key(self) -> str | None:
        """What the loaded data depends on, as a name for the dataset cache; None unless
        the workload asks for ``cache: true``. Only what the load reads counts (scale,
        the setup file, whether a pristine copy is kept): a session of another duration
        or client count uses the same data."""
        if not self.params.get("cache"):
            return None
        p = self.params
        if self.kind == "pgbench":  # pgbench -i depends on the scale alone: shared by name
            return f"pgbench-scale{p['scale']}" + ("-resettable" if p["reset"] else "")
        try:
            setup = Path(str(p["setup"])).read_text()
        except (KeyError, OSError):
            setup = ""
        basis = f"sql-set reset={p['reset']}\0{setup}"
        digest = hashlib.sha256(basis.encode()).hexdigest()[:12]
        return f"{self.name}-{digest}"

    def relative(self, value: str) -> Path:
        """Files named in a workload are relative to the workload file's directory."""
        return (self.path.parent / value).resolve()


@dataclass
class WorkloadResult:
    metrics: dict[str, float]
    warmup_s: float = 0.0
    measure_s: float = 0.0
    collect_s: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


Phase = Callable[[str], None]


class Workload(ABC):
    """Something that loads a system and measures it."""

    def __init__(self, definition: WorkloadDef) -> None:
        self.definition = definition

    @abstractmethod
    def prepare(self, system: System) -> None:
        """Load data; called once per session, before the baseline."""

    @abstractmethod
    def run(
        self, system: System, duration_s: float | None, phase: Phase, warmup: bool = True
    ) -> WorkloadResult:
        """Warm up (unless ``warmup`` is False: the system is warm already), then measure
        for ``duration_s`` (or the workload's own length)."""

    def reset(self, system: System) -> bool:
        """Before each trial: bring the data back to its state just after ``prepare``,
        so no trial measures what an earlier one left (dead tuples, bloat, autovacuum
        debt). True if it did; False when there is nothing to reset here."""
        return False

    def settle(self, system: System) -> dict[str, float]:
        """Before each trial's warm-up: let the system's background work finish and warm
        its caches, so every trial, the baseline's first included, starts alike.
        Returns figures worth keeping with the trial (name -> value)."""
        return {}
