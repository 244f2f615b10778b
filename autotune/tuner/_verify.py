"""Paired verification: a session's claim measured head to head, until it is sure enough.

One trial on a shared host can be 25% off, and the host drifts by as much within
minutes, so the best single run of a search is mostly luck (TUNA, EuroSys'25:
63% of tuned "best" configs lose 30% or more when redeployed). So a claim is
only made from *rounds*: each round runs every arm (the default, the top
contenders, pgtune) once, back to back, the order rotating from round to round
(A B C, B C A, C A B, …), so drift and carry-over fall on every arm alike. An
arm's ratio to the default is taken per round and then averaged, which cancels
whatever the host did between rounds (DarwinGame, 2025, compares configs head
to head under the same interference for the same reason).

The estimate is the geometric mean of the per-round ratios and its 95% CI a
t-interval on their logarithms: with 3 to 10 rounds a bootstrap of so few
pairs has too few distinct resamples to be trusted. Rounds are added until
the best contender's CI is narrower than ±``precision`` (and pgtune, where it
leads, is decided too) or ``max_rounds`` is reached. A gain whose CI includes 1
is no gain: the verdict is to keep the default.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from scipy import stats

from autotune.spec import Config
from autotune.store import Experiment, Trial
from autotune.tuner._robust import config_key

REFERENCE = "default"  # the baseline: the spec's defaults, or what the target ran at start
PGTUNE = "pgtune"
SPEC_DEFAULTS = "spec defaults"  # a second yardstick when the baseline is not the defaults
REFERENCE_METRIC = "reference.objective"  # the default's value beside a run on a twin
PRECISION = 0.03  # stop once the best's CI is at most ±3%
MIN_ROUNDS = 3
MAX_ROUNDS = 10
CONTENDERS = 2  # tuned configs verified besides the default (and pgtune)
MIN_TRIALS = 10  # sessions shorter than this end without a verification
CONFIDENCE = 0.95


@dataclass(frozen=True)
class VerifyPolicy:
    """How a verification runs; kept in an experiment's settings as ``verify``."""

    precision: float = PRECISION
    min_rounds: int = MIN_ROUNDS
    max_rounds: int = MAX_ROUNDS
    contenders: int = CONTENDERS
    pgtune: bool = True
    # Each arm measured beside a twin of the system running the default, in alternating
    # slices (``Agent.run_pair``); only where the agent can start a twin (a sandbox).
    twin: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.precision < 1:
            raise ValueError(f"--precision must be between 0 and 1, not {self.precision}")
        if self.min_rounds < 2:
            raise ValueError(f"verification needs at least 2 rounds, not {self.min_rounds}")
        if self.max_rounds < self.min_rounds:
            raise ValueError(
                f"--max-rounds {self.max_rounds} is below the minimum of {self.min_rounds}"
            )
        if self.contenders < 1:
            raise ValueError(f"verification needs at least 1 contender, not {self.contenders}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VerifyPolicy:
        return cls(**{k: data[k] for k in asdict(cls()) if k in data})


@dataclass(frozen=True)
class Arm:
    """One configuration to verify; ``config`` names only the knobs it sets."""

    label: str
    config: Config
    note: str = ""


@dataclass(frozen=True)
class PairedRatio:
    """An arm against the reference over the rounds both ran in (> 1 is better)."""

    ratio: float  # geometric mean of the per-round ratios
    low: float
    high: float
    pairs: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def significant(self) -> bool:
        """The CI leaves out 1: better, or worse, beyond what the rounds disagree on."""
        return self.low > 1 or self.high < 1

    def to_json(self) -> dict[str, Any]:
        return {"ratio": self.ratio, "ci": [self.low, self.high], "pairs": self.pairs}


def paired_ratio(
    values: Sequence[float | None],
    reference: Sequence[float | None],
    higher_is_better: bool = True,
    confidence: float = CONFIDENCE,
) -> PairedRatio | None:
    """``values[i]`` against ``reference[i]``, measured in the same round ``i``.

    Rounds where either failed (None, NaN) or read non-positive are dropped;
    None below two pairs. The ratio is turned so that > 1 is better.
    """
    if len(values) != len(reference):
        raise ValueError(f"paired runs need equal lengths, got {len(values)} and {len(reference)}")
    logs = []
    for a, b in zip(values, reference, strict=True):
        if a is None or b is None or not (a > 0 and b > 0) or math.isnan(a) or math.isnan(b):
            continue
        logs.append(math.log(a / b) * (1.0 if higher_is_better else -1.0))
    n = len(logs)
    if n < 2:
        return None
    mean = statistics.fmean(logs)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * statistics.stdev(logs) / math.sqrt(n)
    return PairedRatio(math.exp(mean), math.exp(mean - half), math.exp(mean + half), n)


def rotation(n_arms: int, round_index: int) -> list[int]:
    """The arm order of round ``round_index`` (from 0): each round starts one arm later,
    a Latin square over every ``n_arms`` rounds."""
    return [(round_index + i) % n_arms for i in range(n_arms)]


@dataclass(frozen=True)
class VerifyRun:
    """One verification run: an arm in a round; ``value`` None if it failed.

    ``reference`` is the default's value measured beside it, on a twin of the
    system, in alternating slices of the same minutes (``Agent.run_pair``): the
    arm's ratio is then read within the run itself.
    """

    round: int  # from 1
    arm: str
    value: float | None
    error: str | None = None
    reference: float | None = None


@dataclass(frozen=True)
class ArmResult:
    label: str
    values: tuple[float, ...]  # successful runs, by round
    failed: int
    versus: PairedRatio | None  # against the reference; None for the reference itself

    @property
    def runs(self) -> int:
        return len(self.values) + self.failed

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "runs": self.runs,
            "failed": self.failed,
            "median": self.median,
            "values": list(self.values),
            **(self.versus.to_json() if self.versus else {"ratio": None, "ci": None, "pairs": 0}),
            "significant": None if self.versus is None else self.versus.significant,
        }


