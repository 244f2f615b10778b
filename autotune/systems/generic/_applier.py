"""The ``applier:`` mapping of a spec-only system, read and checked in one go.

Schema (every field but ``kind`` and ``start`` is optional unless noted)::

    applier:
      kind: command-args | env | config-file | workload-flags
      start: [argv]               # the server, in the foreground; {port} {host} {workdir}
                                  # {user}; required, except for workload-flags
      init: [argv]                # once, in the new workdir, before the first start
                                  # (create a data directory); server placeholders
      # command-args
      flag: "--{name} {value}"    # per knob; split on spaces into argv elements, each
                                  # filled on its own (a value is always ONE element);
                                  # or a list: ["--{name}", "{value}"]
      # env
      env: "{NAME}"               # per knob: the variable's name; {NAME} is the name
                                  # upper-cased with '.' and '-' as '_'; {name} as is
      # config-file
      path: server.conf           # required; relative to the workdir
      template: "text {knob} …"   # inline text, or {file: NAME} next to the spec;
                                  # {knob_name} is that knob's value
      line: "{name} {value}"      # one line per knob of the config, after the template
      reload: [argv]              # for apply: reload knobs; without it they restart
      # command-args and env: how the system's own config file writes a setting, for
      # `autotune best --format conf` only (the server is still configured by argv/env)
      line: "{name} {value}"
      # workload-flags: no server; the knobs are flags of the workload's own command,
      # which names them as one argv element "{flags}" (``flag`` as for command-args)
      # any server kind
      online: [argv]              # change one apply: online knob at runtime; {name}
                                  # {value}, or {value_sql}: a SQL literal (numbers bare,
                                  # words quoted) for a statement such as SET GLOBAL
      show: [argv]                # print one knob's value ({name}): every applied value
                                  # is read back, and a difference is reported
      ready: {tcp: "{port}"}      # or {command: [argv]} (exit 0 = ready); timeout: 30s
      stop: {signal: TERM, timeout: 10s}
      bool: ["off", "on"]         # how false and true are written (default off/on)
      names: dashes               # io_threads -> io-threads; or {knob: system-name}
      units: native               # numbers bare in the knob's unit; "suffix": 64MB, 5min

Knob names cannot contain dashes (constraints would read them as minus), so a
system whose settings use dashes says ``names: dashes``.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune.spec import TIME_UNITS, Spec, Unit, UnitError, parse_quantity
from autotune.systems.generic._template import check, placeholders_in

SERVER_KINDS = ("command-args", "env", "config-file")
FLAGS_KIND = "workload-flags"
KINDS = (*SERVER_KINDS, FLAGS_KIND)
HOST = "127.0.0.1"
SERVER_PLACEHOLDERS = ("port", "host", "workdir", "user")
KNOB_PLACEHOLDERS = ("name", "value")
ONLINE_PLACEHOLDERS = ("name", "value", "value_sql")
COMMON = frozenset({"kind", "bool", "names", "units"})
SERVER_FIELDS = frozenset({"start", "init", "online", "show", "ready", "stop"})
KIND_FIELDS = {
    "command-args": SERVER_FIELDS | {"flag", "line"},
    "env": SERVER_FIELDS | {"env", "line"},
    "config-file": SERVER_FIELDS | {"path", "template", "line", "reload"},
    FLAGS_KIND: frozenset({"flag", "line"}),
}
# A setting's name as the system spells it fills commands and statements: no spaces,
# quotes, semicolons or other punctuation that could change what they say.
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_SECONDS = Unit("s", "time", TIME_UNITS["s"])
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Applier:
    """A checked applier mapping."""

    kind: str
    start: tuple[str, ...] = ()
    init: tuple[str, ...] | None = None
    show: tuple[str, ...] | None = None
    flag: tuple[str, ...] = ("--{name}", "{value}")
    env: str = "{NAME}"
    path: str = ""
    template: str = ""
    line: str = ""
    reload: tuple[str, ...] | None = None
    online: tuple[str, ...] | None = None
    ready_tcp: str | None = "{port}"
    ready_command: tuple[str, ...] | None = None
    ready_timeout_s: float = 30.0
    stop_signal: int = int(signal.SIGTERM)
    stop_timeout_s: float = 10.0
    bool_words: tuple[str, str] = ("off", "on")
    names: dict[str, str] = field(default_factory=dict)
    dashes: bool = False
    units: str = "native"

    def system_name(self, knob: str) -> str:
        """The setting's name as the system spells it."""
        if knob in self.names:
            return self.names[knob]
        return knob.replace("_", "-") if self.dashes else knob

    def commands(self) -> dict[str, tuple[str, ...]]:
        """Every argv the applier may run, by field: for the executable check."""
        out = {"start": self.start} if self.start else {}
        for name, argv in (
            ("init", self.init),
            ("show", self.show),
            ("online", self.online),
            ("reload", self.reload),
            ("ready.command", self.ready_command),
        ):
            if argv:
                out[name] = argv
        return out


