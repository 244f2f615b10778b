"""Run one optimiser on one problem: autotune's own, and other libraries for reference.

Every competitor spends its budget through an ``Evaluator``, which checks the
config, applies the problem's deterministic noise and records what a tuning
session would: the observed value, the true value (for regret), the fidelity
and the time since the run started.

The baseline (the spec's defaults) is every competitor's first evaluation, as
in the real tuner. Special values outside a knob's [min, max] (``-1`` meaning
"auto", ``0`` meaning "off") reach Optuna and SMAC through a conditional
encoding, as MLOS gives them to ConfigSpace optimisers: a categorical switch
("range" or one of the special values) that the range parameter is conditional
on. skopt has no conditional parameters: its baseline has such values clamped to
the nearest bound (``to_skopt_point``), and it never proposes one. The peers do
not know the spec's cross-knob constraints, except skopt, which takes a
constraint function: a config that breaks one counts as a failed evaluation, as
when a server refuses it.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune._tmp import OwnedTempDir
from autotune.bench.problems import Problem
from autotune.optimizers import OPTIMIZERS, failure_penalty, make_optimizer
from autotune.optimizers.skopt import from_skopt_point, skopt_dimensions, to_skopt_point
from autotune.spec import Config

BUDGET_EPS = 1e-9


@dataclass(frozen=True)
class Evaluation:
    """One measurement. ``observed`` and ``true`` are None when the config broke a constraint."""

    config: Config
    observed: float | None
    true: float | None
    fidelity: float
    elapsed_s: float  # since the run started, at the end of this evaluation


def evaluation_cost(fidelity: float, overhead: float = 0.0) -> float:
    """What one measurement costs, in full-length evaluations.

    ``overhead`` is the fixed cost of any trial (applying the config, a
    warm-up) as a share of a full-length run's measuring time. With none, a
    run at fidelity 1/9 costs 1/9; on a real system it costs more, and a
    full-length run still costs exactly 1 either way.
    """
    return (fidelity + overhead) / (1.0 + overhead)


@dataclass
class Evaluator:
    """The problem as a competitor sees it: each call is one measurement, costing
    ``evaluation_cost(fidelity, overhead)``."""

    problem: Problem
    seed: int
    evaluations: list[Evaluation] = field(default_factory=list)
    cost: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    overhead: float = 0.0

    def __call__(self, config: Config, fidelity: float = 1.0) -> float | None:
        space = self.problem.space
        if set(config) != set(space.names):
            raise ValueError(f"config knobs {sorted(config)} are not the space's {space.names}")
        # Every value passes its knob's check, as anything applied to a real system does.
        checked: Config = {k.name: k.validate(config[k.name]) for k in space.knobs}
        if not 0.0 < fidelity <= 1.0:
            raise ValueError(f"fidelity {fidelity} is not in (0, 1]")
        observed = true = None
        if space.is_valid(checked):
            true = self.problem.objective(checked)
            observed = true + self.problem.noise(self.seed, len(self.evaluations), fidelity)
        self.cost += evaluation_cost(fidelity, self.overhead)
        self.evaluations.append(
            Evaluation(checked, observed, true, fidelity, time.perf_counter() - self.started)
        )
        return observed

    def spent(self, budget: float) -> bool:
        return self.cost >= budget - BUDGET_EPS

    def penalty(self) -> float:
        """A loss for a failed evaluation, for libraries that need a number: worse than any seen."""
        seen = [e.observed for e in self.evaluations if e.observed is not None]
        if not seen:
            return 1.0
        return failure_penalty(seen)


Competitor = Callable[[Problem, int, int, Evaluator], None]


def clamped_baseline(problem: Problem) -> Config:
    """The baseline as another library can express it: special values clamped into bounds."""
    space = problem.space
    return from_skopt_point(space, to_skopt_point(space, space.default()))


# -- autotune's own optimisers ----------------------------------------------------------
def run_autotune(name: str, problem: Problem, seed: int, budget: int, ev: Evaluator) -> None:
    """The real tuner's loop with one trial in flight: the baseline, then ``suggest`` and ``tell``.

    The optimiser is reseeded before each proposal with the number of trials
    so far, as the scheduler does.
    """
    optimizer = make_optimizer(name, problem.space, seed)
    # The budget is cost (a short run pays its share), as wall time is, with no count limit.
    optimizer.plan_budget(None, timed=True)
    baseline = problem.space.default()
    optimizer.tell(baseline, ev(baseline))
    while not ev.spent(budget):
        optimizer.reseed(len(ev.evaluations))
        suggestion = optimizer.suggest(1)[0]
        loss = ev(suggestion.config, suggestion.fidelity)
        optimizer.tell(suggestion.config, loss, suggestion.fidelity)


# -- scikit-optimize's gp_minimize ------------------------------------------------------
def skopt_constraint(problem: Problem) -> Callable[[list[Any]], bool] | None:
    """The spec's constraints as a check of an skopt point, or None if it has none.

    skopt calls it on each of 10,000 candidate points per step, so it rounds
    as ``from_skopt_point`` does but skips the per-value validation and starts
    from a precomputed environment of the untuned knobs' defaults.
    """
    space = problem.space
    spec = space.spec
    if not spec.constraints:
        return None
    base = spec.constraint_env({}, space.machine)
    numeric = [(i, k) for i, k in enumerate(space.knobs) if k.type != "enum"]

    def feasible(point: list[Any]) -> bool:
        env = dict(base)
        for i, knob in numeric:
            raw = point[i]
            if knob.type == "bool":
                env[knob.name] = 1.0 if raw else 0.0
                continue
            assert knob.min is not None and knob.max is not None
            if knob.type == "integer":
                value = float(min(max(round(float(raw)), knob.min), knob.max))
            else:
                value = min(max(float(f"{float(raw):.4g}"), knob.min), knob.max)
            env[knob.name] = knob.to_si(value)
        return all(c.holds(env) for c in spec.constraints)

    return feasible


def run_gp_minimize(problem: Problem, seed: int, budget: int, ev: Evaluator) -> None:
    """``skopt.gp_minimize`` with its defaults (10 random starts after the baseline,
    gp_hedge), given the spec's constraints as its ``space_constraint``."""
    from skopt import gp_minimize

    space = problem.space
    dims = skopt_dimensions(space)

    def objective(point: list[Any]) -> float:
        loss = ev(from_skopt_point(space, point))
        return ev.penalty() if loss is None else loss

    feasible = skopt_constraint(problem)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gp_minimize(
            objective,
            dims,
            n_calls=budget,
            # skopt's default of 10, unless the budget is too small for it.
            n_initial_points=min(10, max(budget - 1, 0)),
            x0=[to_skopt_point(space, clamped_baseline(problem))],
            random_state=seed,
            space_constraint=feasible,
        )


