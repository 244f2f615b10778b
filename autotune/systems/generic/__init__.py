"""Spec-only systems: a server the agent starts and configures through its argv
(``command-args``), its environment (``env``) or a config file (``config-file``),
as the spec's ``applier:`` mapping says; see ``_applier`` for the schema."""

from autotune.spec import Spec, SpecError
from autotune.systems._base import SystemError_
from autotune.systems._registry import Target, register, register_formats, register_gauges
from autotune.systems.generic._applier import KINDS, Applier, parse_applier
from autotune.systems.generic._render import FORMATS
from autotune.systems.generic._system import GenericSystem
from autotune.systems.generic._template import UnknownPlaceholder, fill_argv, placeholders_in


def check_applier(spec: Spec) -> list[str]:
    """Every problem in the spec's applier mapping, one line each (empty when fine)."""
    return parse_applier(spec)[1]


def _make(spec: Spec, target: Target) -> GenericSystem:
    applier, problems = parse_applier(spec)
    if problems:
        raise SpecError(problems)
    assert applier is not None
    if not target.managed:
        raise SystemError_(
            f"spec {spec.path}: a {applier.kind} applier starts and manages its own server; "
            "an existing server (--dsn) is not supported"
        )
    return GenericSystem(spec, applier)


for _kind in KINDS:
    register(_kind, _make, check_applier)
    register_formats(_kind, FORMATS[_kind])
    register_gauges(_kind, GenericSystem.metric_gauges)

__all__ = [
    "Applier",
    "GenericSystem",
    "UnknownPlaceholder",
    "check_applier",
    "fill_argv",
    "parse_applier",
    "placeholders_in",
]