def env_name(pattern: str, name: str) -> str:
    """``pattern`` for a setting called ``name``: {NAME} upper-cased, '.' and '-' as '_'."""
    upper = name.upper().replace(".", "_").replace("-", "_")
    return pattern.replace("{NAME}", upper).replace("{name}", name)


def parse_applier(spec: Spec) -> tuple[Applier | None, list[str]]:
    """The spec's applier mapping, or every problem in it (one line each)."""
    problems: list[str] = []

    def bad(fld: str, message: str) -> None:
        problems.append(f"{spec.path}: field 'applier.{fld}': {message}")

    raw = spec.applier
    if not isinstance(raw, dict):
        return None, [f"{spec.path}: field 'applier': a generic applier needs a mapping with kind"]
    kind = raw.get("kind")
    if kind not in KINDS:
        bad("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
        return None, problems
    for key in sorted(set(raw) - COMMON - KIND_FIELDS[kind], key=str):
        other = [k for k, fields in KIND_FIELDS.items() if key in fields]
        hint = f" (it belongs to {other[0]} appliers)" if other else ""
        if kind == FLAGS_KIND and key in SERVER_FIELDS:
            hint = " (a workload-flags system runs no server: its workload runs the program)"
        bad(str(key), f"unknown field for a {kind} applier{hint}")
    server = set(SERVER_PLACEHOLDERS)
    knob_args = server | set(KNOB_PLACEHOLDERS)
    if kind == FLAGS_KIND:
        server = {"workdir"}
        knob_args = set(KNOB_PLACEHOLDERS)

    def argv(fld: str, value: Any, allowed: set[str], required: bool = False) -> tuple[str, ...]:
        if value is None:
            if required:
                bad(fld, "missing (a list of program and arguments)")
            return ()
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value)
        ):
            bad(fld, "must be a non-empty list of strings (program and arguments)")
            return ()
        items = tuple(str(v) for v in value)
        if not items[0].strip():
            bad(fld, "the program (first element) is empty")
        for element in items:
            for message in check(element, allowed):
                bad(fld, message)
        return items

    values: dict[str, Any] = {"kind": kind}
    if kind != FLAGS_KIND:
        values["start"] = argv("start", raw.get("start"), server, required=True)
        values["init"] = argv("init", raw.get("init"), server) or None
        online = argv("online", raw.get("online"), server | set(ONLINE_PLACEHOLDERS)) or None
        values["online"] = online
        if online is not None and not {"value", "value_sql"} & {
            p for element in online for p in placeholders_in(element)
        }:
            bad("online", "must pass the new value: {value} or {value_sql}")
        show = argv("show", raw.get("show"), server | {"name"}) or None
        values["show"] = show
        if show is not None and "name" not in {p for e in show for p in placeholders_in(e)}:
            bad("show", "must name the setting to print: {name}")
    else:
        values["ready_tcp"] = None

    if kind in ("command-args", FLAGS_KIND):
        flag = raw.get("flag", "--{name} {value}")
        if isinstance(flag, str):
            parts = tuple(flag.split())
        elif isinstance(flag, list) and all(isinstance(p, str) for p in flag):
            parts = tuple(flag)
        else:
            bad("flag", 'must be a pattern such as "--{name} {value}" or a list of them')
            parts = ()
        if parts and not any("{value}" in p for p in parts):
            bad("flag", "must place the value: {value}")
        for part in parts:
            for message in check(part, knob_args):
                bad("flag", message)
        if parts:
            values["flag"] = parts
    elif kind == "env":
        pattern = raw.get("env", "{NAME}")
        if not isinstance(pattern, str) or ("{NAME}" not in pattern and "{name}" not in pattern):
            bad("env", 'must be a variable name pattern with {NAME} or {name}, e.g. "APP_{NAME}"')
        else:
            for message in check(pattern, {"NAME", "name"}):
                bad("env", message)
            values["env"] = pattern
    else:
        _config_file(spec, raw, values, bad)
        values["reload"] = argv("reload", raw.get("reload"), server) or None

    if kind != "config-file" and raw.get("line") is not None:
        _line(raw.get("line"), values, bad)

    if kind != FLAGS_KIND:
        _ready(raw.get("ready"), values, bad, server, argv)
        _stop(raw.get("stop"), values, bad)
    words = raw.get("bool")
    if words is not None:
        if isinstance(words, list) and len(words) == 2 and any(isinstance(w, bool) for w in words):
            bad("bool", 'quote the words: YAML reads bare no/yes/off/on as booleans: ["no", "yes"]')
        elif (
            not isinstance(words, list)
            or len(words) != 2
            or not all(isinstance(w, str | int) for w in words)
            or str(words[0]) == str(words[1])
        ):
            bad("bool", 'must be two different words, for false then true: ["no", "yes"]')
        else:
            values["bool_words"] = (str(words[0]), str(words[1]))
    names = raw.get("names")
    if names == "dashes":
        values["dashes"] = True
    elif isinstance(names, dict):
        mapping: dict[str, str] = {}
        for knob, name in names.items():
            if knob not in spec.knobs:
                bad(f"names.{knob}", "not a knob of this spec")
            elif not isinstance(name, str) or not _SETTING_NAME.match(name):
                bad(f"names.{knob}", f"{name!r} is not a setting name (letters, digits, _ . -)")
            else:
                mapping[str(knob)] = name
        values["names"] = mapping
    elif names is not None:
        bad("names", "must be dashes (each '_' in a knob name becomes '-') or {knob: name}")
    units = raw.get("units", "native")
    if units not in ("native", "suffix"):
        bad("units", f"{units!r} is not native (bare numbers) or suffix (64MB, 5min)")
    else:
        values["units"] = units
    if problems:
        return None, problems
    applier = Applier(**values)
    if kind == "env":
        for knob in spec.knobs:
            var = env_name(applier.env, applier.system_name(knob))
            if not _ENV_NAME.match(var):
                bad("env", f"knob {knob!r} gives {var!r}, not an environment variable name")
    if problems:
        return None, problems
    return applier, []


