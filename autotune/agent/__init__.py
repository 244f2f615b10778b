"""Agents: lease -> apply -> run -> collect -> report, with rollback and restore."""

from autotune.agent._agent import Agent, TrialOutcome
from autotune.agent._client import (
    MIN_TRIAL_S,
    ExperimentInfo,
    Lease,
    LeaseLost,
    TunerClient,
    trial_duration_s,
)
from autotune.agent._host import HOST_PATTERN, host_id
from autotune.agent._policy import AgentPolicy, Refused, resolve_program
from autotune.agent._runner import AgentRunner, RunnerEvents, materialize_workload

__all__ = [
    "HOST_PATTERN",
    "MIN_TRIAL_S",
    "Agent",
    "AgentPolicy",
    "AgentRunner",
    "ExperimentInfo",
    "Lease",
    "LeaseLost",
    "Refused",
    "RunnerEvents",
    "TrialOutcome",
    "TunerClient",
    "host_id",
    "materialize_workload",
    "resolve_program",
    "trial_duration_s",
]
