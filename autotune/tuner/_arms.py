"""Which configs a verification measures: the reference (what the target ran at
start), the search's best, the spec's defaults when they differ, and pgtune's, each
completed over the union of the arms' knobs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import yaml

from autotune.baseline import PgtuneInput, pgtune_config
from autotune.spec import Config, Spec
from autotune.store import Trial
from autotune.tuner._robust import config_runs
from autotune.tuner._verify import PGTUNE, REFERENCE, SPEC_DEFAULTS, Arm, VerifyPolicy


def complete_configs(spec: Spec, arms: Sequence[Arm]) -> list[Config]:
    """Each arm over the same knobs: what an arm does not set is at the spec's default.

    Applying a config only touches the knobs it names, so without this a knob set
    by one arm would leak into the next arm's runs.
    """
    names = sorted({name for arm in arms for name in arm.config})
    defaults = spec.defaults()
    return [{n: arm.config.get(n, defaults[n]) for n in names} for arm in arms]


def choose_arms(
    trials: Sequence[Trial],
    direction: str,
    spec: Spec,
    policy: VerifyPolicy,
    pgtune: Config | None = None,
) -> list[Arm]:
    """The default, the ``policy.contenders`` best tuned configs, and pgtune's if given.

    Contenders are the search's successful full-length configs other than the
    default, ranked by their median (one run each, unless the racing phase
    repeated them). Each arm is completed over the union of the arms' knobs.
    """
    search = [t for t in trials if t.searched]
    groups = config_runs(search)
    sign = 1.0 if direction == "maximize" else -1.0
    ranked = sorted((g for g in groups if not g.is_baseline), key=lambda g: -sign * g.median)
    reference, spec_defaults = reference_arms(trials, spec)
    arms = [reference]
    arms += [
        Arm(f"trial {g.first.number}", g.config, f"{g.n} search run(s), median {g.median:.6g}")
        for g in ranked[: policy.contenders]
    ]
    if len(arms) > 1 and spec_defaults is not None:
        arms.append(spec_defaults)
    if len(arms) > 1 and pgtune:
        arms.append(Arm(PGTUNE, pgtune, "pgtune's formulas for this machine"))
    configs = complete_configs(spec, arms)
    return [Arm(a.label, c, a.note) for a, c in zip(arms, configs, strict=True)]


def reference_arms(trials: Sequence[Trial], spec: Spec) -> tuple[Arm, Arm | None]:
    """The reference arm (the config the search's baseline ran: what the target ran
    at start) and, when that differs from the spec's defaults, an arm for those.

    The baseline is what runs today; the spec's defaults are a second yardstick.
    """
    groups = config_runs([t for t in trials if t.searched])
    default = next((g.config for g in groups if g.is_baseline), None)
    defaults = spec.defaults()
    reference = default if default is not None else defaults
    if all(v == defaults.get(n) for n, v in reference.items()):
        return Arm(REFERENCE, reference, "the defaults"), None
    return (
        Arm(REFERENCE, reference, "the configuration the target ran at start"),
        Arm(SPEC_DEFAULTS, {n: defaults[n] for n in reference}, "the spec's defaults"),
    )


def pgtune_db_type(workload_content: str) -> str:
    """The pgtune database type for a workload: oltp for pgbench, dw for a query set,
    else mixed (pgtune's own default)."""
    try:
        data = yaml.safe_load(workload_content)
    except yaml.YAMLError:
        data = None
    kind = data.get("kind") if isinstance(data, dict) else None
    return {"pgbench": "oltp", "sql-set": "dw"}.get(str(kind), "mixed")


def pgtune_arm(
    spec: Spec, machine: dict[str, Any] | None, workload_content: str, restartable: bool
) -> Config | None:
    """pgtune's settings for the experiment's machine and workload, where they apply:
    oltp for pgbench, dw for a query set, else mixed. Restart-class knobs are left
    out when the target cannot be restarted.

    pgtune sizes work_mem for the connection count it sets. Where its db type's count
    is below the server's (dw's 40 against PostgreSQL's 100), the server's is given
    to it instead, as a DBA would enter it: the arm never takes connections away.
    """
    if spec.parts or not machine:
        return None
    db_type = pgtune_db_type(workload_content)
    try:
        inp = PgtuneInput(int(machine["memory_bytes"]), int(machine["cpus"]), db_type, "ssd")
        have = spec.knobs.get("max_connections")
        if (
            have is not None
            and isinstance(have.default, int)
            and inp.max_connections < have.default
        ):
            inp = dataclasses.replace(inp, connections=have.default)
        tuned = pgtune_config(spec, inp)
    except (KeyError, ValueError):
        return None
    return {
        name: tuned.config[name]
        for name in tuned.applied
        if restartable or spec.knobs[name].apply != "restart"
    }