def _config_file(spec: Spec, raw: dict[str, Any], values: dict[str, Any], bad: Any) -> None:
    path = raw.get("path")
    if not isinstance(path, str) or not path.strip():
        bad("path", "missing (the config file's name, relative to the workdir)")
    elif Path(path).is_absolute() or ".." in Path(path).parts:
        bad("path", f"{path!r} must be a relative path inside the workdir")
    else:
        values["path"] = path
    template = raw.get("template")
    if isinstance(template, dict):
        unknown = sorted(set(template) - {"file"}, key=str)
        name = template.get("file")
        if unknown or not isinstance(name, str):
            bad("template", "must be inline text or {file: NAME}, a file next to the spec")
            template = None
        else:
            file = Path(spec.path).parent / name
            try:
                template = file.read_text()
            except (OSError, UnicodeDecodeError) as exc:
                bad("template", f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}")
                template = None
    elif template is not None and not isinstance(template, str):
        bad("template", "must be inline text or {file: NAME}, a file next to the spec")
        template = None
    line = raw.get("line")
    if line is not None and not isinstance(line, str):
        bad("line", 'must be a pattern such as "{name} {value}"')
        line = None
    if template is None and line is None:
        bad("template", "give a template, a line pattern, or both")
        return
    clash = sorted(set(spec.knobs) & set(SERVER_PLACEHOLDERS))
    if template and clash:
        bad("template", f"knob(s) {', '.join(clash)} shadow the placeholders of the same name")
    if template:
        for message in check(template, set(spec.knobs) | set(SERVER_PLACEHOLDERS)):
            bad("template", message)
        values["template"] = template
    if line is not None:
        _line(line, values, bad)