@dataclass(frozen=True)
class Verification:
    """Where a verification stands: every arm against the default, and the best contender."""

    arms: tuple[ArmResult, ...]
    candidates: tuple[str, ...]  # labels the best is chosen from (the tuned configs)
    rounds: int  # rounds every arm has finished
    precision: float
    stopped: str = ""  # why no more rounds run; "" while it may go on
    configs: dict[str, Config] = field(default_factory=dict)
    reference_name: str = "the default"  # how the verdict names the reference arm

    def arm(self, label: str) -> ArmResult | None:
        return next((a for a in self.arms if a.label == label), None)

    @property
    def best(self) -> ArmResult | None:
        """The candidate with the highest ratio to the default (ties: the first listed)."""
        measured = [a for a in self.arms if a.label in self.candidates and a.versus is not None]
        return max(measured, key=lambda a: a.versus.ratio, default=None)  # type: ignore[union-attr]

    @property
    def verified(self) -> bool:
        """The best's CI lies above 1: a gain that held up in paired rounds."""
        best = self.best
        return best is not None and best.versus is not None and best.versus.low > 1

    @property
    def verdict(self) -> str:
        best = self.best
        if best is None or best.versus is None:
            return "not verified: too few successful rounds"
        pr = best.versus
        ci = f"95% CI {pr.low:.3f}–{pr.high:.3f}, {pr.pairs} paired rounds"
        ref = self.reference_name
        if pr.low > 1:
            return f"verified gain: {best.label} is {pr.ratio:.3f}× {ref} ({ci})" + self._pgtune()
        return f"no verified gain: keep {ref} ({best.label} is {pr.ratio:.3f}×, {ci})" + (
            self._pgtune()
        )

    def _pgtune_leading(self) -> PairedRatio | None:
        """pgtune's ratio when its point estimate is ahead of the best's."""
        arm, best = self.arm(PGTUNE), self.best
        pr = None if arm is None else arm.versus
        if pr is None or best is None or best.versus is None:
            return None
        return pr if pr.ratio > best.versus.ratio else None

    @property
    def pgtune_ahead(self) -> PairedRatio | None:
        """pgtune's ratio when the yardstick was verified a gain and ahead of the best: the
        user should hear it from the rounds that measured it, not find it in the table."""
        pr = self._pgtune_leading()
        return pr if pr is not None and pr.low > 1 else None

    def pgtune_open(self, precision: float) -> bool:
        """pgtune is ahead of the best but undecided: its CI takes in 1 and is wider than
        ±precision, so another round could still make it the verdict's news."""
        pr = self._pgtune_leading()
        return pr is not None and pr.low <= 1 and pr.half_width > precision

    def _pgtune(self) -> str:
        pr = self.pgtune_ahead
        if pr is None:
            return ""
        return (
            f"; but pgtune's config is a verified {pr.ratio:.3f}× {self.reference_name} "
            f"(95% CI {pr.low:.3f}–{pr.high:.3f}), ahead of it"
        )

    def to_json(self) -> dict[str, Any]:
        best = self.best
        return {
            "rounds": self.rounds,
            "precision": self.precision,
            "stopped": self.stopped,
            "reference": REFERENCE,
            "best": None if best is None else best.label,
            "verified": self.verified,
            "verdict": self.verdict,
            "arms": [a.to_json() for a in self.arms],
            "configs": self.configs,
        }


