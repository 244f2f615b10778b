"""autotune: ML-for-systems autotuning of PostgreSQL and any system with a knob spec.

The package reads as the architecture: spec -> space -> optimizers -> tuner ->
agent -> systems/workloads -> store. The names below are the public API.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autotune.agent import Agent, AgentRunner, Lease, TrialOutcome
    from autotune.optimizers import OPTIMIZERS, Optimizer, make_optimizer
    from autotune.space import Space
    from autotune.spec import Knob, Machine, Spec, SpecError, load_spec
    from autotune.store import Experiment, Store, StoreError, Trial
    from autotune.systems import System
    from autotune.systems.postgres import PostgresSystem, Sandbox
    from autotune.tuner import LocalClient, Scheduler, Summary, TuningError, summarize
    from autotune.workloads import Workload, load_workload, make_workload

# Imported on first use (PEP 562), so that `import autotune.agent` on an agent host
# does not load the store's and the server's stack (SQLAlchemy, Alembic, FastAPI).
_HOME = {
    **dict.fromkeys(["Agent", "AgentRunner", "Lease", "TrialOutcome"], "autotune.agent"),
    **dict.fromkeys(["OPTIMIZERS", "Optimizer", "make_optimizer"], "autotune.optimizers"),
    "Space": "autotune.space",
    **dict.fromkeys(["Knob", "Machine", "Spec", "SpecError", "load_spec"], "autotune.spec"),
    **dict.fromkeys(["Experiment", "Store", "StoreError"], "autotune.store"),
    "Trial": "autotune.domain",
    "System": "autotune.systems",
    **dict.fromkeys(["PostgresSystem", "Sandbox"], "autotune.systems.postgres"),
    **dict.fromkeys(
        ["LocalClient", "Scheduler", "Summary", "TuningError", "summarize"], "autotune.tuner"
    ),
    **dict.fromkeys(["Workload", "load_workload", "make_workload"], "autotune.workloads"),
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'autotune' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


try:
    __version__ = version("autotune")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "OPTIMIZERS",
    "Agent",
    "AgentRunner",
    "Experiment",
    "Knob",
    "Lease",
    "LocalClient",
    "Machine",
    "Optimizer",
    "PostgresSystem",
    "Sandbox",
    "Scheduler",
    "Space",
    "Spec",
    "SpecError",
    "Store",
    "StoreError",
    "Summary",
    "System",
    "Trial",
    "TrialOutcome",
    "TuningError",
    "Workload",
    "__version__",
    "load_spec",
    "load_workload",
    "make_optimizer",
    "make_workload",
    "summarize",
]
