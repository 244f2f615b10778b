"""Verify a result on a live system: the tuner's paired verification, run by one agent.

A session ends with its own verification (``autotune.tuner``'s policy, run
through the scheduler). ``autotune verify`` runs the same policy again later,
on a fresh sandbox or another server: the same arms, rotating order, paired
ratios, t-interval and stopping rule, driven here by a started agent instead
of through leases. See ``autotune.tuner._verify`` for why each piece is there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from autotune.agent import Agent
from autotune.spec import Spec
from autotune.tuner import (
    REFERENCE_METRIC,
    Arm,
    Verification,
    VerifyPolicy,
    VerifyRun,
    complete_configs,
    rotation,
    summarize_verification,
)


def run_interleaved(
    agent: Agent,
    spec: Spec,
    arms: Sequence[Arm],
    policy: VerifyPolicy,
    objective_metric: str,
    direction: str,
    duration_s: float | None = None,
    progress: Callable[[VerifyRun | None, str], None] = lambda run, phase: None,
) -> tuple[list[VerifyRun], Verification]:
    """Rounds of every arm on a started agent, in rotating order, until the policy stops.

    Every run starts from the loaded data, settled and warm (the agent's reset and
    settle phases), so no run is thrown away to warm the server up.
    """
    configs = complete_configs(spec, arms)
    # Beside a twin (policy.twin, where the agent can start one) every run measures the
    # default too, so the default has no runs of its own; arms[0] is the default.
    twin = policy.twin and agent.can_pair()
    order = list(range(1, len(arms))) if twin else list(range(len(arms)))
    runs: list[VerifyRun] = []
    while True:
        state = summarize_verification(arms, runs, direction, policy)
        if state.stopped:
            return runs, state
        round_ = state.rounds + 1
        for position in rotation(len(order), round_ - 1):
            index = order[position]
            arm = arms[index]
            progress(None, f"round {round_}: {arm.label}")
            if twin:
                outcome = agent.run_pair(
                    configs[index], configs[0], duration_s=duration_s, swap=round_ % 2 == 0
                )
            else:
                outcome = agent.run_trial(configs[index], duration_s=duration_s)
            value = outcome.metrics.get(objective_metric) if outcome.status == "ok" else None
            error = outcome.error
            if outcome.status == "ok" and value is None:
                error = f"the workload reported no {objective_metric!r}"
            reference = outcome.metrics.get(REFERENCE_METRIC) if value is not None else None
            run = VerifyRun(round_, arm.label, value, error, reference)
            runs.append(run)
            progress(run, "done")


def result_json(
    arms: Sequence[Arm],
    runs: Sequence[VerifyRun],
    verification: Verification,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """What is stored with the experiment (``kind="verify"``)."""
    return {
        **settings,
        "arms": [{"label": a.label, "config": a.config, "note": a.note} for a in arms],
        "runs": [asdict(r) for r in runs],
        "verification": verification.to_json(),
    }


__all__ = ["result_json", "run_interleaved"]
