"""Replay: past experiments run again, offline against a surrogate or live with verification."""

from autotune.replay._offline import ReplayRun, Surrogate, build_surrogate, repeat_noise, replay
from autotune.replay._verify import (
    Arm,
    ArmSummary,
    Run,
    complete_configs,
    result_json,
    rotation,
    run_interleaved,
    summarize_runs,
    verdict,
)

__all__ = [
    "Arm",
    "ArmSummary",
    "ReplayRun",
    "Run",
    "Surrogate",
    "build_surrogate",
    "complete_configs",
    "repeat_noise",
    "replay",
    "result_json",
    "rotation",
    "run_interleaved",
    "summarize_runs",
    "verdict",
]
