"""OtterTune's analyses of a finished experiment: which knobs matter, which metrics to keep."""

from autotune.analysis._analyze import KIND, analyze_experiment, top_knobs
from autotune.analysis._data import MIN_TRIALS, Dataset, build_dataset
from autotune.analysis._metrics import Cluster, Pruned, prune_metrics
from autotune.analysis._ranking import Ranked, combined_ranking, forest_ranking, lasso_ranking

__all__ = [
    "KIND",
    "MIN_TRIALS",
    "Cluster",
    "Dataset",
    "Pruned",
    "Ranked",
    "analyze_experiment",
    "build_dataset",
    "combined_ranking",
    "forest_ranking",
    "lasso_ranking",
    "prune_metrics",
    "top_knobs",
]
