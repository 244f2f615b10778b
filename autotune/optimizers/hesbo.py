"""HeSBO: Bayesian optimisation in a random low-dimensional projection of a large space.

With dozens of knobs a GP needs far more trials than a tuning session has
before its model says anything useful. HeSBO (Nayebi et al., ICML 2019) hashes
every knob onto one of ``dim`` synthetic coordinates with a random sign, and an
ordinary optimiser searches that small cube instead. LlamaTune (Kanellis et
al., VLDB 2022) showed that this works for database knobs, and that biasing
the lowest share of each knob's range towards its special values (``0``,
``-1``) finds them where a uniform draw never would.

The mapping, with ``h(i)`` the bucket and ``s(i)`` the sign of original knob
``i``, both drawn from ``np.random.default_rng(seed)`` so a resumed experiment
rebuilds the same projection:

- up: ``u_i = (s(i) * y[h(i)] + 1) / 2``; for a numeric knob with special values
  the lowest ``SPECIAL_PROBABILITY`` of ``u_i`` picks a special value and the
  rest is rescaled onto the normal range; then ``space.from_unit``.
- down, for configs this optimiser did not propose (the baseline, or history
  told again after a restart): the least-squares back-projection
  ``y_j = mean over i in bucket j of s(i) * (2 u_i - 1)``, clipped to [-1, 1].
  Since ``s(i)^2 = 1`` the mean minimises ``sum (s(i) y_j - (2 u_i - 1))^2``.
  It is exact for continuous knobs up to rounding; integer, enum, bool and
  special values only locate ``u_i`` within a cell, so it is approximate there.

A projected config that breaks a constraint is told to the inner optimiser as
a failure, and one that lands on a config already measured as that config's
outcome, so the inner model learns where its proposals go. These extra
observations are not in the results store: an optimiser rebuilt after a
restart lacks them, which costs a few asks, never correctness.

Buckets are balanced (a seeded permutation of ``i mod dim``) rather than
independent draws, so no synthetic coordinate is left without a knob.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from autotune.optimizers._base import Optimizer
from autotune.space import SPECIAL_PROBABILITY, Space
from autotune.spec import Config, Knob, Spec

Key = tuple[object, ...]


class HeSBOOptimizer(Optimizer):
    """An inner optimiser (GP by default) over a hashed ``dim``-dimensional embedding."""

    name = "hesbo"

    max_rounds = 8
    """How many times one ``ask`` goes back to the inner optimiser for configs that
    are valid and new, before the rest come from random sampling."""

    def __init__(
        self,
        space: Space,
        seed: int = 0,
        inner: str = "gp",
        dim: int = 16,
        inner_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(space, seed)
        # Lazily: the registry imports this module.
        from autotune.optimizers import OPTIMIZERS

        if dim < 1:
            raise ValueError(f"hesbo: dim must be at least 1, not {dim}")
        if inner not in OPTIMIZERS or inner == self.name:
            choices = ", ".join(sorted(set(OPTIMIZERS) - {self.name}))
            raise ValueError(f"hesbo: unknown inner optimizer {inner!r}; choose one of {choices}")
        self.dim = max(1, min(dim, len(space)))
        rng = np.random.default_rng(seed)
        n = len(space)
        self.bucket_: np.ndarray = rng.permutation(np.arange(n) % self.dim)
        self.sign_: np.ndarray = rng.choice(np.array([-1.0, 1.0]), size=n)
        self._counts = np.bincount(self.bucket_, minlength=self.dim).astype(float)
        self._special = [i for i, k in enumerate(space.knobs) if k.numeric and k.special]
        self.low_names = [f"y{j}" for j in range(self.dim)]
        low_spec = Spec(
            system=f"hesbo-{self.dim}",
            knobs={
                name: Knob(name=name, type="real", default=0.0, min=-1.0, max=1.0)
                for name in self.low_names
            },
            description="HeSBO embedding: synthetic coordinates in [-1, 1]",
        )
        self.low_space = Space(low_spec, self.low_names, space.machine)
        self.inner: Optimizer = OPTIMIZERS[inner](
            self.low_space, seed=seed, **(inner_options or {})
        )
        # Low-dim points behind the configs this instance proposed: telling them
        # back is exact, where the back-projection is only approximate.
        self._proposed: dict[Key, np.ndarray] = {}
        # The last outcome per config, for low-dim points that land on a config
        # already measured.
        self._outcome: dict[Key, tuple[float | None, float]] = {}

    # -- the projection ---------------------------------------------------------
    def project(self, y: Sequence[float] | np.ndarray) -> Config:
        """The config for low-dim point ``y`` (coordinates in [-1, 1])."""
        low = np.clip(np.asarray(y, dtype=float), -1.0, 1.0)
        u = np.clip((self.sign_ * low[self.bucket_] + 1.0) / 2.0, 0.0, 1.0)
        specials: Config = {}
        p = SPECIAL_PROBABILITY
        for i in self._special:
            knob = self.space.knobs[i]
            if u[i] < p:
                m = len(knob.special)
                specials[knob.name] = knob.special[min(int(u[i] / p * m), m - 1)]
                u[i] = 0.0
            else:
                u[i] = (u[i] - p) / (1.0 - p)
        config = self.space.from_unit(u)
        config.update(specials)
        return config

    def _unit(self, config: Config) -> np.ndarray:
        """Each knob's coordinate on the biased unit scale ``project`` uses."""
        u = self.space.to_unit(config)
        p = SPECIAL_PROBABILITY
        for i in self._special:
            knob: Knob = self.space.knobs[i]
            value = config[knob.name]
            if value in knob.special:
                u[i] = p * (knob.special.index(value) + 0.5) / len(knob.special)
            else:
                u[i] = p + (1.0 - p) * u[i]
        return np.asarray(np.clip(u, 0.0, 1.0))

    def back_project(self, config: Config) -> np.ndarray:
        """The least-squares low-dim point for ``config``; deterministic, so a
        rebuilt optimiser told the same history sees the same points."""
        t = self.sign_ * (2.0 * self._unit(config) - 1.0)
        sums = np.bincount(self.bucket_, weights=t, minlength=self.dim)
        y = np.divide(sums, self._counts, out=np.zeros(self.dim), where=self._counts > 0)
        return np.asarray(np.clip(y, -1.0, 1.0))

    def low_point(self, config: Config) -> np.ndarray:
        """The low-dim point proposed for ``config`` if this instance proposed it,
        else its back-projection."""
        known = self._proposed.get(self.space.key(config))
        return known.copy() if known is not None else self.back_project(config)

    def _low_config(self, y: np.ndarray) -> Config:
        return {name: float(v) for name, v in zip(self.low_names, y, strict=True)}

    def _vector(self, low: Config) -> np.ndarray:
        return np.array([float(low[name]) for name in self.low_names])

    # -- ask/tell ------------------------------------------------------------------
    def tell(self, config: Config, loss: float | None, fidelity: float = 1.0) -> None:
        """Record the outcome, and tell the inner optimiser at ``config``'s low-dim point."""
        super().tell(config, loss, fidelity)
        self._outcome[self.space.key(config)] = (loss, fidelity)
        self.inner.tell(self._low_config(self.low_point(config)), loss, fidelity)

    def ask(self, n: int = 1, pending: Sequence[Config] = ()) -> list[Config]:
        """Project the inner optimiser's proposals up until ``n`` are valid and new;
        ``pending`` go down as the inner optimiser's pending points."""
        taken = self.seen() | {self.space.key(c) for c in pending}
        low_pending = [self._low_config(self.low_point(c)) for c in pending]
        out: list[Config] = []
        for _ in range(self.max_rounds):
            if len(out) == n:
                break
            try:
                lows = self.inner.ask(n - len(out), pending=low_pending)
            except RuntimeError:  # the inner space ran out: only random sampling is left
                break
            for low in lows:
                config = self.project(self._vector(low))
                key = self.space.key(config)
                if not self.space.is_valid(config):
                    # A failure teaches the inner model to avoid this region.
                    self.inner.tell(low, None)
                elif key in self._outcome:
                    # Lands on a config already measured: the inner learns its outcome.
                    self.inner.tell(low, *self._outcome[key])
                elif key in taken or len(out) == n:
                    low_pending.append(low)  # in flight or picked: look elsewhere
                else:
                    taken.add(key)
                    out.append(config)
                    low_pending.append(low)
                    self._proposed[key] = self._vector(low)
        if len(out) < n:
            out += self._fresh([], n - len(out), exclude=[*pending, *out])
        return out

    def reseed(self, *stream: int) -> None:
        super().reseed(*stream)
        self.inner.reseed(*stream)

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.inner.load_state(state.get("inner", {}))
