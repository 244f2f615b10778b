"""The tuner: proposes configs, leases trials, records results; shared by every front end."""

from autotune.tuner._local import LocalClient
from autotune.tuner._racing import plan_repeats
from autotune.tuner._robust import (
    MAX_CV,
    MAX_RANGE,
    ConfigRuns,
    RobustBest,
    bootstrap_ci,
    bootstrap_ratio_ci,
    config_runs,
    describe,
    paired_ratio_ci,
    robust_best,
    unstable_line,
)
from autotune.tuner._scheduler import (
    DEFAULT_LEASE_S,
    Scheduler,
    experiment_info,
    experiment_space,
)
from autotune.tuner._session import (
    DEFAULT_OPTIMIZER,
    KnobSelection,
    SessionOptions,
    check_repeats,
    default_repeats,
    open_experiment,
    select_knobs,
)
from autotune.tuner._tuner import (
    Summary,
    TuningError,
    best_trial,
    loss_of,
    summarize,
    summary_of,
    usable,
)
from autotune.tuner._warm import (
    Candidate,
    WarmStart,
    carry_config,
    check_warm_start,
    map_workload,
    resolve_warm_start,
)

__all__ = [
    "DEFAULT_LEASE_S",
    "DEFAULT_OPTIMIZER",
    "MAX_CV",
    "MAX_RANGE",
    "Candidate",
    "ConfigRuns",
    "KnobSelection",
    "LocalClient",
    "RobustBest",
    "Scheduler",
    "SessionOptions",
    "Summary",
    "TuningError",
    "WarmStart",
    "best_trial",
    "bootstrap_ci",
    "bootstrap_ratio_ci",
    "carry_config",
    "check_repeats",
    "check_warm_start",
    "config_runs",
    "default_repeats",
    "describe",
    "experiment_info",
    "experiment_space",
    "loss_of",
    "map_workload",
    "open_experiment",
    "paired_ratio_ci",
    "plan_repeats",
    "resolve_warm_start",
    "robust_best",
    "select_knobs",
    "summarize",
    "summary_of",
    "unstable_line",
    "usable",
]
