"""autotune: ML-for-systems autotuning of PostgreSQL and any system with a knob spec.

The package reads as the architecture: spec -> space -> optimizers -> tuner ->
agent -> systems/workloads -> store. The names below are the public API.
"""

from importlib.metadata import PackageNotFoundError, version

from autotune.agent import Agent, AgentRunner, Lease, TrialOutcome
from autotune.optimizers import OPTIMIZERS, Optimizer, make_optimizer
from autotune.space import Space
from autotune.spec import Knob, Machine, Spec, SpecError, load_spec
from autotune.store import Experiment, Store, StoreError, Trial
from autotune.systems import System
from autotune.systems.postgres import PostgresSystem, Sandbox
from autotune.tuner import LocalClient, Scheduler, Summary, TuningError, summarize
from autotune.workloads import Workload, load_workload, make_workload

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
