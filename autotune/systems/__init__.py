"""Systems an agent can tune."""

from autotune.systems._base import ApplyReport, ConfigFailed, System, SystemError_

__all__ = ["ApplyReport", "ConfigFailed", "System", "SystemError_"]
