"""Systems an agent can tune."""

from autotune.systems._base import ApplyReport, ConfigFailed, System, SystemError_
from autotune.systems._registry import config_formats
from autotune.systems._render import formats_of, formatted, render

__all__ = [
    "ApplyReport",
    "ConfigFailed",
    "System",
    "SystemError_",
    "config_formats",
    "formats_of",
    "formatted",
    "render",
]
