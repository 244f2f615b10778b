"""A workload that is any command: run it against the system, read metrics from its output.

A ``kind: command`` workload file::

    run: ["kv-bench", "--port", "{port}", "--requests", "100000", "--csv"]
    setup: ["loader", "--port", "{port}"]          # optional: once, before the baseline;
                                                    # or a list of such commands, in turn
    metrics:
      get_rps: {regex: '^"GET","([0-9.]+)"'}       # the first group, as a number
      p99_ms: {json: "latency.p99"}                 # a field of JSON on stdout
    objective: {metric: get_rps, direction: maximize}
    repeat: 1                                       # rounds when no duration applies
    timeout: 10min                                  # per run of the command

Placeholders are the system's (``system.placeholders()``: ``{port}``,
``{host}``, ``{workdir}``, …), ``{duration}``, the measured seconds as a
whole number, and ``{scratch}``, the new directory each run of the command
gets (its working directory, with only autotune's owner marker in it, removed
when it ends: data a run writes, such as a benchmark's database, never outlives
it). Each element of the argv is filled on
its own and the command runs without a shell, so a value is always exactly one
argument. An element that is exactly ``{flags}`` (for a ``workload-flags``
system) becomes the config's knobs as flags, one argument each.

How long it measures: a command that names ``{duration}`` runs once, for that
long. One that does not (a fixed amount of work, like ``--requests 100000``)
runs in rounds: with a duration (``--duration`` or the file's ``duration``) it
runs again until that time is used up, at least once; without one, ``repeat``
times. Each metric is then the mean over the rounds. ``warmup`` runs the same
way for the warm-up time, and its output is not read.

A regex is searched in stdout, then stderr; ``json`` reads stdout as one JSON
document (or else its last line), the path's parts being keys or list indexes.
A command that fails, runs over its timeout (default twice the run's duration
plus two minutes) or prints no value for a metric ends the trial with a
WorkloadError carrying the output.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

from autotune._tmp import OwnedTempDir
from autotune.systems import System
from autotune.systems.generic import UnknownPlaceholder, fill_argv, placeholders_in
from autotune.workloads._base import Phase, Workload, WorkloadError, WorkloadResult

FIELDS = {"run", "setup", "metrics", "repeat", "timeout"}
METRIC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
SETUP_TIMEOUT_S = 1800.0
DEFAULT_DURATION_S = 30.0
EXCERPT = 3000


def metric_names(data: dict[str, Any]) -> list[str]:
    """The metric names a workload file defines (for checking its objective)."""
    metrics = data.get("metrics")
    return [str(name) for name in metrics] if isinstance(metrics, dict) else []


def parse_params(
    data: dict[str, Any],
    bad: Callable[[str, str], None],
    seconds: Callable[[str, float | None], float | None],
    positive_int: Callable[[str, int], int],
) -> dict[str, Any]:
    """The command-kind fields of a workload file, each problem reported through ``bad``."""
    params: dict[str, Any] = {}

    def one_argv(fld: str, argv: Any) -> list[str] | None:
        if (
            not isinstance(argv, list)
            or not argv
            or not all(isinstance(a, str | int | float) and not isinstance(a, bool) for a in argv)
        ):
            bad(fld, "must be a non-empty list of strings: the program, then its arguments")
            return None
        items = [str(a) for a in argv]
        if not items[0].strip():
            bad(fld, "the program (first element) is empty")
        for item in items:
            if "{duration}" in item and fld.startswith("setup"):
                bad(fld, "{duration} is only known when measuring (in run)")
        return items

    if "run" not in data:
        bad("run", "missing (a list: the program, then its arguments)")
    else:
        run = one_argv("run", data["run"])
        if run is not None:
            params["run_argv"] = run
    if "setup" in data:
        setup = data["setup"]
        commands = (
            setup
            if isinstance(setup, list) and setup and all(isinstance(c, list) for c in setup)
            else [setup]
        )
        argvs = [
            one_argv("setup" if len(commands) == 1 else f"setup[{i}]", c)
            for i, c in enumerate(commands)
        ]
        if all(a is not None for a in argvs):
            params["setup_argvs"] = argvs
    metrics = data.get("metrics")
    parsed: dict[str, dict[str, str]] = {}
    if not isinstance(metrics, dict) or not metrics:
        bad("metrics", "missing: map each metric name to {regex: '...'} or {json: path.to.field}")
    else:
        for name, how in metrics.items():
            where = f"metrics.{name}"
            if not isinstance(name, str) or not METRIC_NAME.match(name):
                bad(where, "invalid metric name (letters, digits, '_' and '.')")
                continue
            if not isinstance(how, dict) or len(how) != 1 or not ({"regex", "json"} & set(how)):
                bad(where, "must be {regex: '...'} or {json: path.to.field}")
                continue
            if "regex" in how:
                pattern = how["regex"]
                try:
                    compiled = re.compile(str(pattern), re.M)
                except re.error as exc:
                    bad(where, f"regex {pattern!r} does not compile: {exc}")
                    continue
                if not isinstance(pattern, str) or compiled.groups < 1:
                    bad(where, f"regex {pattern!r} needs a group around the number: (...)")
                    continue
                parsed[name] = {"regex": pattern}
            else:
                path = how["json"]
                if not isinstance(path, str) or not path or any(not p for p in path.split(".")):
                    bad(where, f"json {path!r} is not a dotted path such as results.rps")
                    continue
                parsed[name] = {"json": path}
    params["metrics"] = parsed
    params["repeat"] = positive_int("repeat", 1)
    params["timeout_s"] = seconds("timeout", None)
    if params["timeout_s"] == 0:
        bad("timeout", "must be positive")
    return params


def _excerpt(text: str) -> str:
    return text[-EXCERPT:]


def read_metric(name: str, how: dict[str, str], stdout: str, stderr: str) -> float:
    """One metric from a command's output; WorkloadError naming it when it is not there."""
    if "regex" in how:
        regex = re.compile(how["regex"], re.M)
        for stream in (stdout, stderr):
            match = regex.search(stream)
            if match is not None:
                text = match.group(1)
                try:
                    return float(text)
                except (TypeError, ValueError):
                    raise WorkloadError(
                        f"metric {name!r}: regex {how['regex']!r} captured {text!r}, not a number",
                        _excerpt(stdout + stderr),
                    ) from None
        raise WorkloadError(
            f"metric {name!r}: regex {how['regex']!r} matched nothing in the output",
            _excerpt(stdout + stderr),
        )
    path = how["json"]
    document = _json_document(stdout)
    if document is None:
        raise WorkloadError(
            f"metric {name!r}: the output is not JSON (looking for {path!r})",
            _excerpt(stdout + stderr),
        )
    value: Any = document
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif (
            isinstance(value, list)
            and re.fullmatch(r"-?\d+", part)
            and -len(value) <= int(part) < len(value)
        ):
            value = value[int(part)]
        else:
            raise WorkloadError(
                f"metric {name!r}: the JSON output has no {path!r} (no {part!r})",
                _excerpt(stdout),
            )
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise WorkloadError(
            f"metric {name!r}: {path!r} is {value!r}, not a number", _excerpt(stdout)
        )
    try:
        number = float(value)
    except ValueError:
        raise WorkloadError(
            f"metric {name!r}: {path!r} is {value!r}, not a number", _excerpt(stdout)
        ) from None
    if not math.isfinite(number):
        raise WorkloadError(f"metric {name!r}: {path!r} is {value!r}", _excerpt(stdout))
    return number


