"""Load workload files into WorkloadDef and build the matching Workload."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from autotune._resources import resolve
from autotune.spec import TIME_UNITS, SpecError, Unit, UnitError, load_yaml, parse_quantity
from autotune.workloads import command
from autotune.workloads._base import Workload, WorkloadDef

COMMON_FIELDS = {
    "name", "system", "kind", "description", "objective", "duration", "warmup", "cache",
}  # fmt: skip
KIND_FIELDS: dict[str, set[str]] = {
    "pgbench": {"builtin", "script", "scale", "clients", "threads", "mode", "reset"},
    "sql-set": {"setup", "queries", "repeat", "warmup_rounds", "timeout", "reset"},
    "command": command.FIELDS,
}
KIND_METRICS: dict[str, tuple[str, ...]] = {
    "pgbench": ("tps", "latency_avg_ms", "latency_p95_ms", "latency_p99_ms"),
    "sql-set": ("latency_avg_ms", "latency_p95_ms", "latency_p99_ms", "total_s", "qps"),
}
PGBENCH_BUILTINS = ("tpcb-like", "simple-update", "select-only")
PGBENCH_MODES = ("simple", "extended", "prepared")
_SECONDS = Unit("s", "time", TIME_UNITS["s"])


def load_workload(name_or_path: str) -> WorkloadDef:
    """A built-in workload by name, or a workload file; raise SpecError listing problems."""
    try:
        path = resolve("workloads", name_or_path)
    except FileNotFoundError as exc:
        raise SpecError([str(exc)]) from None
    return parse_workload(path.read_text(), path)


def parse_workload(text: str, path: Path) -> WorkloadDef:
    problems: list[str] = []

    def bad(fld: str, message: str) -> None:
        problems.append(f"{path}: field {fld!r}: {message}")

    try:
        data, duplicates = load_yaml(text)
    except yaml.YAMLError as exc:
        raise SpecError([f"{path}: not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise SpecError([f"{path}: a workload must be a mapping"])
    for dup in duplicates:
        bad(".".join(dup.path), f"duplicate key on line {dup.line}")
    kind = data.get("kind")
    if kind not in KIND_FIELDS:
        bad("kind", f"{kind!r} is not one of {', '.join(KIND_FIELDS)}")
        raise SpecError(problems)
    for key in sorted(set(data) - COMMON_FIELDS - KIND_FIELDS[kind], key=str):
        bad(str(key), "unknown field")
    name = data.get("name")
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_.-]+$", name):
        bad("name", "missing or invalid (letters, digits, '-', '_', '.')")
    system = data.get("system")
    if not isinstance(system, str):
        bad("system", "missing")
    objective = data.get("objective")
    metric, direction = "", "maximize"
    if not isinstance(objective, dict) or not isinstance(objective.get("metric"), str):
        bad("objective", "needs {metric: NAME, direction: maximize|minimize}")
    else:
        metric = objective["metric"]
        direction = objective.get("direction", "maximize")
        known = KIND_METRICS.get(kind) or tuple(command.metric_names(data))
        if known and metric not in known:  # a command without metrics is reported below
            bad("objective", f"metric {metric!r} is not one of {', '.join(known)}")
        if direction not in ("maximize", "minimize"):
            bad("objective", f"direction {direction!r} is not maximize or minimize")

    def seconds(fld: str, default: float | None) -> float | None:
        if fld not in data:
            return default
        try:
            value = float(parse_quantity(data[fld], _SECONDS))
        except UnitError as exc:
            bad(fld, str(exc))
            return default
        if value < 0 or (fld == "duration" and value == 0):
            bad(fld, "must be positive" if fld == "duration" else "must not be negative")
        return value

    def positive_int(fld: str, default: int) -> int:
        value = data.get(fld, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            bad(fld, f"{value!r} is not a positive integer")
            return default
        return value

    def boolean(fld: str, default: bool) -> bool:
        value = data.get(fld, default)
        if not isinstance(value, bool):
            bad(fld, f"{value!r} is not true or false")
            return default
        return value

    duration = seconds("duration", None)
    warmup = seconds("warmup", 0.0) or 0.0
    params: dict[str, Any] = {}
    # Keep the loaded data between sessions (see autotune datasets): for data that
    # takes minutes to load. A command workload loads nothing autotune can keep.
    params["cache"] = boolean("cache", False)
    if params["cache"] and kind == "command":
        bad("cache", "a command workload has no data autotune loads; only pgbench and sql-set")
    if kind == "pgbench":
        if ("builtin" in data) == ("script" in data):
            bad("builtin", "give exactly one of builtin or script")
        if "builtin" in data and data["builtin"] not in PGBENCH_BUILTINS:
            bad("builtin", f"{data['builtin']!r} is not one of {', '.join(PGBENCH_BUILTINS)}")
        if "script" in data:
            script = _resolve(path.parent, str(data["script"]))
            if _inside(path.parent, script) and not _is_file(script):
                bad("script", f"file not found: {script}")
            params["script"] = str(script)
        else:
            params["builtin"] = data.get("builtin")
        params["scale"] = positive_int("scale", 1)
        params["clients"] = positive_int("clients", 1)
        params["threads"] = positive_int("threads", 1)
        mode = data.get("mode", "simple")
        if mode not in PGBENCH_MODES:
            bad("mode", f"{mode!r} is not one of {', '.join(PGBENCH_MODES)}")
        params["mode"] = mode
        # Writes change what the next trial measures; select-only reads and leaves no trace.
        params["reset"] = boolean("reset", data.get("builtin") != "select-only")
        if duration is None:
            duration = 30.0
    elif kind == "command":
        params.update(command.parse_params(data, bad, seconds, positive_int))
    else:
        for fld in ("setup", "queries"):
            if not isinstance(data.get(fld), str):
                bad(fld, "missing (a path relative to the workload file)")
        if isinstance(data.get("setup"), str):
            setup = _resolve(path.parent, data["setup"])
            if _inside(path.parent, setup) and not _is_file(setup):
                bad("setup", f"file not found: {setup}")
            params["setup"] = str(setup)
        pattern = data.get("queries")
        if isinstance(pattern, str) and (pattern.startswith("/") or ".." in pattern.split("/")):
            bad("queries", f"{pattern!r} must be a pattern inside the workload's folder")
        elif isinstance(pattern, str):
            queries = sorted(p for p in path.parent.glob(pattern) if _is_file(p))
            if not queries:
                bad("queries", f"no file matches {data['queries']!r}")
            params["queries"] = [str(q.resolve()) for q in queries]
        params["repeat"] = positive_int("repeat", 3)
        params["warmup_rounds"] = data.get("warmup_rounds", 1)
        if not isinstance(params["warmup_rounds"], int) or params["warmup_rounds"] < 0:
            bad("warmup_rounds", "must be a whole number >= 0")
        params["timeout_s"] = seconds("timeout", 300.0)
        params["reset"] = boolean("reset", False)  # a query set reads, unless it says so
    files: dict[str, str] = {}
    named = [params.get("script"), params.get("setup"), *params.get("queries", [])]
    for file in (Path(f) for f in named if f):
        rel = Path(os.path.relpath(file, path.parent.resolve()))
        if not _inside(path.parent, file):
            # Said whether or not the file exists: a workload from the service must not
            # learn which files the tuner's host has.
            bad("files", f"{file} is outside the workload's folder; agents could not get it")
        elif _is_file(file):
            files[rel.as_posix()] = file.read_text()
    if problems:
        raise SpecError(problems)
    return WorkloadDef(
        files=files,
        name=str(name),
        system=str(system),
        kind=str(kind),
        objective_metric=metric,
        direction=direction,
        duration_s=duration,
        warmup_s=warmup,
        params=params,
        source=text,
        path=path,
    )


def _resolve(folder: Path, name: str) -> Path:
    """``folder / name``, resolved when the OS allows (an over-long name stays as given)."""
    try:
        return (folder / name).resolve()
    except OSError:
        return folder / name


def _inside(folder: Path, file: Path) -> bool:
    """``file`` (resolved) lies in ``folder`` or below it."""
    return ".." not in Path(os.path.relpath(file, folder.resolve())).parts


def _is_file(path: Path) -> bool:
    """``is_file`` that says False, not OSError, for names the OS refuses (too long, …)."""
    try:
        return path.is_file()
    except OSError:
        return False


def make_workload(definition: WorkloadDef) -> Workload:
    from autotune.workloads.pgbench import PgbenchWorkload
    from autotune.workloads.sqlset import SqlSetWorkload

    kinds: dict[str, Any] = {
        "pgbench": PgbenchWorkload,
        "sql-set": SqlSetWorkload,
        "command": command.CommandWorkload,
    }
    workload: Workload = kinds[definition.kind](definition)
    return workload
