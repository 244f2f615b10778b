"""The tuner: the experiment loop shared by local sessions and the service."""

from autotune.tuner._session import (
    KnobSelection,
    SessionOptions,
    open_experiment,
    select_knobs,
)
from autotune.tuner._tuner import (
    Events,
    Summary,
    Tuner,
    TuningError,
    best_trial,
    loss_of,
    summarize,
)

__all__ = [
    "Events",
    "KnobSelection",
    "SessionOptions",
    "Summary",
    "Tuner",
    "TuningError",
    "best_trial",
    "loss_of",
    "open_experiment",
    "select_knobs",
    "summarize",
]
