"""The optimiser seam: ask for configs, tell their loss.

Losses are minimised; the tuner turns "maximize tps" into a loss. A failed
trial is told as ``None`` so each optimiser decides how failures teach it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from autotune.space import Space
from autotune.spec import Config


def failure_penalty(ok: Sequence[float]) -> float:
    """The loss a failed trial is told as: worse than the worst seen, so a model
    learns to keep away from configs that break the system."""
    worst, best = max(ok), min(ok)
    return worst + max(worst - best, abs(worst) * 0.1, 1e-9)


class SpaceExhausted(RuntimeError):
    """Every valid config of a (small, discrete) space has been tried: the search is over."""


@dataclass(frozen=True)
class Suggestion:
    """A config to measure, and how: ``fidelity`` is the fraction of the full
    workload duration (multi-fidelity optimisers screen with short runs);
    ``repeat`` marks a deliberate re-measurement of a config already tried."""

    config: Config
    fidelity: float = 1.0
    repeat: bool = False


class Optimizer(ABC):
    """Ask/tell optimiser over a Space. Subclasses implement ``ask``."""

    name: ClassVar[str]

    def __init__(self, space: Space, seed: int = 0) -> None:
        self.space = space
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.history_: list[tuple[Config, float | None]] = []
        # Every observation with its fidelity; history_ is the same without it.
        self.observations_: list[tuple[Config, float | None, float]] = []
        self._seen_keys: set[tuple[object, ...]] = set()  # kept up to date by tell()
        self.floor: float | None = None  # see plan_safety
        self.safe_centre: Config | None = None

    @abstractmethod
    def ask(self, n: int = 1, pending: Sequence[Config] = ()) -> list[Config]:
        """Return ``n`` distinct configs to try next, none seen and none ``pending``.

        ``pending`` are configs other agents are measuring right now; a batch
        optimiser should spread away from them as well as from each other.
        """

    def suggest(self, n: int = 1, pending: Sequence[Suggestion] = ()) -> list[Suggestion]:
        """Like ``ask``, but each config carries its fidelity; optimisers that
        choose run lengths (Hyperband) override this, the rest run full length."""
        return [Suggestion(c) for c in self.ask(n, [p.config for p in pending])]

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state worth keeping across tuner restarts.

        Everything derivable from the told history is rebuilt by telling it
        again; this holds only what is costly to recompute (fitted
        hyperparameters) or not in the history at all (which arm proposed what).
        """
        return {}

    def load_state(self, state: dict[str, Any]) -> None:  # noqa: B027 (an optional hook)
        """Restore ``state_dict()`` output; called before the history is told again."""

    def plan_budget(self, trials: int | None, timed: bool) -> None:  # noqa: B027 (optional)
        """Told by the tuner what a session may spend: at most ``trials`` search
        trials (None: no count limit), and whether wall time bounds it too.

        A short run costs a share of a full one only when time is the budget;
        under a trial count it costs a whole trial. Optimisers that choose
        short runs only where they pay (``auto``) listen; the rest ignore it.
        """

    def plan_safety(self, floor: float | None, around: Config | None = None) -> None:
        """Told by the tuner the loss past which a config counts as ruinous (the
        baseline's, less the session's safety margin); None: no floor.

        Optimisers with a model (``gp``, ``auto``) keep away from configs it
        predicts past the floor, and start from a design around ``around`` (the
        baseline as it ran; None: the defaults); the rest ignore it. Benchmarks
        never set it, so they compare searches.
        """
        self.floor = floor
        self.safe_centre = None if around is None else dict(around)

    def reseed(self, *stream: int) -> None:
        """Start a fresh random stream, keeping ``seed`` (and so any initial design).

        A tuner that rebuilds its optimiser from the store before each proposal
        calls this with, say, the number of trials so far; otherwise every
        rebuild would replay the same random draws.
        """
        self.rng = np.random.default_rng([self.seed, *stream])

    def tell(self, config: Config, loss: float | None, fidelity: float = 1.0) -> None:
        """Record an outcome; ``loss`` is None for a failed trial."""
        self.history_.append((dict(config), loss))
        self.observations_.append((dict(config), loss, fidelity))
        self._seen_keys.add(self.space.key(config))

    def seen(self) -> set[tuple[object, ...]]:
        """Keys of every config told so far (a copy, for the caller to extend)."""
        return set(self._seen_keys)

    def _fresh(
        self, candidates: list[Config], n: int, exclude: Sequence[Config] = ()
    ) -> list[Config]:
        """Keep the first ``n`` candidates that are new, falling back to random ones."""
        seen = self.seen() | {self.space.key(c) for c in exclude}
        out: list[Config] = []
        for config in candidates:
            key = self.space.key(config)
            if key not in seen:
                seen.add(key)
                out.append(config)
            if len(out) == n:
                return out
        for config in self.space.sample(self.rng, 20 * n):
            key = self.space.key(config)
            if key not in seen:
                seen.add(key)
                out.append(config)
            if len(out) == n:
                break
        if len(out) < n:
            raise SpaceExhausted("the search space has no untried valid config left")
        return out