def _json_document(text: str) -> Any:
    """``text`` as one JSON document, else its last non-empty line as one; None if neither."""
    lines = [line for line in text.splitlines() if line.strip()]
    for candidate in (text, lines[-1] if lines else ""):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None


class CommandWorkload(Workload):
    """Runs the workload file's ``run`` command and reads its ``metrics``."""

    @property
    def params(self) -> dict[str, Any]:
        return self.definition.params

    def _timed(self) -> bool:
        """Whether the command takes its length from ``{duration}``."""
        return any("duration" in placeholders_in(item) for item in self.params["run_argv"])

    def _values(self, system: System, duration_s: float | None) -> dict[str, str]:
        values = dict(system.placeholders())
        if duration_s is not None:
            values["duration"] = str(max(1, math.ceil(duration_s)))
        return values

    def _argv(
        self,
        fld: str,
        template: list[str],
        system: System,
        duration_s: float | None,
        scratch: str = "",
    ) -> list[str]:
        lists = system.argv_placeholders()
        values = {**self._values(system, duration_s), "scratch": scratch}
        argv: list[str] = []
        try:
            for element in template:
                name = element[1:-1] if element.startswith("{") and element.endswith("}") else ""
                if name in lists:
                    argv += lists[name]
                else:
                    argv += fill_argv([element], values)
        except UnknownPlaceholder as exc:
            raise WorkloadError(
                f"workload {self.definition.path}: field {fld!r}: {exc} for system "
                f"{self.definition.system!r}"
            ) from None
        return argv

    def _execute(
        self,
        what: str,
        template: list[str],
        system: System,
        duration_s: float | None,
        timeout_s: float,
    ) -> tuple[str, str]:
        """Run the command (no shell) in a new scratch directory; its stdout and stderr."""
        with OwnedTempDir("autotune-cmd-") as scratch:
            field_name = "setup" if what == "setup" else "run"
            argv = self._argv(field_name, template, system, duration_s, str(scratch))
            program = shutil.which(argv[0])
            if program is None:
                raise WorkloadError(
                    f"{what}: program not found: {argv[0]!r}; install it or fix PATH"
                )
            try:
                result = subprocess.run(
                    [os.path.abspath(program), *argv[1:]],  # it runs in a scratch directory
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    errors="replace",
                    cwd=scratch,
                    timeout=timeout_s,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                out = _text(exc.stdout) + _text(exc.stderr)
                raise WorkloadError(
                    f"{what}: {shlex.join(argv)} did not finish within {timeout_s:g}s",
                    _excerpt(out),
                ) from None
            except OSError as exc:
                raise WorkloadError(f"{what}: cannot run {argv[0]!r}: {exc.strerror}") from None
        if result.returncode != 0:
            raise WorkloadError(
                f"{what}: {argv[0]} exited {result.returncode}",
                _excerpt(result.stdout + result.stderr),
            )
        return result.stdout, result.stderr

    def _timeout(self, seconds: float) -> float:
        timeout = self.params.get("timeout_s")
        return float(timeout) if timeout else 2 * seconds + 120

    def prepare(self, system: System) -> None:
        """Check the placeholders against the system, then run ``setup`` once."""
        self._argv("run", self.params["run_argv"], system, 1.0)
        for argv in self.params.get("setup_argvs", []):
            self._argv("setup", argv, system, None)
        for argv in self.params.get("setup_argvs", []):
            timeout = self.params.get("timeout_s") or SETUP_TIMEOUT_S
            self._execute("setup", argv, system, None, timeout)

    def _rounds(self, what: str, system: System, seconds: float | None) -> list[tuple[str, str]]:
        """Run the command once for ``seconds`` when it names {duration}; otherwise again
        and again until ``seconds`` are used up (at least once), or ``repeat`` times."""
        argv = self.params["run_argv"]
        if self._timed():
            length = seconds if seconds is not None else DEFAULT_DURATION_S
            return [self._execute(what, argv, system, length, self._timeout(length))]
        outputs: list[tuple[str, str]] = []
        t0 = time.monotonic()
        while (
            len(outputs) < self.params["repeat"]
            if seconds is None
            else (not outputs or time.monotonic() - t0 < seconds)
        ):
            outputs.append(
                self._execute(what, argv, system, seconds, self._timeout(seconds or 0.0))
            )
        return outputs

    def run(
        self, system: System, duration_s: float | None, phase: Phase, warmup: bool = True
    ) -> WorkloadResult:
        duration = duration_s or self.definition.duration_s
        result = WorkloadResult(metrics={})
        if warmup and self.definition.warmup_s > 0:
            phase("warmup")
            t0 = time.monotonic()
            self._rounds("warmup", system, self.definition.warmup_s)
            result.warmup_s = time.monotonic() - t0
        phase("measure")
        t0 = time.monotonic()
        outputs = self._rounds("run", system, duration)
        result.measure_s = time.monotonic() - t0
        phase("collect")
        t0 = time.monotonic()
        for name, how in self.params["metrics"].items():
            values = [read_metric(name, how, out, err) for out, err in outputs]
            result.metrics[name] = sum(values) / len(values)
        result.details["rounds"] = len(outputs)
        result.collect_s = time.monotonic() - t0
        return result


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")
