"""Rendering configs for people and for PostgreSQL: conf, sql, json."""

from __future__ import annotations

import json
import re
from typing import Any

from autotune.spec import Config, Machine, Spec, parse_spec
from autotune.store import Experiment

_PLAIN_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def recorded_spec(experiment: Experiment) -> Spec:
    """The experiment's spec as recorded, resolved on the machine it was tuned on."""
    machine = experiment.settings.get("machine")
    host = Machine(**machine) if isinstance(machine, dict) else None
    return parse_spec(experiment.spec_content, experiment.spec_path, host)


def formatted(spec: Spec, config: Config) -> dict[str, str]:
    """Each value as the system reads it; a name the spec does not know is refused."""
    out = {}
    for name, value in config.items():
        knob = spec.knobs.get(name)
        if knob is None:
            raise ValueError(f"knob {name!r} is not in spec {spec.path}")
        out[name] = knob.format(knob.validate(value))
    return out


def quote_literal(text: str) -> str:
    """A single-quoted literal for postgresql.conf and SQL: quotes doubled."""
    return "'" + text.replace("'", "''") + "'"


def render(spec: Spec, config: Config, fmt: str, meta: dict[str, Any] | None = None) -> str:
    if spec.parts and fmt in ("conf", "sql"):
        return _render_parts(spec, config, fmt)
    values = formatted(spec, config)
    if fmt == "conf":
        lines = [
            f"{name} = {value if _PLAIN_NUMBER.match(value) else quote_literal(value)}"
            for name, value in values.items()
        ]
        return "\n".join(lines)
    if fmt == "sql":
        # Names come from a validated spec (identifier characters only); values
        # were validated and formatted by the spec and are quoted here as literals.
        lines = [
            f'ALTER SYSTEM SET "{name}" = {quote_literal(value)};' for name, value in values.items()
        ]
        return "\n".join([*lines, "SELECT pg_reload_conf();"])
    if fmt == "json":
        return json.dumps({**(meta or {}), "config": values, "native": config}, indent=2)
    raise ValueError(f"unknown format {fmt!r}")


def _render_parts(spec: Spec, config: Config, fmt: str) -> str:
    """A composite's config part by part, each in its own names; SQL only where it applies."""
    formatted(spec, config)  # every name known, every value valid
    comment = "#" if fmt == "conf" else "--"
    blocks = []
    for ns, part in spec.parts:
        sub = {k.removeprefix(f"{ns}."): v for k, v in config.items() if k.startswith(f"{ns}.")}
        if not sub:
            continue
        if fmt == "sql" and part.applier not in ("postgres", None):
            body = "\n".join(f"-- {k} = {part.knobs[k].format(v)}" for k, v in sub.items())
            blocks.append(f"-- {ns}: not set with SQL\n{body}")
            continue
        blocks.append(f"{comment} {ns}\n{render(part, sub, fmt)}")
    return "\n".join(blocks)
