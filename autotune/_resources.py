"""Where knob specs and workloads live, and how names resolve to files.

A name resolves by searching, in order:

1. explicit directories (``--knobs-dir DIR``, repeatable);
2. ``AUTOTUNE_KNOBS_PATH`` (``AUTOTUNE_WORKLOADS_PATH`` for workloads), a list of
   directories separated like ``PATH`` (``os.pathsep``); missing ones are skipped;
3. the built-in directory: the top-level ``knobs/`` and ``workloads/`` of a source
   checkout, or the copies a wheel carries under ``autotune/_data``.

The first ``<name>.yaml`` found wins, so a user spec named like a built-in one
shadows it; ``known_specs`` lists every file found and says which shadows which.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PACKAGE = Path(__file__).resolve().parent

BUILTIN = "built-in"
ENV_VARS = {"knobs": "AUTOTUNE_KNOBS_PATH", "workloads": "AUTOTUNE_WORKLOADS_PATH"}
SUFFIX = ".yaml"


def builtin_dir(kind: str) -> Path:
    """``kind`` is "knobs" or "workloads"."""
    for candidate in (_PACKAGE / "_data" / kind, _PACKAGE.parent / kind):
        if candidate.is_dir():
            return candidate
    return _PACKAGE.parent / kind


def env_var(kind: str) -> str:
    """The environment variable holding the user directories for ``kind``."""
    return ENV_VARS[kind]


def dir_option(kind: str) -> str:
    """The command-line option that adds a directory for ``kind``: ``--knobs-dir``."""
    return f"--{kind}-dir"


@dataclass(frozen=True)
class SearchDir:
    """One directory searched for ``<name>.yaml``, and why it is searched."""

    path: Path
    origin: str  # "--knobs-dir" | "AUTOTUNE_KNOBS_PATH" | "built-in" (and the workload twins)

    def describe(self) -> str:
        missing = "" if self.path.is_dir() else ", missing"
        return f"{self.path} ({self.origin}{missing})"


def env_dirs(kind: str) -> list[Path]:
    """The directories named by ``AUTOTUNE_<KIND>_PATH``, empty entries ignored."""
    raw = os.environ.get(env_var(kind), "")
    return [Path(part).expanduser() for part in raw.split(os.pathsep) if part.strip()]


def search_dirs(kind: str, extra_dirs: Sequence[Path] = ()) -> list[SearchDir]:
    """Every directory searched for ``kind``, first match first; a directory listed twice
    counts once, where it first appears."""
    ordered = [
        *(SearchDir(Path(d), dir_option(kind)) for d in extra_dirs),
        *(SearchDir(d, env_var(kind)) for d in env_dirs(kind)),
        SearchDir(builtin_dir(kind), BUILTIN),
    ]
    seen: set[Path] = set()
    unique = []
    for entry in ordered:
        key = entry.path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(entry)
    return unique


def _names_in(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob(f"*{SUFFIX}") if p.is_file())


def resolve(kind: str, name_or_path: str, extra_dirs: Sequence[Path] = ()) -> Path:
    """A file path as given, else the first ``<dir>/<name>.yaml`` in ``search_dirs``.

    FileNotFoundError lists the directories searched and the names they hold.
    """
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if path.is_file():
            return path
        raise FileNotFoundError(f"{kind[:-1]} file not found: {name_or_path}")
    dirs = search_dirs(kind, extra_dirs)
    for entry in dirs:
        candidate = entry.path / f"{name_or_path}{SUFFIX}"
        if candidate.is_file():
            return candidate
    known = sorted({p.stem for entry in dirs for p in _names_in(entry.path)})
    raise FileNotFoundError(
        f"unknown {kind[:-1]} {name_or_path!r}; known: {', '.join(known) or 'none'}"
        f" (searched {'; '.join(entry.describe() for entry in dirs)};"
        f" or give a path to a {SUFFIX} file)"
    )


@dataclass(frozen=True)
class Found:
    """A ``<name>.yaml`` file in one of the search directories."""

    name: str
    path: Path
    origin: str
    shadows: tuple[tuple[Path, str], ...] = ()  # later files of this name: (path, origin)
    shadowed_by: Path | None = None  # the earlier file of the same name that wins


def find_all(kind: str, extra_dirs: Sequence[Path] = ()) -> list[Found]:
    """Every file in the search directories, by name, the winning one of a name first."""
    by_name: dict[str, list[tuple[Path, str]]] = {}
    for entry in search_dirs(kind, extra_dirs):
        for path in _names_in(entry.path):
            by_name.setdefault(path.stem, []).append((path, entry.origin))
    found: list[Found] = []
    for name in sorted(by_name):
        files = by_name[name]
        (winner, origin), hidden = files[0], tuple(files[1:])
        found.append(Found(name, winner, origin, shadows=hidden))
        found.extend(Found(name, path, where, shadowed_by=winner) for path, where in hidden)
    return found


@dataclass(frozen=True)
class KnownSpec:
    """A knob spec a name could resolve to, checked: its system, size and validity."""

    name: str
    path: Path
    origin: str  # "built-in" | "--knobs-dir" | "AUTOTUNE_KNOBS_PATH"
    system: str | None  # the file's ``system:``, when it can be read
    knobs: int | None  # how many knobs it defines, when it can be read
    error: str | None = None  # the first problem when the spec does not load
    problems: int = 0  # how many problems in all
    shadows: tuple[tuple[Path, str], ...] = ()  # files of this name it hides: (path, origin)
    shadowed_by: Path | None = None  # the file of this name that wins over this one

    @property
    def valid(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        parts = ["ok" if self.valid else f"error: {self.error}"]
        if self.problems > 1:
            parts[0] += f" (+{self.problems - 1} more)"
        parts.extend(f"shadows {origin} {path}" for path, origin in self.shadows)
        if self.shadowed_by is not None:
            parts.append(f"shadowed by {self.shadowed_by}")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "system": self.system,
            "knobs": self.knobs,
            "origin": self.origin,
            "path": str(self.path),
            "valid": self.valid,
            "error": self.error,
            "problems": self.problems,
            "shadows": [{"path": str(path), "origin": origin} for path, origin in self.shadows],
            "shadowed_by": None if self.shadowed_by is None else str(self.shadowed_by),
        }


def _check_spec(found: Found) -> KnownSpec:
    from autotune.spec import SpecError, load_spec, load_yaml

    system: str | None = None
    knobs: int | None = None
    try:  # what the file says, even when it does not load
        data, _ = load_yaml(found.path.read_text())
    except Exception:  # an unreadable file is reported by load_spec below
        data = None
    if isinstance(data, dict):
        if isinstance(data.get("system"), str):
            system = data["system"]
        if isinstance(data.get("knobs"), dict):
            knobs = len(data["knobs"])
    error: str | None = None
    problems = 0
    try:
        spec = load_spec(found.path)
    except SpecError as exc:
        error, problems = exc.problems[0], len(exc.problems)
    except (ValueError, OSError) as exc:  # a bug in a loader must not hide the other specs
        error, problems = f"{found.path}: {exc}", 1
    else:
        system, knobs = spec.system, len(spec.knobs)
    return KnownSpec(
        name=found.name,
        path=found.path,
        origin=found.origin,
        system=system,
        knobs=knobs,
        error=error,
        problems=problems,
        shadows=found.shadows,
        shadowed_by=found.shadowed_by,
    )


def known_specs(extra_dirs: Sequence[Path] = ()) -> list[KnownSpec]:
    """Every knob spec in the search directories, each loaded and checked.

    Sorted by name; of several files with one name the one ``resolve`` picks
    comes first and ``shadows`` the others (their ``shadowed_by`` names it).
    """
    return [_check_spec(found) for found in find_all("knobs", extra_dirs)]