def _line(line: Any, values: dict[str, Any], bad: Any) -> None:
    if not isinstance(line, str):
        bad("line", 'must be a pattern such as "{name} {value}"')
        return
    if "{value}" not in line:
        bad("line", "must place the value: {value}")
    for message in check(line, set(SERVER_PLACEHOLDERS) | set(KNOB_PLACEHOLDERS)):
        bad("line", message)
    values["line"] = line


def _seconds(value: Any, fld: str, bad: Any) -> float | None:
    try:
        seconds = float(parse_quantity(value, _SECONDS))
    except UnitError as exc:
        bad(fld, str(exc))
        return None
    if seconds <= 0:
        bad(fld, "must be positive")
        return None
    return seconds


def _ready(raw: Any, values: dict[str, Any], bad: Any, server: set[str], argv: Any) -> None:
    if raw is None:
        return
    if not isinstance(raw, dict) or ("tcp" in raw) == ("command" in raw):
        bad("ready", 'give exactly one of {tcp: "{port}"} or {command: [argv]}')
        return
    for key in sorted(set(raw) - {"tcp", "command", "timeout"}, key=str):
        bad(f"ready.{key}", "unknown field")
    if "tcp" in raw:
        port = raw["tcp"]
        if isinstance(port, bool) or not isinstance(port, str | int):
            bad("ready.tcp", 'must be a port: "{port}" or a number')
        elif not placeholders_in(str(port)) and not str(port).isdigit():
            bad("ready.tcp", f"{port!r} is not a port number")
        else:
            for message in check(str(port), server):
                bad("ready.tcp", message)
            values["ready_tcp"] = str(port)
    else:
        values["ready_tcp"] = None
        values["ready_command"] = argv("ready.command", raw["command"], server, required=True)
    if "timeout" in raw:
        seconds = _seconds(raw["timeout"], "ready.timeout", bad)
        if seconds is not None:
            values["ready_timeout_s"] = seconds


def _stop(raw: Any, values: dict[str, Any], bad: Any) -> None:
    if raw is None:
        return
    if not isinstance(raw, dict):
        bad("stop", "must be {signal: TERM, timeout: 10s}")
        return
    for key in sorted(set(raw) - {"signal", "timeout"}, key=str):
        bad(f"stop.{key}", "unknown field")
    if "signal" in raw:
        name = str(raw["signal"]).upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        number = signal.Signals.__members__.get(name)
        if number is None:
            bad("stop.signal", f"{raw['signal']!r} is not a signal name (TERM, INT, QUIT, …)")
        else:
            values["stop_signal"] = int(number)
    if "timeout" in raw:
        seconds = _seconds(raw["timeout"], "stop.timeout", bad)
        if seconds is not None:
            values["stop_timeout_s"] = seconds