# -- special values, for the peers that can express them ---------------------------------
SWITCH = "{}__special"  # a categorical per knob with special values: "range" or one of them
RANGE = "range"


def _specials(problem: Problem) -> dict[str, dict[str, Any]]:
    """Knobs with special values outside their range (``-1`` = auto, ``0`` = off), each
    as ``{label: value}``: a peer's conditional switch chooses one of them or the range."""
    return {
        k.name: {str(v): v for v in k.special}
        for k in problem.space.knobs
        if k.special and k.type in ("integer", "real")
    }


def _switched(problem: Problem, raw: list[Any], modes: dict[str, str]) -> Config:
    """A config from a peer's point: the range values, then each chosen special value."""
    config = from_skopt_point(problem.space, raw)
    chosen = {name: mode for name, mode in modes.items() if mode != RANGE}
    if chosen:
        specials = _specials(problem)
        config.update({name: specials[name][mode] for name, mode in chosen.items()})
    return config


def _baseline_modes(problem: Problem) -> dict[str, str]:
    """The switch of each knob with special values, as the spec's default sets it."""
    default = problem.space.default()
    return {
        name: next((label for label, v in values.items() if v == default[name]), RANGE)
        for name, values in _specials(problem).items()
    }


# -- Optuna -------------------------------------------------------------------------------
GP_MAX_INTEGERS = 2**16
"""GPSampler enumerates every value of an integer (RocksDB's ``bytes_per_sync``,
0..16,777,216: 22 GB, killed); above this many it gets a real, rounded, as a user would."""


