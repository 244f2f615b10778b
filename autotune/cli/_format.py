"""Rendering configs for people and for PostgreSQL: conf, sql, json."""

from __future__ import annotations

import json
import re
from typing import Any

from rich import box
from rich.table import Table

from autotune.spec import Config, Machine, Spec, parse_spec
from autotune.store import Experiment
from autotune.tuner import ArmResult, Verification

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


def _arm_verdict(arm: ArmResult) -> str:
    if arm.versus is None:
        return "reference" if arm.label == "default" else "no comparison"
    if arm.versus.low > 1:
        return "better"
    if arm.versus.high < 1:
        return "worse"
    return "NOT significant"


def verification_table(v: Verification, title: str) -> Table:
    """A verification's arms: runs, median, paired ratio to the default with its 95% CI,
    and whether that is better, worse or not significant; it fits 80 columns."""
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("arm", "runs", "median", "× default", "95% CI", "verdict"):
        table.add_column(column, justify="right" if column in ("runs", "median") else "left")
    for arm in v.arms:
        pr = arm.versus
        table.add_row(
            arm.label + (" ◀ best" if v.best is arm else ""),
            f"{arm.runs}" + (f" ({arm.failed} failed)" if arm.failed else ""),
            "—" if arm.median is None else f"{arm.median:.6g}",
            "1" if arm.label == "default" else ("—" if pr is None else f"{pr.ratio:.3f}"),
            "" if pr is None else f"{pr.low:.3f}–{pr.high:.3f}",
            _arm_verdict(arm),
        )
    return table