def _by_round(
    runs: Sequence[VerifyRun], label: str, rounds: int, per_reference: bool = False
) -> list[float | None]:
    """One value per round (None: none, or it failed); with ``per_reference``, each as a
    ratio to the default measured beside it (1 for the default itself)."""
    values: list[float | None] = [None] * rounds
    for run in runs:
        if not 1 <= run.round <= rounds:
            continue
        if per_reference and label == REFERENCE:
            values[run.round - 1] = 1.0
        elif run.arm == label:
            value = run.value
            if per_reference:
                ref = run.reference
                value = None if value is None or not ref else value / ref
            values[run.round - 1] = value
    return values


def _twin(runs: Sequence[VerifyRun]) -> bool:
    """Whether the runs were measured beside a twin running the default."""
    return any(r.reference is not None for r in runs)


def _pair(
    runs: Sequence[VerifyRun], a: str, b: str, rounds: int, higher: bool
) -> PairedRatio | None:
    twin = _twin(runs)
    return paired_ratio(_by_round(runs, a, rounds, twin), _by_round(runs, b, rounds, twin), higher)


def complete_rounds(runs: Sequence[VerifyRun], labels: Sequence[str]) -> int:
    """How many rounds, from the first, every arm has a finished run in (beside a twin,
    the default has none of its own: every run measured it)."""
    if _twin(runs):
        labels = [label for label in labels if label != REFERENCE]
    done = {(r.round, r.arm) for r in runs}
    n = 0
    while labels and all((n + 1, label) in done for label in labels):
        n += 1
    return n


def summarize_verification(
    arms: Sequence[Arm], runs: Sequence[VerifyRun], direction: str, policy: VerifyPolicy
) -> Verification:
    """Every arm against the default over the complete rounds, and whether to stop.

    The best is chosen among the tuned configs only: the default is the reference
    and pgtune a yardstick, not autotune's recommendation.
    """
    labels = [a.label for a in arms]
    candidates = [label for label in labels if label not in (REFERENCE, PGTUNE, SPEC_DEFAULTS)]
    rounds = complete_rounds(runs, labels)
    higher = direction == "maximize"
    results = []
    twin = _twin(runs)
    for label in labels:
        if twin and label == REFERENCE:  # the default as measured beside every run
            mine = [
                VerifyRun(r.round, REFERENCE, r.reference)
                for r in runs
                if r.round <= rounds and r.reference is not None
            ]
        else:
            mine = [r for r in runs if r.arm == label and r.round <= rounds]
        values = tuple(
            float(r.value) for r in sorted(mine, key=lambda r: r.round) if r.value is not None
        )
        versus = None if label == REFERENCE else _pair(runs, label, REFERENCE, rounds, higher)
        results.append(ArmResult(label, values, sum(r.value is None for r in mine), versus))
    verification = Verification(
        tuple(results),
        tuple(candidates),
        rounds,
        policy.precision,
        configs={a.label: dict(a.config) for a in arms},
        reference_name="the current config" if SPEC_DEFAULTS in labels else "the default",
    )
    return _with_stop(verification, policy)


