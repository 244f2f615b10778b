"""An experiment's analysis, end to end: load, rank knobs, prune metrics, store the result.

The result is stored with the experiment (kind "analyze"), so later sessions can
tune just the knobs that mattered (``top_knobs``) without fitting anything again.
"""

from __future__ import annotations

from typing import Any

from threadpoolctl import threadpool_limits

from autotune.analysis._data import build_dataset
from autotune.analysis._metrics import prune_metrics
from autotune.analysis._ranking import combined_ranking, forest_ranking, lasso_ranking
from autotune.store import Experiment, Store
from autotune.tuner import TuningError, experiment_space

KIND = "analyze"


def analyze_experiment(
    store: Store, experiment: Experiment, top: int = 10, seed: int = 0
) -> dict[str, Any]:
    """Rank the experiment's knobs and prune its internal metrics; store and return the result.

    Every knob is ranked (``top`` only sets ``top_knobs`` in the result), so a
    stored analysis can answer for any k later.
    """
    if top < 1:
        raise TuningError(f"top must be at least 1, got {top}")
    space = experiment_space(experiment)
    data = build_dataset(experiment, space, store.trials(experiment, finished_only=True))
    internal = data.internal
    # Small matrices: thread pools cost more than they save, and one thread is reproducible.
    with threadpool_limits(limits=1):
        lasso = lasso_ranking(data)
        forest = forest_ranking(data, seed)
        pruned = prune_metrics(internal, data.metric_matrix(internal), seed)
    combined = combined_ranking(lasso, forest)
    result: dict[str, Any] = {
        "experiment": experiment.name,
        "objective": {
            "metric": experiment.objective_metric,
            "direction": experiment.direction,
            "loss": "the objective, negated when maximised: lower is better",
        },
        "n_trials": len(data.trials),
        "trials": data.trials,
        "knobs": data.knobs,
        "seed": seed,
        "top": top,
        "top_knobs": [r.name for r in combined[:top]],
        "lasso": [r.to_json() for r in lasso],
        "forest": [r.to_json() for r in forest],
        "combined": [r.to_json() for r in combined],
        "metrics": {
            "workload": data.workload,
            "internal": len(internal),
            **pruned.to_json(),
        },
    }
    store.add_analysis(experiment, KIND, result)
    return result


def top_knobs(store: Store, name: str, k: int) -> list[str]:
    """The ``k`` most important knobs of experiment ``name``, best first.

    From its latest stored analysis; the experiment is analysed (and the
    analysis stored) only when it has none yet.
    """
    if k < 1:
        raise TuningError(f"k must be at least 1, got {k}")
    experiment = store.require_experiment(name)
    stored = store.analyses(experiment, KIND)
    combined = stored[-1].result.get("combined") if stored else None
    if not isinstance(combined, list):
        combined = analyze_experiment(store, experiment)["combined"]
    return [str(entry["name"]) for entry in combined[:k]]