def _relaxed(knob: Any) -> bool:
    return knob.type == "integer" and int(knob.hi) - int(knob.lo) + 1 > GP_MAX_INTEGERS


def _optuna_config(problem: Problem, trial: Any, relax: bool = False) -> Config:
    """``relax``: integers of more than GP_MAX_INTEGERS values as reals (rounded)."""
    specials = _specials(problem)
    raw: list[Any] = []
    modes: dict[str, str] = {}
    for knob in problem.space.knobs:
        if knob.name in specials:
            modes[knob.name] = trial.suggest_categorical(
                SWITCH.format(knob.name), [RANGE, *specials[knob.name]]
            )
            if modes[knob.name] != RANGE:
                raw.append(knob.lo)  # a placeholder: the special value replaces it
                continue
        if knob.type == "enum":
            raw.append(trial.suggest_categorical(knob.name, list(knob.values)))
        elif knob.type == "bool":
            raw.append(trial.suggest_categorical(knob.name, [False, True]))
        elif knob.type == "integer" and relax and _relaxed(knob):
            raw.append(trial.suggest_float(knob.name, knob.lo, knob.hi, log=knob.scale == "log"))
        elif knob.type == "integer":
            assert knob.min is not None and knob.max is not None
            raw.append(
                trial.suggest_int(knob.name, int(knob.lo), int(knob.hi), log=knob.scale == "log")
            )
        else:
            assert knob.min is not None and knob.max is not None
            raw.append(trial.suggest_float(knob.name, knob.min, knob.max, log=knob.scale == "log"))
    return _switched(problem, raw, modes)


def _optuna_baseline(problem: Problem) -> dict[str, Any]:
    """The spec's defaults as Optuna parameters, special values through their switch."""
    default = problem.space.default()
    clamped = clamped_baseline(problem)
    specials = _specials(problem)
    params: dict[str, Any] = {}
    for name, mode in _baseline_modes(problem).items():
        params[SWITCH.format(name)] = mode
    for knob in problem.space.knobs:
        if params.get(SWITCH.format(knob.name), RANGE) == RANGE:
            value = default[knob.name]
            params[knob.name] = value if knob.name in specials else clamped[knob.name]
    return params


def optuna_sampler(name: str, problem: Problem, seed: int) -> Any:
    """Each Optuna competitor's sampler, as Optuna's docs advise for a 30-60 trial mixed
    problem: multivariate TPE (grouped, since the special-value switches make the space
    conditional), the univariate TPE for reference, and the GP sampler."""
    import optuna

    if name == "optuna-tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    if name == "optuna-tpe-uni":
        # Explicitly: since Optuna 5 a single-objective TPE is multivariate by default.
        return optuna.samplers.TPESampler(seed=seed, multivariate=False)
    if name == "optuna-gp":
        return optuna.samplers.GPSampler(seed=seed, deterministic_objective=problem.noise_sd == 0)
    raise ValueError(f"no Optuna competitor {name!r}")


