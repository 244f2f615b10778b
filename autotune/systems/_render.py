"""A config as text: JSON, or one of the system's own formats (by its applier: see
``register_formats``); a composite's config part by part, each in its own syntax."""

from __future__ import annotations

import json
from typing import Any

from autotune.spec import Config, Spec
from autotune.systems._registry import config_formats


def formatted(spec: Spec, config: Config) -> dict[str, str]:
    """Each value as the spec writes it (``Knob.format``: units, on/off), in the config's
    order; a name the spec does not know is refused (ValueError), as is a value outside
    the knob's domain."""
    out = {}
    for name, value in config.items():
        knob = spec.knobs.get(name)
        if knob is None:
            raise ValueError(f"knob {name!r} is not in spec {spec.path}")
        out[name] = knob.format(knob.validate(value))
    return out


def render(spec: Spec, config: Config, fmt: str, meta: dict[str, Any] | None = None) -> str:
    """``config`` in ``fmt``: json, or one of the system's own formats (postgresql.conf
    or ALTER SYSTEM, sysctl.conf or a shell script, a server's flags or config lines)."""
    if fmt == "json":
        return json.dumps({**(meta or {}), "config": formatted(spec, config), "native": config},
                          indent=2)  # fmt: skip
    if spec.parts:
        return _render_parts(spec, config, fmt)
    formats = config_formats(spec)
    if fmt not in formats:
        raise ValueError(
            f"unknown format {fmt!r} for {spec.system} configs: one of "
            f"{', '.join([*formats, 'json'])}"
        )
    return formats[fmt](spec, config)


def _render_parts(spec: Spec, config: Config, fmt: str) -> str:
    """A composite's config part by part, each in its own syntax; a part that has no
    such format is printed in its own first one, commented out."""
    formatted(spec, config)  # every name known, every value valid
    comment = "--" if fmt == "sql" else "#"
    blocks = []
    for ns, part in spec.parts:
        sub = {k.removeprefix(f"{ns}."): v for k, v in config.items() if k.startswith(f"{ns}.")}
        if not sub:
            continue
        formats = config_formats(part)
        if fmt in formats:
            blocks.append(f"{comment} {ns}\n{formats[fmt](part, sub)}")
            continue
        own = next(iter(formats))
        body = "\n".join(f"{comment} {line}" for line in formats[own](part, sub).splitlines())
        blocks.append(f"{comment} {ns}: not set with {fmt}; as {own}:\n{body}")
    return "\n".join(blocks)


def formats_of(spec: Spec) -> list[str]:
    """The formats ``render`` takes for the spec's configs, the system's own first."""
    if spec.parts:
        names = [f for _, part in spec.parts for f in config_formats(part)]
    else:
        names = list(config_formats(spec))
    return [*dict.fromkeys(names), "json"]
