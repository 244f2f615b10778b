"""The safety floor: the loss map it is carried by, the safe design, and a search that
keeps off a cliff it has not seen (``plan_safety``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from autotune.optimizers import make_optimizer
from autotune.optimizers.gp import fit_transform, transform_losses
from autotune.optimizers.lhs import SAFE_SHRINK, lhs_design
from autotune.space import Space
from autotune.spec import Config, Spec
from tests.unit._support import MACHINE

pytestmark = pytest.mark.usefixtures("one_blas_thread")

CLIFF = """\
system: cliff
knobs:
  delay: {type: real, min: 0, max: 10, default: 1}
  size: {type: real, min: 0, max: 10, default: 5}
  mode: {type: enum, values: [a, b, c], default: a}
"""


@pytest.fixture
def cliff(make_spec: Callable[..., Spec]) -> Space:
    return Space(make_spec(CLIFF), ["delay", "size", "mode"], MACHINE)


def tps(config: Config) -> float:
    """Smooth in size and mode, and a cliff past delay 6 (as commit_delay past a few ms)."""
    if float(config["delay"]) > 6:
        return 100.0
    size = float(config["size"])
    return (
        1000 + 60 * float(config["delay"]) - 20 * (size - 7) ** 2 + (80 * (config["mode"] == "b"))
    )


def test_the_fitted_map_carries_new_losses_into_the_models_units() -> None:
    y = np.array([-3800.0, -3500, -3600, -2900, -200, -4000])
    t, mapped = fit_transform(y)
    assert np.allclose(mapped(y), t)
    assert np.allclose(t, transform_losses(y))
    grid = np.linspace(-5000, 0, 101)
    assert np.all(np.diff(mapped(grid)) > 0)  # monotone: the floor keeps its place
    flat, flat_map = fit_transform(np.array([2.0, 2.0]))
    assert list(flat) == [0.0, 0.0]
    assert list(flat_map(np.array([1.0, 2.0, 3.0]))) == [-np.inf, 0.0, np.inf]


def test_a_safe_design_stays_within_half_the_range_around_its_centre(cliff: Space) -> None:
    around = {"delay": 1.0, "size": 5.0, "mode": "a"}
    design = lhs_design(cliff, 40, seed=3, safe=True, around=around)
    wide = lhs_design(cliff, 40, seed=3)
    assert len(design) == 40
    delays = [float(c["delay"]) for c in design]
    assert max(delays) <= 1 + SAFE_SHRINK * 9 + 1e-9  # (1 + 0.5 × (10 − 1))
    assert min(delays) >= 1 - SAFE_SHRINK * 1 - 1e-9
    assert max(float(c["delay"]) for c in wide) > 8  # unshrunk, the same seed reaches the cliff


@pytest.mark.parametrize("name", ["auto", "gp"])
def test_a_floor_keeps_the_search_off_a_cliff_without_losing_the_best(
    cliff: Space, name: str
) -> None:
    ruined: dict[bool, int] = {}
    best: dict[bool, list[float]] = {}
    for floor in (False, True):
        ruined[floor], best[floor] = 0, []
        for seed in range(3):
            optimizer = make_optimizer(name, cliff, seed)
            optimizer.n_candidates, optimizer.n_local = 200, 50  # type: ignore[attr-defined]
            base = cliff.default()
            optimizer.tell(base, -tps(base))
            if floor:
                optimizer.plan_safety(-0.5 * tps(base), base)
            values = []
            for _ in range(24):
                (config,) = optimizer.ask(1)
                values.append(tps(config))
                optimizer.tell(config, -values[-1])
            ruined[floor] += sum(v < 0.5 * tps(base) for v in values)
            best[floor].append(max(values))
    assert ruined[True] < 0.6 * ruined[False], ruined
    # The best (about 1,440 tps at delay 6, size 7, mode b) is still found, within 3%.
    assert min(best[True]) > 0.97 * 1440, best
