"""The system seam: what an agent needs from anything it tunes.

A system snapshots its original configuration, applies configs (reloading or
restarting as the knobs require), rolls back to the last good config when one
breaks it, and restores the original at the end. It never talks to the store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from autotune.spec import Config, Spec


class SystemError_(RuntimeError):
    """The system could not be driven as asked; ``log_excerpt`` says why when known."""

    def __init__(self, message: str, log_excerpt: str = "") -> None:
        super().__init__(message)
        self.log_excerpt = log_excerpt


class ConfigFailed(SystemError_):
    """A config broke the system (it did not start or answer); it has been rolled back."""


@dataclass
class ApplyReport:
    """What applying a config took and what the system did not take."""

    action: str = "online"  # online | reload | restart
    apply_s: float = 0.0
    restart_s: float = 0.0
    not_applied: dict[str, str] = field(default_factory=dict)


class System(ABC):
    """A tunable system, driven by an agent."""

    spec: Spec

    @abstractmethod
    def start(self) -> None:
        """Bring the system up (or connect to it) and snapshot its configuration."""

    @abstractmethod
    def apply(self, config: Config) -> ApplyReport:
        """Apply ``config``; raise ConfigFailed after rolling back if it breaks the system."""

    @abstractmethod
    def mark_good(self) -> None:
        """Remember the current config as the one to roll back to."""

    @abstractmethod
    def healthy(self) -> bool:
        """Whether the system answers now."""

    @abstractmethod
    def rollback(self) -> None:
        """Go back to the last good config and make sure the system answers."""

    @abstractmethod
    def restore(self, config: Config | None = None) -> None:
        """Put the original configuration back, or leave ``config`` applied."""

    @abstractmethod
    def stop(self) -> None:
        """Release everything the system holds; for a sandbox, stop and remove it."""

    def restartable(self) -> bool:
        """Whether restart-class knobs can be applied here."""
        return True

    def log_excerpt(self) -> str:
        return ""
