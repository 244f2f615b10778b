"""A host config as Linux reads it: sysctl.conf lines, or a shell script that writes
every value (sysctls with ``sysctl -w``, /sys files with ``echo``), values as the
applier writes them (integers, 1/0, the enum's word), never '30s' or 'on'.

Paths come from the validated spec (checked parts, device globs); values are
validated by the spec and shell-quoted all the same.
"""

from __future__ import annotations

import shlex

from autotune.spec import Config, Spec
from autotune.systems._base import SystemError_
from autotune.systems.linux._system import LinuxSystem, render


def _values(spec: Spec, config: Config) -> tuple[LinuxSystem, dict[str, str]]:
    try:
        system = LinuxSystem(spec, knobs=list(config))  # parses the applier; touches nothing
    except SystemError_ as exc:
        raise ValueError(str(exc)) from None
    out = {}
    for name, value in config.items():
        out[name] = render(spec.knobs[name], spec.knobs[name].validate(value))
    return system, out


def _sysfs_paths(system: LinuxSystem, name: str) -> list[str]:
    """The /sys paths of a sysfs knob, a device glob in place of {device}."""
    parts = system.sysfs[name]
    if "{device}" not in parts:
        return ["/sys/" + "/".join(parts)]
    return ["/sys/" + "/".join(glob if p == "{device}" else p for p in parts)
            for glob in system.devices]  # fmt: skip


def conf(spec: Spec, config: Config) -> str:
    """/etc/sysctl.d lines for the sysctls; /sys files, which sysctl.conf cannot set,
    as comments (the sh format writes them)."""
    system, values = _values(spec, config)
    lines = [f"{name} = {value}" for name, value in values.items() if name not in system.sysfs]
    sysfs = [name for name in values if name in system.sysfs]
    if sysfs:
        lines.append("# not sysctls: set them at boot (udev, tmpfiles.d), or now with --format sh")
        for name in sysfs:
            for path in _sysfs_paths(system, name):
                lines.append(f"# {path} = {values[name]}")
    return "\n".join(lines)


def sh(spec: Spec, config: Config) -> str:
    """A root shell script that sets every value now (not across a reboot)."""
    system, values = _values(spec, config)
    lines = ["set -e"]
    for name, value in values.items():
        if name not in system.sysfs:
            lines.append(f"sysctl -w {shlex.quote(f'{name}={value}')}")
            continue
        for path in _sysfs_paths(system, name):
            if "*" in path or "?" in path or "[" in path:  # every matching device
                lines.append(
                    f'for f in {path}; do if [ -e "$f" ]; then echo {shlex.quote(value)} > "$f"; '
                    "fi; done"
                )
            else:
                lines.append(f"echo {shlex.quote(value)} > {shlex.quote(path)}")
    return "\n".join(lines)


FORMATS = {"conf": conf, "sh": sh}
