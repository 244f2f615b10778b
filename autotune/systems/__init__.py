"""Systems an agent can tune."""

from autotune.systems._base import ApplyReport, ConfigFailed, System, SystemError_
from autotune.systems._host import HOST_GAUGES, metric_deltas
from autotune.systems._registry import (
    Target,
    applier_kind,
    check_applier,
    config_formats,
    known_gauges,
    known_kinds,
    make_system,
)
from autotune.systems._render import formats_of, formatted, render

__all__ = [
    "HOST_GAUGES",
    "ApplyReport",
    "ConfigFailed",
    "System",
    "SystemError_",
    "Target",
    "applier_kind",
    "check_applier",
    "config_formats",
    "formats_of",
    "formatted",
    "known_gauges",
    "known_kinds",
    "make_system",
    "metric_deltas",
    "render",
]
