"""Which configs a verification measures: the reference (what the target ran at
start), the search's best, the spec's defaults when they differ, and pgtune's, each
completed over the union of the arms' knobs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import yaml

from autotune.baseline import PgtuneInput, pgtune_config
from autotune.space import Space
from autotune.spec import Config, Machine, Spec
from autotune.store import Experiment, Store, Trial
from autotune.tuner._experiment import experiment_spec
from autotune.tuner._robust import config_runs
from autotune.tuner._tuner import TuningError, summarize
from autotune.tuner._verify import (
    PGTUNE,
    REFERENCE,
    SPEC_DEFAULTS,
    Arm,
    VerifyPolicy,
    verify_policy,
)


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


def pgtune_input(
    spec: Spec, memory_bytes: int, cpus: int, db_type: str, storage: str = "ssd"
) -> PgtuneInput:
    """pgtune's input for this machine, as a DBA would enter it: where the db type's
    connection count is below the server's (dw's 40 against PostgreSQL's 100), the
    server's, so that the arm never takes connections away. ValueError on bad input."""
    inp = PgtuneInput(memory_bytes, cpus, db_type, storage)
    have = spec.knobs.get("max_connections")
    if have is not None and isinstance(have.default, int) and inp.max_connections < have.default:
        inp = dataclasses.replace(inp, connections=have.default)
    return inp


def pick_config(store: Store, experiment: Experiment, which: str) -> tuple[str, Config]:
    """``best`` (the noise-aware best) or a trial number: its label and config."""
    if which == "best":
        summary = summarize(store, experiment)
        if summary.best is None:
            raise TuningError(f"experiment {experiment.name!r} has no successful trial")
        return f"best (trial {summary.best.number})", dict(summary.best.config)
    if not which.isdigit():
        raise TuningError(f"--apply/--config: give best or a trial number, not {which!r}")
    number = int(which)
    trial = next((t for t in store.trials(experiment) if t.number == number), None)
    if trial is None:
        raise TuningError(f"experiment {experiment.name!r} has no trial {number}")
    if not trial.ok:
        raise TuningError(f"trial {number} of {experiment.name!r} did not succeed ({trial.status})")
    return f"trial {number}", dict(trial.config)


def reverify_arms(
    store: Store,
    experiment: Experiment,
    which: str,
    *,
    machine: Machine,
    pgtune: bool,
    db_type: str | None,
    storage: str,
    restartable: bool,
) -> tuple[list[Arm], list[str]]:
    """``autotune verify``'s arms, by the session's rules: the reference (what the
    target ran at start), the chosen config, the spec's defaults when they differ,
    and pgtune's for ``machine`` (its type from the workload unless ``db_type``).
    Without a restart, restart-class knobs are left out of every arm. Returns the
    arms and the notes to print; ValueError for pgtune's bad input."""
    spec = experiment_spec(experiment)
    label, config = pick_config(store, experiment, which)
    reference, spec_defaults = reference_arms(store.trials(experiment), spec)
    arms = [reference, Arm("best" if which == "best" else label, config, label)]
    if spec_defaults is not None:
        arms.append(spec_defaults)
    notes: list[str] = []
    if pgtune:
        if experiment.system != "postgres":
            raise TuningError(f"pgtune is for postgres, not {experiment.system!r}; add --no-pgtune")
        kind = db_type or pgtune_db_type(experiment.workload_content)
        inp = pgtune_input(spec, machine.memory_bytes, machine.cpus, kind, storage)
        tuned = pgtune_config(spec, inp)
        arms.append(Arm(PGTUNE, {k: tuned.config[k] for k in tuned.applied}, f"{kind}, {storage}"))
        notes += [f"pgtune: {n}" for n in tuned.notes]
    if not restartable:
        dropped = sorted({n for a in arms for n in a.config if spec.knobs[n].apply == "restart"})
        if dropped:
            arms = [
                Arm(a.label, {k: v for k, v in a.config.items() if k not in dropped}, a.note)
                for a in arms
            ]
            notes.append(
                "left out restart-class knobs (give --restart-command to apply them): "
                + ", ".join(dropped)
            )
    return arms, notes


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
        inp = pgtune_input(spec, int(machine["memory_bytes"]), int(machine["cpus"]), db_type)
        tuned = pgtune_config(spec, inp)
    except (KeyError, ValueError):
        return None
    return {
        name: tuned.config[name]
        for name in tuned.applied
        if restartable or spec.knobs[name].apply != "restart"
    }


def pgtune_for(experiment: Experiment, space: Space) -> dict[str, Any] | None:
    """pgtune's config for the experiment's machine, as a verification arm."""
    policy = verify_policy(experiment)
    if policy is None or not policy.pgtune or experiment.system != "postgres":
        return None
    return pgtune_arm(
        space.spec,
        experiment.settings.get("machine"),
        experiment.workload_content,
        restartable=bool(experiment.settings.get("restartable", True)),
    )
