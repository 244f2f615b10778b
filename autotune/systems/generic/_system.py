"""A spec-only system: a server the agent starts, configured through its argv, its
environment or a config file, exactly as the spec's ``applier:`` mapping says.

Every value passes ``Knob.validate`` and is rendered by type (booleans by the
applier's ``bool`` words, default ``off``/``on`` as ``Knob.format`` writes them;
enums as the string; numbers bare in the knob's native unit, or with a unit
suffix under ``units: suffix``). A value only ever fills a placeholder inside
one argv element, one environment variable or one line of the config file:
nothing runs through a shell.

How a change takes effect, per knob, by its ``apply`` class:

- ``online``: the applier's ``online`` command, once per knob; without one, as
  ``reload``;
- ``reload``: config-file appliers rewrite the file and run ``reload``; without
  a reload command, and for command-args and env appliers (a running process's
  argv and environment cannot change), as ``restart``;
- ``restart``: stop the server (the ``stop`` signal, SIGKILL after the
  timeout) and start it again with every current value.

``init`` runs once in the new work directory before the first start (a data
directory to create). With ``show``, every value is read back after a change and
one the server runs differently (rounded to a block size, capped by another
setting) is reported in ``ApplyReport.not_applied``, as the PostgreSQL applier
does. A ``workload-flags`` system runs nothing: apply keeps the values, and the
workload's command takes them as ``{flags}`` (``argv_placeholders``).

A config the server does not take (a command fails, the server exits or is not
ready in time) is rolled back to the last good one, by the same means or by a
restart, and reported as ConfigFailed with the server's log. The values of the
current config are kept, so a restart for one knob keeps the others. A restart
of an in-memory server loses its data: a workload must not rely on data loaded
before a restart-class change.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path

from autotune.spec import APPLY_RANK, Config, KnobValueError, Spec, Value
from autotune.systems._base import ApplyReport, ConfigFailed, System, SystemError_
from autotune.systems._proc import free_port
from autotune.systems.generic._applier import FLAGS_KIND, HOST, Applier, env_name
from autotune.systems.generic._process import ServerProcess
from autotune.systems.generic._template import UnknownPlaceholder, fill, fill_argv
from autotune.systems.generic._values import os_user, same_value, sql_literal

COMMAND_TIMEOUT_S = 60.0
INIT_TIMEOUT_S = 600.0
SERVER_GAUGES = frozenset({"server.rss_bytes", "server.threads"})
_METHODS = ("online", "reload", "restart")


class GenericSystem(System):
    """A managed server in a private work directory, on a free loopback port."""

    metric_gauges = System.metric_gauges | SERVER_GAUGES

    def __init__(self, spec: Spec, applier: Applier, root: Path | None = None) -> None:
        self.spec = spec
        self.applier = applier
        self.server = ServerProcess(root, label=spec.system)
        self.port = 0
        self._values: dict[str, str] = {}  # knob -> rendered value the server runs with
        self._good: dict[str, str] = {}
        self._programs: dict[str, str] = {}  # program as written -> as run

    # -- placeholders and values --------------------------------------------------------
    def placeholders(self) -> dict[str, str]:
        workdir = "" if self.server.dir is None else str(self.server.dir)
        if self.applier.kind == FLAGS_KIND:
            return {"workdir": workdir}
        return {"port": str(self.port), "host": HOST, "workdir": workdir, "user": os_user()}

    def argv_placeholders(self) -> dict[str, list[str]]:
        """A workload-flags system's knobs as the flags of the workload's command."""
        if self.applier.kind != FLAGS_KIND:
            return {}
        return {"flags": self.flag_argv(self._values)}

    def flag_argv(self, values: dict[str, str]) -> list[str]:
        """``values`` as command-line flags, each element filled on its own."""
        argv: list[str] = []
        for name in self._ordered(values):
            argv += fill_argv(self.applier.flag, self._knob_placeholders(name, values[name]))
        return argv

    def render(self, name: str, value: Value) -> str:
        """``value`` checked against the knob and written as the system reads it."""
        knob = self.spec.knobs.get(name)
        if knob is None:
            raise SystemError_(f"knob {name!r} is not in spec {self.spec.path}")
        try:
            checked = knob.validate(value)
        except KnobValueError as exc:
            raise SystemError_(f"spec {self.spec.path}: {exc}") from None
        if knob.type == "bool":
            text = self.applier.bool_words[1 if checked else 0]
        elif knob.type == "enum":
            text = str(checked)
        elif self.applier.units == "suffix":
            text = knob.format(checked)
        elif knob.type == "integer":
            text = str(int(checked))
        else:
            text = f"{float(checked):.10g}"
        if any(c in text for c in "\0\r\n"):
            raise SystemError_(f"knob {name!r}: value {text!r} has a line break or NUL")
        return text

    def _ordered(self, values: dict[str, str]) -> list[str]:
        return [name for name in self.spec.knobs if name in values]

    def _knob_placeholders(self, name: str, value: str) -> dict[str, str]:
        return {
            **self.placeholders(),
            "name": self.applier.system_name(name),
            "value": value,
            "value_sql": sql_literal(self.spec.knobs[name], value),
        }

    def config_text(self, values: dict[str, str], server: dict[str, str] | None = None) -> str:
        """The config file for ``values``: the template (knobs not in ``values`` at their
        spec default), then one ``line`` per knob in ``values``. ``server`` stands in
        for the running server's placeholders (to print a config, not to run one)."""
        server = self.placeholders() if server is None else server
        text = ""
        if self.applier.template:
            filled = {
                name: values[name] if name in values else self.render(name, knob.default)
                for name, knob in self.spec.knobs.items()
            }
            text = fill(self.applier.template, {**filled, **server})
            if text and not text.endswith("\n"):
                text += "\n"
        if self.applier.line:
            for name in self._ordered(values):
                knob = {**server, "name": self.applier.system_name(name), "value": values[name]}
                text += fill(self.applier.line, knob) + "\n"
        return text

    def _write_config(self, values: dict[str, str]) -> None:
        if self.applier.kind != "config-file":
            return
        assert self.server.dir is not None
        path = self.server.dir / self.applier.path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".autotune-tmp")
        tmp.write_text(self.config_text(values))
        os.replace(tmp, path)  # a reader never sees half a file

    def _launch_args(self, values: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        argv = fill_argv(self.applier.start, self.placeholders())
        env = dict(os.environ)
        if self.applier.kind == "command-args":
            argv += self.flag_argv(values)
        elif self.applier.kind == "env":
            for name in self._ordered(values):
                env[env_name(self.applier.env, self.applier.system_name(name))] = values[name]
        else:
            self._write_config(values)
        return self._resolved(argv), env

    # -- programs -------------------------------------------------------------------------
    def _check_programs(self) -> None:
        """Every program the applier names must exist: one error naming the missing ones."""
        missing = []
        for fld, argv in self.applier.commands().items():
            program = argv[0]
            if "{" in program:
                continue
            found = shutil.which(str(Path(program).resolve()) if "/" in program else program)
            if found is None:
                missing.append(f"{program!r} (applier.{fld})")
            else:
                self._programs[program] = found
        if missing:
            raise SystemError_(
                f"{self.spec.system}: program not found: {', '.join(missing)}; install it or "
                f"put it on PATH (spec {self.spec.path})"
            )

    def _resolved(self, argv: list[str]) -> list[str]:
        return [self._programs.get(argv[0], argv[0]), *argv[1:]]

    def _run(self, what: str, argv: list[str], timeout_s: float = COMMAND_TIMEOUT_S) -> str:
        """Run an applier command in the work directory; its stdout, or SystemError_
        unless it exits 0."""
        argv = self._resolved(argv)
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                cwd=self.server.dir,
                timeout=timeout_s,
                check=False,
            )
        except FileNotFoundError:
            raise SystemError_(f"{what}: program not found: {argv[0]!r}") from None
        except subprocess.TimeoutExpired:
            self.server.note(f"{what}: {shlex.join(argv)}: no exit within {timeout_s:.0f}s")
            raise SystemError_(f"{what}: {argv[0]} ran over {timeout_s:.0f}s") from None
        output = (result.stdout + result.stderr).strip()
        self.server.note(f"{what}: {shlex.join(argv)}: exit {result.returncode} {output[-300:]}")
        if result.returncode != 0:
            raise SystemError_(f"{what}: {argv[0]} exited {result.returncode}", output[-2000:])
        return result.stdout

    # -- readiness --------------------------------------------------------------------------
    def _probe(self) -> bool:
        """One readiness check: the port accepts a connection, or the command exits 0."""
        ph = self.placeholders()
        if self.applier.ready_command is not None:
            try:
                self._run("ready", fill_argv(self.applier.ready_command, ph), timeout_s=5)
            except SystemError_:
                return False
            return True
        assert self.applier.ready_tcp is not None
        try:
            port = int(fill(self.applier.ready_tcp, ph))
        except ValueError:
            raise SystemError_(
                f"applier.ready.tcp: {self.applier.ready_tcp!r} is not a port"
            ) from None
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return True
        except OSError:
            return False

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.applier.ready_timeout_s
        while True:
            code = self.server.exit_code()
            if code is not None or self.server.proc is None:
                excerpt = self.server.log_tail()
                self.server.terminate(self.applier.stop_signal, self.applier.stop_timeout_s)
                raise SystemError_(f"{self.spec.system} exited with code {code}", excerpt)
            if self._probe():
                return
            if time.monotonic() > deadline:
                excerpt = self.server.log_tail()
                self.server.terminate(self.applier.stop_signal, self.applier.stop_timeout_s)
                raise SystemError_(
                    f"{self.spec.system} was not ready within {self.applier.ready_timeout_s:g}s",
                    excerpt,
                )
            time.sleep(0.05)

    def healthy(self) -> bool:
        if self.applier.kind == FLAGS_KIND:
            return self.server.dir is not None
        return self.server.alive() and self._probe()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Create the work directory, run ``init`` there, and start the server with none
        of the knobs set (a workload-flags system starts nothing)."""
        self._check_programs()
        self.server.create()
        self._values, self._good = {}, {}
        if self.applier.kind == FLAGS_KIND:
            return
        try:
            self.port = free_port()
            if self.applier.init:
                self._run("init", fill_argv(self.applier.init, self.placeholders()), INIT_TIMEOUT_S)
            self._restart({})
        except SystemError_ as exc:
            excerpt = exc.log_excerpt or self.server.log_tail()
            self.stop()
            raise SystemError_(f"{self.spec.system} did not start: {exc}", excerpt) from None
        except BaseException:
            self.stop()
            raise
        self._values, self._good = {}, {}

    def _restart(self, values: dict[str, str]) -> None:
        """Stop the server if it runs, start it with ``values`` and wait until it is ready."""
        self.server.terminate(self.applier.stop_signal, self.applier.stop_timeout_s)
        try:
            argv, env = self._launch_args(values)
        except UnknownPlaceholder as exc:
            raise SystemError_(f"spec {self.spec.path}: applier: {exc}") from None
        self.server.note(f"start: {shlex.join(argv)}")
        try:
            self.server.launch(argv, env)
        except OSError as exc:
            raise SystemError_(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from None
        self._wait_ready()

    def _method(self, name: str) -> str:
        """How a change of knob ``name`` takes effect with this applier."""
        wanted = self.spec.knobs[name].apply
        if wanted == "online" and self.applier.online:
            return "online"
        if wanted in ("online", "reload") and self.applier.reload:
            return "reload"
        return "restart"

    def _needed(self, target: dict[str, str]) -> tuple[str, list[str]]:
        """The method that takes the server from its values to ``target``, and what changes."""
        changed = [n for n in self._ordered(target) if self._values.get(n) != target[n]]
        if not self.server.alive() or any(n not in target for n in self._values):
            return "restart", changed  # dropping a value needs a fresh start
        rank = max((APPLY_RANK[self._method(n)] for n in changed), default=0)
        return _METHODS[rank], changed

    def _change(self, method: str, changed: list[str], target: dict[str, str]) -> None:
        """Take the server to ``target`` by ``method``; SystemError_ if it does not take it."""
        self._values = dict(target)
        if method == "restart":
            self._restart(target)
            return
        self._write_config(target)
        if method == "reload":
            assert self.applier.reload is not None
            self._run("reload", fill_argv(self.applier.reload, self.placeholders()))
        else:
            online = self.applier.online or ()
            for name in changed:
                argv = fill_argv(online, self._knob_placeholders(name, target[name]))
                self._run(f"online {name}={target[name]}", argv)
        self._wait_ready()

    def apply(self, config: Config) -> ApplyReport:
        wanted = {name: self.render(name, value) for name, value in config.items()}
        if self.applier.kind == FLAGS_KIND:  # the workload's next run takes them
            self._values = wanted
            return ApplyReport(action="online")
        method, changed = self._needed(wanted)
        report = ApplyReport(action=method)
        t0 = time.monotonic()
        try:
            self._change(method, changed, wanted)
        except SystemError_ as exc:
            excerpt = exc.log_excerpt or self.server.log_tail()
            self.rollback()
            raise ConfigFailed(f"{exc}; rolled back to the last good config", excerpt) from None
        took = time.monotonic() - t0
        if method == "online":
            report.apply_s = took
        else:
            report.restart_s = took
        if self.applier.show:
            t0 = time.monotonic()
            report.not_applied = self._read_back(wanted)
            report.apply_s += time.monotonic() - t0
        return report

    def _read_back(self, wanted: dict[str, str]) -> dict[str, str]:
        """Knobs the server does not run as set, by the applier's ``show`` command."""
        assert self.applier.show is not None
        out: dict[str, str] = {}
        for name in self._ordered(wanted):
            argv = fill_argv(self.applier.show, self._knob_placeholders(name, ""))
            try:
                have = self._run(f"show {name}", argv).strip()
            except SystemError_ as exc:
                out[name] = f"wanted {wanted[name]}, cannot read it back: {exc}"
                continue
            if not same_value(self.spec.knobs[name], wanted[name], have, self.applier.bool_words):
                out[name] = f"wanted {wanted[name]}, server has {have or '(nothing)'}"
        return out

    def mark_good(self) -> None:
        self._good = dict(self._values)

    def rollback(self) -> None:
        """Back to the last good values: online or by reload when that suffices and works,
        else by a restart; SystemError_ when even that does not come up."""
        target = dict(self._good)
        if self.applier.kind == FLAGS_KIND:
            self._values = target
            return
        method, changed = self._needed(target)
        if method != "restart" and self.healthy():
            try:
                self._change(method, changed, target)
                return
            except SystemError_:
                pass  # a restart below puts every value in place
        self._values = target
        try:
            self._restart(target)
        except SystemError_ as exc:
            raise SystemError_(
                f"{self.spec.system} did not come back with the last good config: {exc}",
                exc.log_excerpt,
            ) from None

    def restore(self, config: Config | None = None) -> None:
        """Leave ``config`` applied, or (the original: no server) stop and remove it."""
        if config is not None:
            self.apply(config)
        else:
            self.stop()

    def stop(self) -> None:
        self.server.destroy(self.applier.stop_signal, self.applier.stop_timeout_s)

    def log_excerpt(self) -> str:
        return self.server.log_tail()

    def metrics_snapshot(self) -> dict[str, float]:
        """The host's counters plus the server process's CPU time, context switches,
        resident memory and threads (``server.*``), from /proc."""
        out = super().metrics_snapshot()
        pid = self.server.pid
        if pid is not None and self.server.alive():
            out.update(_process_metrics(Path("/proc") / str(pid)))
        return out


def _process_metrics(proc: Path) -> dict[str, float]:
    """proc(5): utime and stime (fields 14, 15) in clock ticks, num_threads (20)."""
    out: dict[str, float] = {}
    try:
        stat = (proc / "stat").read_text()
        status = (proc / "status").read_text()
    except OSError:
        return out
    fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    ticks = os.sysconf("SC_CLK_TCK")
    if len(fields) > 17:
        out["server.cpu_user_s"] = int(fields[11]) / ticks
        out["server.cpu_system_s"] = int(fields[12]) / ticks
        out["server.threads"] = float(fields[17])
    for line in status.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if not parts or not parts[0].isdigit():
            continue
        if key == "VmRSS":
            out["server.rss_bytes"] = float(parts[0]) * 1024
        elif key == "voluntary_ctxt_switches":
            out["server.ctx_switches_voluntary"] = float(parts[0])
        elif key == "nonvoluntary_ctxt_switches":
            out["server.ctx_switches_involuntary"] = float(parts[0])
    return out
