"""An experiment as the tuner reads it: what agents need to run it (its spec, space and
workload), its settings, and the checks of what an agent reports back."""

from __future__ import annotations

import functools
from typing import Any

from autotune.agent import ExperimentInfo
from autotune.space import Space
from autotune.spec import KnobValueError, Machine, Spec, parse_spec
from autotune.store import BadReport, Experiment, Trial


def experiment_info(experiment: Experiment) -> ExperimentInfo:
    settings = experiment.settings
    return ExperimentInfo(
        name=experiment.name,
        system=experiment.system,
        spec_content=experiment.spec_content,
        spec_path=experiment.spec_path,
        spec_hash=experiment.spec_hash,
        workload_name=experiment.workload_name,
        workload_content=experiment.workload_content,
        workload_path=experiment.workload_path,
        workload_hash=experiment.workload_hash,
        workload_files=experiment.workload_files,
        objective_metric=experiment.objective_metric,
        direction=experiment.direction,
        duration_s=settings.get("duration_s"),
        knobs=list(settings.get("knobs", [])),
        machine=settings.get("machine"),
    )


def experiment_spec(experiment: Experiment) -> Spec:
    """The experiment's spec as recorded, its bounds resolved on the machine it was
    created for (this host's, for an experiment that did not record one)."""
    recorded = experiment.settings.get("machine")
    machine = Machine(**recorded) if isinstance(recorded, dict) else Machine.local()
    return parse_spec(experiment.spec_content, experiment.spec_path, machine)


def experiment_space(experiment: Experiment) -> Space:
    """The experiment's search space, resolved on the machine it was created for."""
    recorded = experiment.settings.get("machine")
    machine = Machine(**recorded) if isinstance(recorded, dict) else Machine.local()
    knobs = tuple(experiment.settings.get("knobs", []))
    return _space(experiment.spec_content, experiment.spec_path, knobs, machine)


@functools.lru_cache(maxsize=64)
def _space(content: str, path: str, knobs: tuple[str, ...], machine: Machine) -> Space:
    """Parsing a spec takes tens of milliseconds; a busy server proposes many times a second."""
    return Space(parse_spec(content, path, machine), list(knobs), machine)


def _controls(experiment: Experiment) -> int:
    """Search trials between drift controls (0: none)."""
    return int(experiment.settings.get("controls") or 0)


def _baseline_config(trials: list[Trial], space: Space) -> dict[str, Any]:
    """The baseline as it ran (the target's configuration as found, for an existing
    server or a host), else the spec's defaults."""
    ran = next((t for t in trials if t.is_baseline and t.searched and t.ok), None)
    return dict(ran.config) if ran is not None else space.default()


def _active(counts: dict[str, int]) -> int:
    return counts.get("pending", 0) + counts.get("leased", 0)


def _finished(counts: dict[str, int]) -> int:
    return counts.get("ok", 0) + counts.get("failed", 0)


def reported_config(experiment: Experiment, config: dict[str, Any] | None) -> dict[str, Any]:
    """A reported baseline config, each value checked against the experiment's spec
    (BadReport names the knob); {} when the agent ran the leased config."""
    if not config:
        return {}
    knobs = experiment_spec(experiment).knobs
    out: dict[str, Any] = {}
    for name, value in config.items():
        knob = knobs.get(name)
        if knob is None:
            raise BadReport(f"reported config: knob {name!r} is not in the spec")
        try:
            out[name] = knob.validate(value)
        except KnobValueError as exc:
            raise BadReport(f"reported config: {name}: {exc}") from None
    return out
