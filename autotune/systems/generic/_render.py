"""A spec-only system's config as the system reads it, by the spec's own applier: its
config-file lines (``line``, or the template), its command-line flags (``flag``),
or its environment (``env``); names and values exactly as the agent passes them
(``names: dashes``, the ``bool`` words, bare numbers or unit suffixes).

Flags and environment lines are shell-quoted: they paste into a shell as printed.
"""

from __future__ import annotations

import shlex

from autotune.spec import Config, Spec
from autotune.systems.generic._applier import HOST, Applier, env_name, parse_applier
from autotune.systems.generic._system import GenericSystem
from autotune.systems.generic._template import fill, fill_argv

# The server's own placeholders are not known when a config is printed.
_SERVER = {"port": "<port>", "host": HOST, "workdir": "<workdir>", "user": "<user>"}


def _values(spec: Spec, config: Config) -> tuple[Applier, dict[str, str]]:
    applier, problems = parse_applier(spec)
    if problems or applier is None:
        raise ValueError("; ".join(problems))
    system = GenericSystem(spec, applier)  # renders values; starts nothing
    ordered = [name for name in spec.knobs if name in config]
    unknown = sorted(set(config) - set(spec.knobs))
    if unknown:
        raise ValueError(f"knob {unknown[0]!r} is not in spec {spec.path}")
    try:
        return applier, {name: system.render(name, config[name]) for name in ordered}
    except Exception as exc:  # SystemError_: a value outside the knob's domain
        raise ValueError(str(exc)) from None


def _placeholders(applier: Applier, name: str, value: str) -> dict[str, str]:
    return {**_SERVER, "name": applier.system_name(name), "value": value}


def conf(spec: Spec, config: Config) -> str:
    """The lines the system's config file takes: ``line`` per knob, else the template."""
    applier, values = _values(spec, config)
    if applier.line:
        lines = [fill(applier.line, _placeholders(applier, n, v)) for n, v in values.items()]
        return "\n".join(lines)
    if applier.kind == "config-file":  # the template alone, filled
        return GenericSystem(spec, applier).config_text(values, _SERVER).rstrip("\n")
    raise ValueError(
        f"{spec.path}: the applier has no `line` (how the system's config file writes a "
        f"setting); print this {applier.kind} config with --format "
        f"{'env' if applier.kind == 'env' else 'flags'} or json"
    )


def flags(spec: Spec, config: Config) -> str:
    """The command-line flags, shell-quoted, one knob per line."""
    applier, values = _values(spec, config)
    if applier.kind not in ("command-args", "workload-flags"):
        raise ValueError(f"{spec.path}: a {applier.kind} applier takes no flags")
    return " \\\n".join(
        " ".join(shlex.quote(a) for a in fill_argv(applier.flag, _placeholders(applier, n, v)))
        for n, v in values.items()
    )


def env(spec: Spec, config: Config) -> str:
    """``export NAME=value`` lines, shell-quoted."""
    applier, values = _values(spec, config)
    if applier.kind != "env":
        raise ValueError(f"{spec.path}: a {applier.kind} applier takes no environment")
    return "\n".join(
        f"export {env_name(applier.env, applier.system_name(n))}={shlex.quote(v)}"
        for n, v in values.items()
    )


FORMATS = {
    "command-args": {"conf": conf, "flags": flags},
    "env": {"conf": conf, "env": env},
    "config-file": {"conf": conf},
    "workload-flags": {"flags": flags, "conf": conf},
}
