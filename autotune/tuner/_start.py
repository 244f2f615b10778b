"""Starting points: configs the search tries first, right after the baseline.

A DBA's first question is whether the result beats pgtune, and a search of 30
trials over 50 knobs may never come near pgtune's memory sizing. In the P1 run
on ``pgbench-tpcb-large`` pgtune gave shared_buffers 5.9 GB and was verified
1.04× the default, while the search's best had 229 MB and was 0.97×. With
``start_with = "pgtune"``, pgtune's config for the experiment's machine, carried
into the search space (its knobs outside the space left at their defaults, its
values clipped to the spec's bounds), is the first search trial. The optimiser
is told it like any other trial, and it can win the verification like any other.
It is the default for PostgreSQL (``default_start_with``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autotune.space import Space
from autotune.spec import Config, Machine, Spec
from autotune.store import Experiment
from autotune.tuner._arms import pgtune_arm
from autotune.tuner._tuner import TuningError
from autotune.tuner._warm import carry_config

START_WITH = ("none", "pgtune")


def check_start_with(
    value: str | None,
    spec: Spec,
    knobs: Sequence[str] = (),
    machine: dict[str, Any] | None = None,
    workload_content: str = "",
    restartable: bool = True,
) -> str:
    """Validate ``--start-with`` up front: none, or pgtune for a PostgreSQL spec whose
    config can be tried within ``knobs`` (when given) on ``machine``. Not given (None),
    it is the default (``default_start_with``)."""
    if value is None:
        return default_start_with(spec, knobs, machine, workload_content, restartable)[0]
    if value == "none":
        return "none"
    if value not in START_WITH:
        raise TuningError(f"--start-with {value!r}: choose one of {', '.join(START_WITH)}")
    if spec.system != "postgres" or spec.parts:
        raise TuningError(f"--start-with pgtune is for postgres, not {spec.system!r}")
    if knobs and machine:
        space = Space(spec, list(knobs), Machine(**machine))
        config, why = pgtune_start(space, machine, workload_content, restartable)
        if config is None:
            raise TuningError(f"--start-with pgtune: {why}")
    return value


def default_start_with(
    spec: Spec,
    knobs: Sequence[str],
    machine: dict[str, Any] | None,
    workload_content: str = "",
    restartable: bool = True,
) -> tuple[str, str]:
    """pgtune for a PostgreSQL session whose knobs can take pgtune's config, else none;
    and, for a PostgreSQL session left at none, a note saying why.

    The default since the rule written before its P1 runs held (experiments/README,
    P1): with pgtune's config first, a 30-trial session's verified best was 1.053×
    the default on pgbench-tpcb-large (0.970× without) and 1.028× on analytic-large
    (1.085× without, on another day), with none of either's 29 search trials below
    half the baseline. Where pgtune has nothing to try within the knobs (another
    system, a config the spec's constraints refuse), the session starts without it."""
    if spec.system != "postgres" or spec.parts or not knobs or not machine:
        return "none", ""
    space = Space(spec, list(knobs), Machine(**machine))
    config, why = pgtune_start(space, machine, workload_content, restartable)
    if config is None:
        return "none", f"not starting from pgtune's config: {why}"
    return "pgtune", ""


def resolve_start_with(
    value: str | None,
    spec: Spec,
    knobs: Sequence[str],
    machine: dict[str, Any] | None,
    workload_content: str = "",
    restartable: bool = True,
) -> tuple[str, str]:
    """``check_start_with``, and the default's note: what a session (local or served)
    records, and why a PostgreSQL session left to the default starts without pgtune."""
    if value is None:
        return default_start_with(spec, knobs, machine, workload_content, restartable)
    return check_start_with(value, spec, knobs, machine, workload_content, restartable), ""


def pgtune_start(
    space: Space, machine: dict[str, Any] | None, workload_content: str, restartable: bool
) -> tuple[Config | None, str]:
    """pgtune's config carried into ``space``, or None and why it cannot be tried."""
    tuned = pgtune_arm(space.spec, machine, workload_content, restartable)
    if not tuned:
        return None, "pgtune has no config for this spec or machine"
    config = carry_config(tuned, space)
    if config is None:
        carried = space.default() | {k: v for k, v in tuned.items() if k in space.names}
        broken = "; ".join(space.spec.violated(carried, space.machine)) or "a knob's bounds"
        return None, f"pgtune's config breaks {broken} within the knobs tuned"
    if space.key(config) == space.key(space.default()):
        return None, "pgtune's config is the default within the knobs tuned"
    return config, ""


def start_configs(experiment: Experiment, space: Space) -> list[Config]:
    """The configs to try after the baseline, in order."""
    if experiment.settings.get("start_with") != "pgtune":
        return []
    config, _ = pgtune_start(
        space,
        experiment.settings.get("machine"),
        experiment.workload_content,
        restartable=bool(experiment.settings.get("restartable", True)),
    )
    return [] if config is None else [config]


__all__ = [
    "START_WITH",
    "check_start_with",
    "default_start_with",
    "pgtune_start",
    "resolve_start_with",
    "start_configs",
]
