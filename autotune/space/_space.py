"""The search space: the tunable knobs of a spec, their unit-cube coordinates and encodings.

Two views of a config live here. ``from_unit``/``to_unit`` map one coordinate
per knob in [0, 1] (log or linear, enums by index) for space-filling designs and
local search. ``encode`` gives the model features: numeric knobs scaled to
[0, 1] plus one indicator per special value, enums one-hot, booleans 0/1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from autotune.spec import Config, Knob, Machine, Spec, Value

SPECIAL_PROBABILITY = 0.2
"""How often sampling picks a knob's special value; LlamaTune (VLDB 2022) shows
that special values such as 0 or -1 often matter and a uniform draw never finds them."""


class Space:
    """The knobs being tuned, with the rest of the spec held at defaults for constraints."""

    def __init__(self, spec: Spec, names: Sequence[str], machine: Machine) -> None:
        self.spec = spec
        self.machine = machine
        self.knobs: list[Knob] = [spec.knobs[name] for name in names]
        self.names = [k.name for k in self.knobs]
        widths = []
        for knob in self.knobs:
            if knob.type == "enum":
                widths.append(len(knob.values))
            elif knob.numeric:
                widths.append(1 + len(knob.special))
            else:
                widths.append(1)
        self._offsets = np.concatenate([[0], np.cumsum(widths)]).astype(int)
        self.n_features = int(self._offsets[-1])

    def __len__(self) -> int:
        return len(self.knobs)

    def default(self) -> Config:
        return {k.name: k.default for k in self.knobs}

    def is_valid(self, config: Config) -> bool:
        return not self.spec.violated(config, self.machine)

    # -- one coordinate per knob -------------------------------------------------
    def _scale_value(self, knob: Knob, u: float) -> Value:
        assert knob.min is not None and knob.max is not None
        u = min(max(u, 0.0), 1.0)
        if knob.scale == "log":
            value = math.exp(math.log(knob.min) + u * (math.log(knob.max) - math.log(knob.min)))
        else:
            value = knob.min + u * (knob.max - knob.min)
        if knob.type == "integer":
            return int(min(max(round(value), math.ceil(knob.min)), math.floor(knob.max)))
        # Four significant digits: what we format is what we apply and record.
        return min(max(float(f"{value:.4g}"), knob.min), knob.max)

    def _unscale_value(self, knob: Knob, value: Value) -> float:
        assert knob.min is not None and knob.max is not None
        if knob.max == knob.min:
            return 0.5
        v = float(value)
        if knob.scale == "log":
            v = max(v, knob.min)
            return (math.log(v) - math.log(knob.min)) / (math.log(knob.max) - math.log(knob.min))
        return (v - knob.min) / (knob.max - knob.min)

    def from_unit(self, u: Sequence[float] | np.ndarray) -> Config:
        config: Config = {}
        for knob, x in zip(self.knobs, u, strict=True):
            x = min(max(float(x), 0.0), 1.0)
            if knob.type == "enum":
                config[knob.name] = knob.values[
                    min(int(x * len(knob.values)), len(knob.values) - 1)
                ]
            elif knob.type == "bool":
                config[knob.name] = bool(x >= 0.5)
            else:
                config[knob.name] = self._scale_value(knob, float(x))
        return config

    def to_unit(self, config: Config) -> np.ndarray:
        out = np.empty(len(self.knobs))
        for i, knob in enumerate(self.knobs):
            value = config[knob.name]
            if knob.type == "enum":
                out[i] = (knob.values.index(str(value)) + 0.5) / len(knob.values)
            elif knob.type == "bool":
                out[i] = 0.75 if value else 0.25
            elif value in knob.special:
                out[i] = 0.0
            else:
                out[i] = self._unscale_value(knob, value)
        return out

    def _with_specials(self, config: Config, rng: np.random.Generator) -> Config:
        for knob in self.knobs:
            if knob.special and rng.random() < SPECIAL_PROBABILITY:
                config[knob.name] = knob.special[int(rng.integers(len(knob.special)))]
        return config

    def sample(self, rng: np.random.Generator, n: int, max_tries: int = 100) -> list[Config]:
        """``n`` random configs that satisfy the constraints (rejection sampling)."""
        out: list[Config] = []
        tries = 0
        while len(out) < n and tries < max_tries * max(n, 1):
            tries += 1
            config = self._with_specials(self.from_unit(rng.random(len(self.knobs))), rng)
            if self.is_valid(config):
                out.append(config)
        return out

    def neighbours(
        self, config: Config, rng: np.random.Generator, n: int, step: float = 0.1
    ) -> list[Config]:
        """Configs near ``config``: one to three knobs moved, for local search."""
        base = self.to_unit(config)
        out: list[Config] = []
        for _ in range(n):
            u = base.copy()
            moved = rng.choice(len(self.knobs), size=min(len(self.knobs), int(rng.integers(1, 4))))
            for i in moved:
                knob = self.knobs[i]
                if knob.numeric and config[knob.name] not in knob.special:
                    u[i] = u[i] + rng.normal(0.0, step)
                else:
                    u[i] = rng.random()
            candidate = self.from_unit(np.clip(u, 0.0, 1.0))
            for i in range(len(self.knobs)):
                knob = self.knobs[i]
                if i not in moved and config[knob.name] in knob.special:
                    candidate[knob.name] = config[knob.name]
            if self.is_valid(candidate):
                out.append(candidate)
        return out

    # -- model features -----------------------------------------------------------
    def encode(self, config: Config) -> np.ndarray:
        x = np.zeros(self.n_features)
        for i, knob in enumerate(self.knobs):
            at = self._offsets[i]
            value = config[knob.name]
            if knob.type == "enum":
                x[at + knob.values.index(str(value))] = 1.0
            elif knob.type == "bool":
                x[at] = 1.0 if value else 0.0
            elif value in knob.special:
                x[at + 1 + knob.special.index(value)] = 1.0
            else:
                x[at] = self._unscale_value(knob, value)
        return x

    def encode_many(self, configs: Iterable[Config]) -> np.ndarray:
        rows = [self.encode(c) for c in configs]
        return np.array(rows).reshape(len(rows), self.n_features)

    def key(self, config: Config) -> tuple[Value, ...]:
        """A hashable identity, to avoid proposing the same config twice."""
        return tuple(config[name] for name in self.names)
