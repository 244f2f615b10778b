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
from autotune.agent._runner import AgentRunner, RunnerEvents, materialize_workload

__all__ = [
    "MIN_TRIAL_S",
    "Agent",
    "AgentRunner",
    "ExperimentInfo",
    "Lease",
    "LeaseLost",
    "RunnerEvents",
    "TrialOutcome",
    "TunerClient",
    "materialize_workload",
    "trial_duration_s",
]