def _with_stop(v: Verification, policy: VerifyPolicy) -> Verification:
    """The stopping rule: at least ``min_rounds``; then until the best's CI is at most
    ±precision wide, or ``max_rounds``. While pgtune leads the best and is neither a
    verified gain nor known to ±precision, rounds go on: stopping then would leave
    unsaid a gain the user could take (P1 select-large: 1.029×, CI 0.995–1.064 after
    3 rounds)."""
    reason = ""
    best = v.best
    if v.rounds >= policy.min_rounds:
        if (
            best is not None
            and best.versus is not None
            and best.versus.half_width <= policy.precision
            and not v.pgtune_open(policy.precision)
        ):
            reason = f"precision ±{policy.precision * 100:g}% reached"
        elif v.rounds >= policy.max_rounds:
            reason = f"round cap of {policy.max_rounds} reached"
    return dataclasses.replace(v, stopped=reason)


def verify_policy(experiment: Experiment) -> VerifyPolicy | None:
    """The experiment's verification policy; None: it ends without one."""
    data = experiment.settings.get("verify")
    return VerifyPolicy.from_json(data) if isinstance(data, dict) else None


def verify_batch(trials: Sequence[Trial]) -> list[Trial]:
    """The current verification's runs: the verify trials after the last search trial
    (a resume that searched more starts a new verification; the old one stays stored)."""
    last_search = max((t.number for t in trials if t.searched), default=0)
    return [t for t in trials if t.phase == "verify" and t.number > last_search]


def arms_of(batch: Sequence[Trial]) -> list[Arm]:
    """A stored verification's arms, as its runs name them: the default first, the
    contenders in the order first run, pgtune last."""
    configs: dict[str, Config] = {}
    for t in sorted(batch, key=lambda t: t.number):
        configs.setdefault(str(t.arm), dict(t.config))
    order = sorted(configs, key=lambda label: (label != REFERENCE, label == PGTUNE))
    return [Arm(label, configs[label]) for label in order]


def verify_runs(batch: Sequence[Trial]) -> list[VerifyRun]:
    """The finished runs of a batch, failed ones as None."""
    return [
        VerifyRun(
            int(t.round or 0),
            str(t.arm),
            t.objective if t.ok else None,
            t.error,
            t.metrics.get(REFERENCE_METRIC) if t.ok else None,
        )
        for t in batch
        if t.finished
    ]


def next_verify_run(arms: Sequence[Arm], batch: Sequence[Trial]) -> tuple[int, Arm]:
    """The next (round, arm) to run: the first, in the rotating order, not proposed yet."""
    proposed = {(t.round, t.arm) for t in batch}
    round_ = 1
    while True:
        for index in rotation(len(arms), round_ - 1):
            if (round_, arms[index].label) not in proposed:
                return round_, arms[index]
        round_ += 1


def paired_between(
    runs: Sequence[VerifyRun], a: str, b: str, rounds: int, direction: str
) -> PairedRatio | None:
    """Arm ``a`` against arm ``b`` (the best against pgtune, say), paired by round."""
    return _pair(runs, a, b, rounds, direction == "maximize")


def verify_reserve_s(policy: VerifyPolicy, search: Sequence[Trial]) -> float:
    """Wall seconds the verification's minimum rounds will take, from the search's mean
    trial: what a time budget keeps back for it."""
    walls = [
        (t.finished_at - t.started_at).total_seconds()
        for t in search
        if t.ok and t.full and t.started_at is not None and t.finished_at is not None
    ]
    if not walls:
        return 0.0
    configs = {config_key(t.config) for t in search if t.ok and t.full and not t.is_baseline}
    arms = 1 + min(policy.contenders, len(configs)) + int(policy.pgtune)
    # Beside a twin, the default is measured within every other arm's run, which takes
    # about twice as long.
    runs = 2 * (arms - 1) if policy.twin else arms
    return runs * policy.min_rounds * statistics.fmean(walls)


__all__ = [
    "CONTENDERS",
    "MAX_ROUNDS",
    "MIN_ROUNDS",
    "MIN_TRIALS",
    "PGTUNE",
    "PRECISION",
    "REFERENCE",
    "REFERENCE_METRIC",
    "Arm",
    "ArmResult",
    "PairedRatio",
    "Verification",
    "VerifyPolicy",
    "VerifyRun",
    "arms_of",
    "complete_rounds",
    "next_verify_run",
    "paired_between",
    "paired_ratio",
    "rotation",
    "summarize_verification",
    "verify_batch",
    "verify_policy",
    "verify_reserve_s",
    "verify_runs",
]
