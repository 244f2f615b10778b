"""Workloads: pgbench and SQL query sets."""

from autotune.workloads._base import Workload, WorkloadDef, WorkloadError, WorkloadResult
from autotune.workloads._loader import load_workload, make_workload, parse_workload

__all__ = [
    "Workload",
    "WorkloadDef",
    "WorkloadError",
    "WorkloadResult",
    "load_workload",
    "make_workload",
    "parse_workload",
]