def run_optuna(name: str, problem: Problem, seed: int, budget: int, ev: Evaluator) -> None:
    """An Optuna sampler (10 random startup trials, its default); the baseline is
    enqueued first."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(
            direction="minimize", sampler=optuna_sampler(name, problem, seed)
        )
        study.enqueue_trial(_optuna_baseline(problem))
        while not ev.spent(budget):
            trial = study.ask()
            loss = ev(_optuna_config(problem, trial, relax=name == "optuna-gp"))
            if loss is None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, loss)


# -- SMAC3 --------------------------------------------------------------------------------
SMAC_INITIAL_CONFIGS = 7
"""SMAC's HPO facade sizes its Sobol design as min(10·d, 25% of n_trials): 7 at 30
evaluations. It is fixed here so that the run does not depend on the budget."""


def smac_space(problem: Problem, seed: int) -> Any:
    """The problem as a ConfigSpace: special values through a categorical switch that
    the range parameter is conditional on (MLOS's encoding); defaults are the spec's."""
    from ConfigSpace import Categorical, ConfigurationSpace, EqualsCondition, Float, Integer

    specials = _specials(problem)
    modes = _baseline_modes(problem)
    clamped = clamped_baseline(problem)
    cs = ConfigurationSpace(seed=seed)
    for knob in problem.space.knobs:
        default = clamped[knob.name]
        if knob.type == "enum":
            cs.add(Categorical(knob.name, list(knob.values), default=default))
            continue
        if knob.type == "bool":
            cs.add(Categorical(knob.name, [False, True], default=default))
            continue
        log = knob.scale == "log"
        if knob.type == "integer":
            hp: Any = Integer(
                knob.name, (int(knob.lo), int(knob.hi)), default=int(default), log=log
            )
        else:
            assert knob.min is not None and knob.max is not None
            hp = Float(knob.name, (knob.min, knob.max), default=float(default), log=log)
        cs.add(hp)
        if knob.name in specials:
            switch = Categorical(
                SWITCH.format(knob.name), [RANGE, *specials[knob.name]], default=modes[knob.name]
            )
            cs.add(switch)
            cs.add(EqualsCondition(hp, switch, RANGE))
    return cs


def _range_value(values: dict[str, Any], knob: Any) -> Any:
    """A knob's value in a SMAC config; its range parameter is absent (inactive) while
    its switch holds a special value, and a placeholder stands in (``_switched``
    replaces it). ``knob.lo`` is only asked of numeric knobs, which have one."""
    try:
        return values[knob.name]
    except KeyError:
        return knob.lo


SMAC_MIN_BUDGET = 1 / 9
"""``smac3-mf``'s shortest run, as ``hyperband``'s (eta 3: runs at 1/9, 1/3 and 1)."""


def smac_facade(name: str, scenario: Any) -> Any:
    """Each SMAC competitor's facade, as SMAC's docs advise: ``smac3-bb`` is the
    black-box facade (a GP, refit after every trial); ``smac3-hpo`` the random-forest
    facade, refit after every trial too (its inherited default waits for 8);
    ``smac3-mf`` the multi-fidelity facade (the forest with Hyperband, eta 3, over the
    scenario's budgets), refit after every trial as well."""
    from smac import BlackBoxFacade, HyperparameterOptimizationFacade, MultiFidelityFacade

    facade: Any = {
        "smac3-bb": BlackBoxFacade,
        "smac3-hpo": HyperparameterOptimizationFacade,
        "smac3-mf": MultiFidelityFacade,
    }[name]

    def unused(config: Any, seed: int = 0, budget: float = 1.0) -> float:
        raise AssertionError("driven by ask/tell")

    extra: dict[str, Any] = {}
    if facade is MultiFidelityFacade:
        extra["intensifier"] = facade.get_intensifier(scenario, eta=3)
    return facade(
        scenario,
        unused,
        initial_design=facade.get_initial_design(scenario, n_configs=SMAC_INITIAL_CONFIGS),
        config_selector=facade.get_config_selector(scenario, retrain_after=1),
        overwrite=True,
        logging_level=logging.ERROR,
        **extra,
    )


def run_smac(name: str, problem: Problem, seed: int, budget: int, ev: Evaluator) -> None:
    """A SMAC3 facade, ask/tell, deterministic (no repeats); the baseline is its default
    and first config. Nothing is saved to disk per trial (``tell(save=False)``)."""
    from smac import Scenario
    from smac.runhistory import StatusType, TrialInfo, TrialValue

    space = problem.space
    cs = smac_space(problem, seed)
    # Owned: what a worker killed mid-run leaves behind, the next one sweeps.
    with OwnedTempDir(prefix="autotune-smac-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        multi = name == "smac3-mf"  # fidelity is the budget: a run at 1/9 costs 1/9
        scenario = Scenario(
            cs,
            deterministic=True,
            # Only a stop for SMAC's own loop (a short run counts one); this loop stops
            # itself when the cost is spent.
            n_trials=(10 * budget if multi else budget) + 10,
            seed=seed,
            output_directory=Path(tmp) / "smac",
            min_budget=SMAC_MIN_BUDGET if multi else None,
            max_budget=1.0 if multi else None,
        )
        smac = smac_facade(name, scenario)

        def tell(info: TrialInfo, loss: float | None) -> None:
            if loss is None:
                # A finite cost: SMAC's log-scaled encoder turns an infinite one into NaN.
                value = TrialValue(cost=ev.penalty(), status=StatusType.CRASHED)
            else:
                value = TrialValue(cost=loss)
            smac.tell(info, value, save=False)

        def config_of(values: dict[str, Any]) -> Config:
            modes = {n: str(values.get(SWITCH.format(n), RANGE)) for n in _specials(problem)}
            raw = [_range_value(values, k) for k in space.knobs]
            return _switched(problem, raw, modes)

        # SMAC would run its default config after its Sobol points; the baseline
        # comes first here, told to SMAC as a trial it did not ask for.
        default = cs.get_default_configuration()
        full = 1.0 if multi else None
        tell(TrialInfo(default, seed=seed, budget=full), ev(config_of(dict(default))))
        while not ev.spent(budget):
            info = smac.ask()
            fidelity = 1.0 if info.budget is None else min(1.0, float(info.budget))
            tell(info, ev(config_of(dict(info.config)), fidelity))


# -- the registry ---------------------------------------------------------------------------
def _named(run: Callable[..., None], name: str) -> Competitor:
    return lambda problem, seed, budget, ev: run(name, problem, seed, budget, ev)


EXTERNAL: dict[str, tuple[tuple[str, ...], Competitor]] = {
    # name: (modules that must import, runner)
    "skopt-gp_minimize": (("skopt",), run_gp_minimize),
    "optuna-tpe": (("optuna",), _named(run_optuna, "optuna-tpe")),
    "optuna-tpe-uni": (("optuna",), _named(run_optuna, "optuna-tpe-uni")),
    "optuna-gp": (("optuna", "torch"), _named(run_optuna, "optuna-gp")),
    "smac3-hpo": (("smac",), _named(run_smac, "smac3-hpo")),
    "smac3-bb": (("smac",), _named(run_smac, "smac3-bb")),
    "smac3-mf": (("smac",), _named(run_smac, "smac3-mf")),
}


def unavailable(name: str) -> str | None:
    """Why competitor ``name`` cannot run here, or None if it can."""
    if name in OPTIMIZERS:
        return None
    if name not in EXTERNAL:
        return "unknown competitor"
    for module in EXTERNAL[name][0]:
        try:
            __import__(module)
        except Exception as exc:  # an install can be broken in more ways than ImportError
            return f"{module} does not import: {exc}"
    return None


def competitor_names() -> list[str]:
    """Every autotune optimiser registered now, then the other libraries that import here."""
    return [*sorted(OPTIMIZERS), *(n for n in EXTERNAL if unavailable(n) is None)]


def run_competitor(name: str, problem: Problem, seed: int, budget: int) -> Evaluator:
    """Run ``name`` on ``problem`` until ``budget`` evaluations' worth of cost is spent."""
    ev = Evaluator(problem, seed)
    if name in OPTIMIZERS:
        run_autotune(name, problem, seed, budget, ev)
    elif name in EXTERNAL:
        EXTERNAL[name][1](problem, seed, budget, ev)
    else:
        raise ValueError(
            f"unknown competitor {name!r}; choose from {', '.join(competitor_names())}"
        )
    return ev
