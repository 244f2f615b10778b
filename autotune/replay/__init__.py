"""Replay: past experiments run again, offline against a surrogate or live with verification."""

from autotune.replay._offline import ReplayRun, Surrogate, build_surrogate, repeat_noise, replay
from autotune.replay._verify import result_json, run_interleaved

__all__ = [
    "ReplayRun",
    "Surrogate",
    "build_surrogate",
    "repeat_noise",
    "replay",
    "result_json",
    "run_interleaved",
]
