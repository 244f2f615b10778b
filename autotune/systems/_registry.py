"""Which System class drives a spec: chosen by the spec's applier, never by its name.

A new system is registered by writing a spec: its ``applier`` says how values
reach it (``postgres``, ``linux``, or a generic kind such as ``command-args``),
and the class registered for that kind does the rest. ``Target`` carries where
the system lives, the same for every kind, so the CLI and the agent need no
per-system code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune.spec import Config, Spec
from autotune.systems._base import System, SystemError_


@dataclass(frozen=True)
class Target:
    """Where the tuned system lives. Defaults: a managed sandbox, this host."""

    dsn: str | None = None  # an existing server instead of a managed one
    restart_command: str | None = None
    data_dir: Path | None = None
    root: Path = Path("/")  # host parameters: where proc/sys and sys are (tests: a copy)
    journal_dir: Path | None = None  # host parameters: originals kept here until restored
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def managed(self) -> bool:
        return self.dsn is None


Factory = Callable[[Spec, Target], System]
Check = Callable[[Spec], list[str]]
# A config as text the system reads: a config file's lines, SQL, a shell script, flags.
Renderer = Callable[[Spec, Config], str]
_FACTORIES: dict[str, Factory] = {}
_CHECKS: dict[str, Check] = {}
_FORMATS: dict[str, dict[str, Renderer]] = {}
_GAUGES: dict[str, frozenset[str]] = {}


def register(kind: str, factory: Factory, check: Check | None = None) -> None:
    """Make ``applier: kind`` (or ``applier: {kind: …}``) build systems with ``factory``;
    ``check`` lists the problems of a spec's applier mapping, for ``knobs validate``."""
    _FACTORIES[kind] = factory
    if check is not None:
        _CHECKS[kind] = check


def register_formats(kind: str, formats: Mapping[str, Renderer]) -> None:
    """How ``applier: kind`` systems print a config (``autotune best --format NAME``),
    first the one a user pastes into the system's own config file."""
    _FORMATS[kind] = dict(formats)


def register_gauges(kind: str, names: frozenset[str]) -> None:
    """The internal metrics of ``applier: kind`` systems that are levels, not counters
    (``System.metric_gauges``), for code that reads stored trials without a System."""
    _GAUGES[kind] = frozenset(names)


def known_gauges() -> frozenset[str]:
    """Every registered system's gauges, the host's included."""
    _load_builtin()
    return System.metric_gauges.union(*_GAUGES.values())


def config_formats(spec: Spec) -> dict[str, Renderer]:
    """The spec's system's config formats, by name; ValueError if it has none."""
    _load_builtin()
    kind = applier_kind(spec)
    formats = _FORMATS.get(kind)
    if not formats:
        raise ValueError(f"{spec.path}: applier {kind!r} has no config formats")
    return formats


def check_applier(spec: Spec) -> list[str]:
    """Problems with the spec's applier, one line each, before anything is started."""
    _load_builtin()
    if spec.parts:
        return [line for _, part in spec.parts for line in check_applier(part)]
    kind = applier_kind(spec)
    if kind not in _FACTORIES:
        known = ", ".join(sorted(_FACTORIES))
        return [f"{spec.path}: field 'applier': no applier {kind!r} (known: {known})"]
    check = _CHECKS.get(kind)
    return check(spec) if check is not None else []


def applier_kind(spec: Spec) -> str:
    """The spec's applier kind: a string, or the ``kind`` of an applier mapping; a spec
    without one is driven by the applier named like its system."""
    applier = spec.applier
    if isinstance(applier, dict):
        return str(applier.get("kind", ""))
    return str(applier or spec.system)


def _load_builtin() -> None:
    """Import the built-in system packages; each registers its kinds."""
    import importlib

    for module in ("postgres", "linux", "generic", "sqlapplier"):
        try:
            importlib.import_module(f"autotune.systems.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"autotune.systems.{module}":
                raise


def _composite(spec: Spec, target: Target) -> System:
    from autotune.systems._composite import CompositeSystem

    return CompositeSystem(spec, [(ns, make_system(part, target)) for ns, part in spec.parts])


def make_system(spec: Spec, target: Target) -> System:
    """The System for ``spec`` at ``target``; SystemError_ names the known kinds if none fits."""
    _load_builtin()
    if spec.parts:
        return _composite(spec, target)
    kind = applier_kind(spec)
    factory = _FACTORIES.get(kind)
    if factory is None:
        known = ", ".join(sorted(_FACTORIES)) or "none"
        raise SystemError_(f"spec {spec.path}: no applier {kind!r} (known: {known})")
    return factory(spec, target)


def known_kinds() -> list[str]:
    _load_builtin()
    return sorted({*_FACTORIES, "composite"})


__all__ = [
    "Factory",
    "Target",
    "applier_kind",
    "check_applier",
    "known_kinds",
    "make_system",
    "register",
]
