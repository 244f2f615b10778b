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

    @property
    def numeric_columns(self) -> np.ndarray:
        """The feature column of each numeric knob's scaled value (not its special-value
        indicators): where a distance between configs means a step along a range."""
        return np.array(
            [int(self._offsets[i]) for i, k in enumerate(self.knobs) if k.numeric], dtype=int
        )

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
            step = knob.step
            whole = round(value / step) * step
            return int(min(max(whole, math.ceil(knob.min)), math.floor(knob.max)))
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

    # -- vectorised unit points -------------------------------------------------------
    # Model-based optimisers score thousands of candidates per suggestion; going
    # through one dict per candidate costs ~0.5 ms each, so candidates live as
    # arrays: U (n, knobs) unit coordinates and S (n, knobs) special-value index
    # (-1 for none). Only the few best candidates become configs and meet the
    # constraint checker.
    def sample_units(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        U = rng.random((n, len(self.knobs)))
        S = np.full((n, len(self.knobs)), -1, dtype=int)
        for i, knob in enumerate(self.knobs):
            if knob.numeric and knob.special:
                hit = rng.random(n) < SPECIAL_PROBABILITY
                S[hit, i] = rng.integers(len(knob.special), size=int(hit.sum()))
        return U, S

    def units_of(self, config: Config) -> tuple[np.ndarray, np.ndarray]:
        s = np.full(len(self.knobs), -1, dtype=int)
        for i, knob in enumerate(self.knobs):
            if knob.numeric and config[knob.name] in knob.special:
                s[i] = knob.special.index(config[knob.name])
        return self.to_unit(config), s

    def config_of_units(self, u: np.ndarray, s: np.ndarray) -> Config:
        config = self.from_unit(u)
        for i, knob in enumerate(self.knobs):
            if s[i] >= 0:
                config[knob.name] = knob.special[int(s[i])]
        return config

    def perturb_units(
        self,
        u: np.ndarray,
        s: np.ndarray,
        rng: np.random.Generator,
        n: int,
        step: float = 0.1,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``n`` neighbours of one unit point: one to three knobs moved each."""
        d = len(self.knobs)
        U = np.repeat(u[None, :], n, axis=0)
        S = np.repeat(s[None, :], n, axis=0)
        if d == 0 or n == 0:
            return U, S
        k = rng.integers(1, min(3, d) + 1, size=n)
        # The first k columns of a random permutation per row: k distinct knobs moved.
        ranks = np.argsort(rng.random((n, d)), axis=1).argsort(axis=1)
        moved = ranks < k[:, None]
        numeric = np.array([knob.numeric for knob in self.knobs])
        has_special = np.array([knob.numeric and bool(knob.special) for knob in self.knobs])
        nudge = moved & numeric[None, :] & (S < 0)
        U = np.where(nudge, np.clip(U + rng.normal(0.0, step, size=U.shape), 0.0, 1.0), U)
        redraw = moved & ~nudge
        U = np.where(redraw, rng.random(U.shape), U)
        S = np.where(redraw, -1, S)
        # A nudged knob with special values sometimes jumps onto one.
        jump = nudge & has_special[None, :] & (rng.random(U.shape) < SPECIAL_PROBABILITY / 2)
        for i in np.flatnonzero(jump.any(axis=0)):
            rows = jump[:, i]
            S[rows, i] = rng.integers(len(self.knobs[i].special), size=int(rows.sum()))
        return U, S

    def features_of_units(self, U: np.ndarray, S: np.ndarray) -> np.ndarray:
        """What ``encode(config_of_units(u, s))`` gives, for many points at once."""
        n = U.shape[0]
        X = np.zeros((n, self.n_features))
        for i, knob in enumerate(self.knobs):
            at = int(self._offsets[i])
            u = np.clip(U[:, i], 0.0, 1.0)
            if knob.type == "enum":
                idx = np.minimum((u * len(knob.values)).astype(int), len(knob.values) - 1)
                X[np.arange(n), at + idx] = 1.0
            elif knob.type == "bool":
                X[:, at] = (u >= 0.5).astype(float)
            else:
                X[:, at] = self._snap_units(knob, u)
                special = S[:, i] >= 0
                if special.any():
                    X[special, at] = 0.0
                    X[special, at + 1 + S[special, i]] = 1.0
        return X

    def _snap_units(self, knob: Knob, u: np.ndarray) -> np.ndarray:
        """Unit coordinates after the rounding ``from_unit`` applies (integers, 4 digits)."""
        assert knob.min is not None and knob.max is not None
        lo, hi = knob.min, knob.max
        if hi == lo:
            return np.full_like(u, 0.5)
        if knob.scale == "log":
            value = np.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        else:
            value = lo + u * (hi - lo)
        if knob.type == "integer":
            value = np.clip(np.round(value / knob.step) * knob.step, math.ceil(lo), math.floor(hi))
        else:
            mag = np.where(value != 0, np.floor(np.log10(np.abs(value) + 1e-300)) - 3, 0.0)
            value = np.clip(np.round(value / 10.0**mag) * 10.0**mag, lo, hi)
        if knob.scale == "log":
            value = np.maximum(value, lo)
            return np.asarray((np.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo)))
        return np.asarray((value - lo) / (hi - lo))

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
