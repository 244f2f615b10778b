"""A composite system: several systems tuned as one joint space (``postgres+linux``).

Each part is the system its own spec's applier builds; the composite only
splits a config by namespace (``postgres.shared_buffers`` goes to the
postgres part as ``shared_buffers``). Parts are started and applied in the
spec's order and rolled back, restored and stopped in reverse, so the host
is put back last and the database is never left running on changed host
settings it did not start with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from autotune.spec import Config, Spec
from autotune.systems._base import ApplyReport, ConfigFailed, System, SystemError_

S = TypeVar("S", bound=System)
_ACTIONS = ("online", "reload", "restart")


class CompositeSystem(System):
    def __init__(self, spec: Spec, parts: list[tuple[str, System]]) -> None:
        if not parts:
            raise SystemError_(f"spec {spec.path}: a composite needs at least one part")
        self.spec = spec
        self.parts = parts
        self._started: list[tuple[str, System]] = []

    def _split(self, config: Config) -> dict[str, Config]:
        out: dict[str, Config] = {ns: {} for ns, _ in self.parts}
        for name, value in config.items():
            ns, _, rest = name.partition(".")
            if ns not in out or not rest:
                raise SystemError_(f"knob {name!r} is not in a part of {self.spec.system}")
            out[ns][rest] = value
        return out

    def gauges(self) -> frozenset[str]:
        found: frozenset[str] = frozenset()
        for _, part in self.parts:
            found |= part.gauges()
        return found

    def metrics_snapshot(self) -> dict[str, float]:
        """Every part's metrics; host metrics, which all parts see alike, once."""
        out: dict[str, float] = {}
        for _, part in self.parts:
            for name, value in part.metrics_snapshot().items():
                out.setdefault(name, value)
        return out

    def start(self) -> None:
        for ns, part in self.parts:
            part.start()
            self._started.append((ns, part))

    def apply(self, config: Config) -> ApplyReport:
        split = self._split(config)
        report = ApplyReport()
        done: list[System] = []
        for ns, part in self.parts:
            try:
                got = part.apply(split[ns])
            except ConfigFailed:
                # The failing part rolled itself back; the ones before it follow.
                for earlier in reversed(done):
                    earlier.rollback()
                raise
            done.append(part)
            if _ACTIONS.index(got.action) > _ACTIONS.index(report.action):
                report.action = got.action
            report.apply_s += got.apply_s
            report.restart_s += got.restart_s
            report.not_applied.update({f"{ns}.{k}": v for k, v in got.not_applied.items()})
        return report

    def mark_good(self) -> None:
        for _, part in self.parts:
            part.mark_good()

    def healthy(self) -> bool:
        return all(part.healthy() for _, part in self.parts)

    def rollback(self) -> None:
        self._each_reversed(lambda ns, part: part.rollback())

    def restore(self, config: Config | None = None) -> None:
        split = None if config is None else self._split(config)
        self._each_reversed(lambda ns, part: part.restore(None if split is None else split[ns]))

    def stop(self) -> None:
        started, self._started = self._started, []
        errors: list[str] = []
        for ns, part in reversed(started):
            try:
                part.stop()
            except Exception as exc:  # every part gets stopped, whatever one of them does
                errors.append(f"{ns}: {exc}")
        if errors:
            raise SystemError_("stopping " + "; ".join(errors))

    def _each_reversed(self, action: Callable[[str, System], None]) -> None:
        """Every part in reverse order, even when one fails; then the first failure."""
        first: Exception | None = None
        for ns, part in reversed(self.parts):
            try:
                action(ns, part)
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first

    def restartable(self) -> bool:
        return all(part.restartable() for _, part in self.parts)

    def current(self) -> Config | None:
        """Each part's current values under its namespace; None when no part has any
        (every part made fresh): the parts that have none run the spec's defaults."""
        out: Config = {}
        found = False
        for ns, part in self.parts:
            values = part.current()
            if values is not None:
                found = True
                out.update({f"{ns}.{name}": value for name, value in values.items()})
        return out if found else None

    def log_excerpt(self) -> str:
        return "\n".join(
            f"[{ns}] {text}" for ns, part in self.parts if (text := part.log_excerpt())
        )

    def find(self, kind: type[S]) -> S | None:
        for _, part in self.parts:
            found = part.find(kind)
            if found is not None:
                return found
        return None

    def placeholders(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for _, part in self.parts:
            for key, value in part.placeholders().items():
                out.setdefault(key, value)
        return out

    def argv_placeholders(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for _, part in self.parts:
            for key, value in part.argv_placeholders().items():
                out.setdefault(key, value)
        return out


__all__ = ["CompositeSystem"]
