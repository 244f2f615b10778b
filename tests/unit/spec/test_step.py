"""``step``: an integer knob whose system takes only multiples of a block size."""

from __future__ import annotations

import numpy as np
import pytest

from autotune.space import Space
from autotune.spec import KnobValueError, parse_spec
from tests.unit._support import MACHINE
from tests.unit.spec.test_spec import problems_of

SPEC = """\
system: s
applier: none
knobs:
  pool: {type: integer, unit: B, step: 1MB, min: 33MB, max: 50% memory, default: 128MB, scale: log}
  buf: {type: integer, unit: B, step: 4kB, min: 8kB, max: 16MB, default: 128kB}
  plain: {type: integer, min: 1, max: 10, default: 3}
"""


def test_bounds_hold_whole_steps_and_values_must_be_multiples() -> None:
    spec = parse_spec(SPEC, "s.yaml", MACHINE)
    pool = spec.knobs["pool"]
    assert pool.step == 2**20 and pool.min == 33 * 2**20
    assert pool.max % 2**20 == 0 and pool.max <= MACHINE.memory_bytes / 2
    assert pool.validate("64MB") == 64 * 2**20
    with pytest.raises(KnobValueError, match="not a multiple of 1MB"):
        pool.validate(64 * 2**20 + 4096)
    assert spec.knobs["plain"].step == 1


def test_the_space_proposes_only_multiples() -> None:
    spec = parse_spec(SPEC, "s.yaml", MACHINE)
    space = Space(spec, ["pool", "buf", "plain"], MACHINE)
    rng = np.random.default_rng(0)
    for config in space.sample(rng, 200):
        assert config["pool"] % 2**20 == 0 and config["buf"] % 4096 == 0
        for name in ("pool", "buf"):
            spec.knobs[name].validate(config[name])  # every proposal is valid


def test_step_problems_name_the_knob_and_field() -> None:
    text = (
        "system: s\napplier: none\nknobs:\n"
        "  a: {type: integer, unit: B, step: 4kB, min: 4kB, max: 1MB, default: 5kB}\n"
        "  b: {type: real, step: 2, min: 0, max: 10, default: 2}\n"
        "  c: {type: integer, step: 0, min: 0, max: 10, default: 2}\n"
    )
    assert problems_of(text) == [
        "s.yaml: knob 'a': field 'default': '5kB' is not a multiple of the step '4kB'",
        "s.yaml: knob 'b': field 'step': only integer knobs take a step",
        "s.yaml: knob 'c': field 'step': 0 is not a positive whole number of units",
    ]
