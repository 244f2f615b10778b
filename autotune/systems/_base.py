"""The system seam: what an agent needs from anything it tunes.

A system snapshots its original configuration, applies configs (reloading or
restarting as the knobs require), rolls back to the last good config when one
breaks it, and restores the original at the end. It never talks to the store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from autotune.spec import Config, Spec
from autotune.systems._host import HOST_GAUGES, host_snapshot


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


S = TypeVar("S", bound="System")


class System(ABC):
    """A tunable system, driven by an agent."""

    spec: Spec

    metric_gauges: ClassVar[frozenset[str]] = HOST_GAUGES
    """Names from ``metrics_snapshot`` that are levels at an instant (free memory, live
    rows): a trial keeps their value at its end. Every other name is a running total,
    and a trial keeps how much it grew. A subclass adding gauges extends this set."""

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

    def current(self) -> Config | None:
        """The spec's knobs as the target ran them when ``start`` found it, before any
        change: what its owner runs today, which the session's baseline measures.

        Knobs that cannot be read, or whose value lies outside the spec's range, are left
        out (the baseline takes the spec's default for them). None where the target is
        made fresh for the session, so its configuration is the spec's defaults (a
        managed sandbox)."""
        return None

    def twin(self) -> System | None:
        """A second, identical instance of this system, not started: a verification
        measures a config beside it running the default, in alternating slices, so both
        see the same minutes of the host. None where there can be only one (an existing
        server, the host's own kernel)."""
        return None

    def gauges(self) -> frozenset[str]:
        """``metric_gauges`` of this system (a composite's: all its parts')."""
        return self.metric_gauges

    def find(self, kind: type[S]) -> S | None:
        """This system, or the part of a composite one, that is a ``kind``: how a
        workload reaches the server it drives (pgbench needs the PostgreSQL part)."""
        return self if isinstance(self, kind) else None

    def placeholders(self) -> dict[str, str]:
        """Values a command workload may name in its argv, such as ``{port}``."""
        return {}

    def argv_placeholders(self) -> dict[str, list[str]]:
        """Lists a command workload's argv takes as whole elements: an element that is
        exactly ``{flags}`` becomes the system's current knobs as flags, one element
        each (a system whose knobs are the workload program's own flags)."""
        return {}

    def restore_dataset(self, key: str) -> bool:
        """Replace the system's data by the cached copy ``key`` (see ``save_dataset``);
        False when there is none or the system keeps no datasets (the default)."""
        return False

    def save_dataset(self, key: str) -> bool:
        """Keep the data as it is now (just loaded) under ``key``, for later sessions;
        False when the system keeps no datasets (the default)."""
        return False

    def log_excerpt(self) -> str:
        return ""

    def metrics_snapshot(self) -> dict[str, float]:
        """Internal metrics now, flat ``name -> value``, taken just before and just after
        the measured phase so a trial can say why it was fast or slow (OtterTune-style).

        By default this host's counters from /proc, which every system on the host
        shares; a system overrides it to add its own, keeping ``super()``'s. It must
        cost little (tens of milliseconds) and may raise: the agent then leaves the
        trial's internal metrics out and carries on.
        """
        return host_snapshot()
