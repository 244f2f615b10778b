"""A benchmark problem: a loss over a space parsed from real spec YAML, its optimum and
its noise."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autotune.space import Space
from autotune.spec import Config, Machine, parse_spec

if TYPE_CHECKING:
    pass

GiB = 1024**3
SYNTHETIC_MACHINE = Machine(memory_bytes=16 * GiB, cpus=2)
"""Synthetic specs have no machine-relative bounds; a fixed machine keeps them host-independent."""

REPO_ROOT = Path(__file__).resolve().parents[2]
RECORDED_DIR = REPO_ROOT / "experiments" / "recorded"
PG_RECORDED = RECORDED_DIR / "pgbench-tpcb-random80.json"


@dataclass
class Problem:
    """A loss over a space, with its optimum and measurement noise.

    ``noise_sd`` is the Gaussian noise on every observation. ``fidelity_sd``
    is the extra noise scale for a shortened run: an observation at fidelity
    ``φ < 1`` (Hyperband-style screening) gets noise with standard deviation
    ``sqrt(noise_sd² + fidelity_sd² (1/φ − 1))``, since a shorter
    measurement is a noisier one; at full fidelity it is just ``noise_sd``.
    """

    name: str
    description: str
    space: Space
    objective: Callable[[Config], float]
    f_star_fn: Callable[[], float]
    noise_sd: float = 0.0
    fidelity_sd: float = 0.0
    f_star_exact: bool = True
    argmin: Config | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def f_star(self) -> float:
        """The minimum of ``objective`` over the space (exact, or an estimate: ``f_star_exact``)."""
        return float(self.f_star_fn())

    def noise(self, seed: int, index: int, fidelity: float = 1.0) -> float:
        """The noise added to evaluation ``index`` of a run with ``seed``: a pure function."""
        sd = math.sqrt(self.noise_sd**2 + self.fidelity_sd**2 * (1.0 / fidelity - 1.0))
        if sd == 0.0:
            return 0.0
        # crc32, not hash(): str hashes change between processes.
        rng = np.random.default_rng([zlib.crc32(self.name.encode()), seed, index])
        return float(sd * rng.standard_normal())

    def observe(self, config: Config, seed: int, index: int, fidelity: float = 1.0) -> float:
        """What a measurement of ``config`` reports: the true loss plus noise."""
        return self.objective(config) + self.noise(seed, index, fidelity)


def _space(yaml_text: str, name: str, machine: Machine = SYNTHETIC_MACHINE) -> Space:
    spec = parse_spec(yaml_text, f"<bench:{name}>", machine)
    return Space(spec, [k for k, knob in spec.knobs.items() if knob.tunable], machine)


# -- synthetic functions (Surjanovic & Bingham's Virtual Library of Simulation Experiments) --
