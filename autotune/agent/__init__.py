"""Agents: lease -> apply -> run -> collect -> report, with rollback and restore."""

from autotune.agent._agent import Agent, TrialOutcome
from autotune.agent._client import ExperimentInfo, Lease, LeaseLost, TunerClient
from autotune.agent._runner import AgentRunner, RunnerEvents, materialize_workload

__all__ = [
    "Agent",
    "AgentRunner",
    "ExperimentInfo",
    "Lease",
    "LeaseLost",
    "RunnerEvents",
    "TrialOutcome",
    "TunerClient",
    "materialize_workload",
]
