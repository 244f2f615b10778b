"""Verify a result on a live system: configs measured interleaved, medians and bootstrap CIs.

A tuning session's best was found on a noisy host, often from one lucky run.
Before anyone deploys it, it is measured again beside the default and a
rule-based configuration (pgtune), on the same instance, in rounds. Each round
runs every arm once; the order rotates from round to round (A B C, B C A,
C A B, …), so drift over minutes and any carry-over from the previous run
fall on every arm alike. The result says plainly when a gain is not
significant: the 95% bootstrap CI of the ratio of medians includes 1.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from autotune.agent import Agent
from autotune.spec import Config, Spec
from autotune.tuner import bootstrap_ratio_ci


@dataclass(frozen=True)
class Arm:
    """One configuration to measure; ``config`` names only the knobs it sets."""

    label: str
    config: Config
    note: str = ""


@dataclass
class Run:
    round: int
    label: str
    status: str  # ok | failed
    objective: float | None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ArmSummary:
    label: str
    runs: int
    failed: int
    median: float | None
    values: list[float]
    ratio: float | None  # vs the reference arm, > 1 is better whatever the direction
    ci_low: float | None
    ci_high: float | None

    @property
    def significant(self) -> bool | None:
        """Better or worse beyond noise; None when there is no CI."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return self.ci_low > 1.0 or self.ci_high < 1.0


def complete_configs(spec: Spec, arms: Sequence[Arm]) -> list[Config]:
    """Each arm over the same knobs: what an arm does not set is at the spec's default.

    Applying a config only touches the knobs it names, so without this a knob
    set by one arm would leak into the next arm's runs.
    """
    names = sorted({name for arm in arms for name in arm.config})
    defaults = spec.defaults()
    return [{n: arm.config.get(n, defaults[n]) for n in names} for arm in arms]


def rotation(n_arms: int, rounds: int) -> list[list[int]]:
    """Arm order per round: each round starts one arm later (a Latin square when
    ``rounds`` is a multiple of ``n_arms``)."""
    return [[(r + i) % n_arms for i in range(n_arms)] for r in range(rounds)]


def run_interleaved(
    agent: Agent,
    spec: Spec,
    arms: Sequence[Arm],
    rounds: int,
    objective_metric: str,
    duration_s: float | None = None,
    settle_runs: int = 1,
    progress: Callable[[Run | None, str], None] = lambda run, phase: None,
) -> list[Run]:
    """Measure every arm ``rounds`` times on a started agent, in rotating order.

    ``settle_runs`` runs of the first arm come first and are thrown away: the
    first runs after loading data meet cold caches and pending background work.
    """
    configs = complete_configs(spec, arms)
    for i in range(settle_runs):
        progress(None, f"settling run {i + 1}/{settle_runs} ({arms[0].label})")
        agent.run_trial(configs[0], duration_s=duration_s)
    runs: list[Run] = []
    for r, order in enumerate(rotation(len(arms), rounds)):
        for index in order:
            arm = arms[index]
            progress(None, f"round {r + 1}/{rounds}: {arm.label}")
            outcome = agent.run_trial(configs[index], duration_s=duration_s)
            value = outcome.metrics.get(objective_metric) if outcome.status == "ok" else None
            error = outcome.error
            if outcome.status == "ok" and value is None:
                error = f"the workload reported no {objective_metric!r}"
            run = Run(
                round=r + 1,
                label=arm.label,
                status="ok" if value is not None else "failed",
                objective=value,
                error=error,
                timings=dict(outcome.timings),
            )
            runs.append(run)
            progress(run, "done")
    return runs


def summarize_runs(
    runs: Sequence[Run], labels: Sequence[str], reference: str, direction: str
) -> list[ArmSummary]:
    """Per arm: median, and the ratio of medians to ``reference`` with its 95% CI."""
    values = {
        label: [r.objective for r in runs if r.label == label and r.objective is not None]
        for label in labels
    }
    out = []
    for label in labels:
        mine = [float(v) for v in values[label]]
        failed = sum(1 for r in runs if r.label == label and r.objective is None)
        ratio = low = high = None
        if label != reference and mine and values[reference]:
            got = bootstrap_ratio_ci(mine, values[reference], direction == "maximize")
            ratio = None if math.isnan(got[0]) else got[0]
            low = None if math.isnan(got[1]) else got[1]
            high = None if math.isnan(got[2]) else got[2]
        out.append(
            ArmSummary(
                label=label,
                runs=len(mine) + failed,
                failed=failed,
                median=statistics.median(mine) if mine else None,
                values=mine,
                ratio=ratio,
                ci_low=low,
                ci_high=high,
            )
        )
    return out


def verdict(arm: ArmSummary, reference: str) -> str:
    """One plain sentence on an arm against the reference."""
    if arm.label == reference:
        return "reference"
    if arm.ratio is None:
        return "no comparison (too few successful runs)"
    pct = (arm.ratio - 1) * 100
    word = "better" if pct >= 0 else "worse"
    if arm.significant:
        return f"{abs(pct):.1f}% {word} than {reference}: significant (95% CI excludes 1)"
    if arm.significant is None:
        return f"{abs(pct):.1f}% {word} than {reference}: no CI (needs 2+ runs each)"
    return f"{abs(pct):.1f}% {word} than {reference}: NOT significant (95% CI includes 1)"


def result_json(
    arms: Sequence[Arm],
    runs: Sequence[Run],
    summaries: Sequence[ArmSummary],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """What is stored with the experiment (``kind="verify"``)."""
    return {
        **settings,
        "arms": [{"label": a.label, "config": a.config, "note": a.note} for a in arms],
        "runs": [asdict(r) for r in runs],
        "summary": [
            {
                **asdict(s),
                "significant": s.significant,
                "verdict": verdict(s, settings["reference"]),
            }
            for s in summaries
        ],
    }


__all__ = [
    "Arm",
    "ArmSummary",
    "Run",
    "complete_configs",
    "result_json",
    "rotation",
    "run_interleaved",
    "summarize_runs",
    "verdict",
]
