"""The tuner: proposes configs, leases trials, records results; shared by every front end."""

from autotune.tuner._local import LocalClient
from autotune.tuner._scheduler import (
    DEFAULT_LEASE_S,
    Scheduler,
    experiment_info,
    experiment_space,
)
from autotune.tuner._session import (
    KnobSelection,
    SessionOptions,
    open_experiment,
    select_knobs,
)
from autotune.tuner._tuner import (
    Summary,
    TuningError,
    best_trial,
    loss_of,
    summarize,
)

__all__ = [
    "DEFAULT_LEASE_S",
    "KnobSelection",
    "LocalClient",
    "Scheduler",
    "SessionOptions",
    "Summary",
    "TuningError",
    "best_trial",
    "experiment_info",
    "experiment_space",
    "loss_of",
    "open_experiment",
    "select_knobs",
    "summarize",
]
