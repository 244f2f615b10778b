"""Where built-in knob specs and workloads live, and how names resolve to files.

In a source checkout they are the top-level ``knobs/`` and ``workloads/``
directories; a wheel carries copies under ``autotune/_data``.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def builtin_dir(kind: str) -> Path:
    """``kind`` is "knobs" or "workloads"."""
    for candidate in (_PACKAGE / "_data" / kind, _PACKAGE.parent / kind):
        if candidate.is_dir():
            return candidate
    return _PACKAGE.parent / kind


def resolve(kind: str, name_or_path: str) -> Path:
    """A file path as given, else ``<builtin dir>/<name>.yaml``; FileNotFoundError names both."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if path.is_file():
            return path
        raise FileNotFoundError(f"{kind[:-1]} file not found: {name_or_path}")
    candidate = builtin_dir(kind) / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    known = sorted(p.stem for p in builtin_dir(kind).glob("*.yaml"))
    raise FileNotFoundError(
        f"unknown {kind[:-1]} {name_or_path!r}; built-in: {', '.join(known) or 'none'}"
        " (or give a path to a .yaml file)"
    )
