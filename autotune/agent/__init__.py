"""Agents: lease -> apply -> run -> collect -> report, with rollback and restore."""

from autotune.agent._agent import Agent, TrialOutcome

__all__ = ["Agent", "TrialOutcome"]
