"""Spec-only systems: a tiny Python TCP server stands in for the real one.

The server reads its settings from its flags, its environment or its config
file, and answers ``GET name`` with what it received, so each test can check
exactly what the applier passed. A setting whose value is ``crash`` makes it
exit at start (a config that stops the server from starting); ``SET`` to
``crash`` is refused (a config the running server rejects).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autotune.spec import Spec, SpecError, parse_spec
from autotune.systems import ConfigFailed, SystemError_
from autotune.systems._registry import Target, known_kinds, make_system
from autotune.systems.generic import GenericSystem, check_applier, parse_applier
from autotune.systems.generic._process import PREFIX, group_members, sweep_stale
from tests.unit._support import MACHINE

SERVER = r"""
import json, os, signal, socket, sys, time

args = sys.argv[1:]
opts = {}
i = 0
while i < len(args):
    assert args[i].startswith("--"), args
    opts[args[i][2:]] = args[i + 1]
    i += 2
port = int(opts.pop("port"))
config = opts.pop("config", None)
prefix = opts.pop("env-prefix", None)
ignore_term = opts.pop("ignore-term", "no") == "yes"
fork_child = opts.pop("fork-child", "no") == "yes"
never_ready = opts.pop("never-ready", "no") == "yes"
settings = dict(opts)


def read_config():
    out = {}
    if config:
        for line in open(config):
            line = line.split("#", 1)[0].strip()
            if line:
                name, _, value = line.partition(" ")
                out[name] = value.strip()
    return out


if prefix:
    settings.update({k[len(prefix):]: v for k, v in os.environ.items() if k.startswith(prefix)})
settings.update(read_config())
for name, value in settings.items():
    if value == "crash":
        print(f"FATAL: bad value for {name}", flush=True)
        sys.exit(1)
if ignore_term:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if fork_child and os.fork() == 0:
    while True:  # a child in the server's process group
        time.sleep(1)
print(f"serving on {port}", flush=True)
while never_ready:
    time.sleep(1)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(16)
while True:
    conn, _ = srv.accept()
    with conn:
        line = conn.makefile().readline().rstrip("\n")
        if not line:
            continue
        cmd, _, rest = line.partition(" ")
        if cmd == "GET":
            reply = settings.get(rest, "(nil)")
        elif cmd == "ARGV":
            reply = json.dumps(sys.argv[1:])
        elif cmd == "PID":
            reply = str(os.getpid())
        elif cmd == "SET":
            name, _, value = rest.partition(" ")
            if value == "crash":
                reply = f"ERR bad value for {name}"
            else:
                settings[name] = value
                reply = "OK"
        elif cmd == "RELOAD":
            fresh = read_config()
            if "crash" in fresh.values():
                reply = "ERR bad config"
            else:
                settings.update(fresh)
                reply = "OK"
        else:
            reply = "ERR unknown command"
        conn.sendall((reply + "\n").encode())
"""

CLIENT = r"""
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as s:
    s.sendall((" ".join(sys.argv[2:]) + "\n").encode())
    reply = s.makefile().readline().strip()
print(reply)
sys.exit(1 if reply.startswith("ERR") else 0)
"""

KNOBS = """\
knobs:
  max_conns: {type: integer, min: 1, max: 1000, default: 100, apply: restart}
  hz: {type: integer, min: 1, max: 500, default: 10, apply: online}
  cache.size: {type: integer, unit: kB, min: 64kB, max: 1GB, default: 1MB, apply: reload}
  fast: {type: bool, default: false, apply: online}
  mode: {type: enum, values: ["safe", "quick", "a b", "crash"], default: "safe", apply: online}
"""


@pytest.fixture
def scripts(tmp_path: Path) -> tuple[str, str]:
    server = tmp_path / "toyserver.py"
    server.write_text(SERVER)
    client = tmp_path / "toyclient.py"
    client.write_text(CLIENT)
    return str(server), str(client)


def q(text: str) -> str:
    """A YAML flow scalar for a path."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.fixture
def systems(tmp_path: Path) -> Iterator[Callable[[str], GenericSystem]]:
    """Build (and always stop) systems from an applier mapping's YAML."""
    made: list[GenericSystem] = []

    def make(applier_yaml: str, knobs: str = KNOBS) -> GenericSystem:
        path = tmp_path / "toy.yaml"
        text = f"system: toy\napplier:\n{applier_yaml}{knobs}"
        path.write_text(text)
        spec = parse_spec(text, str(path), MACHINE)
        applier, problems = parse_applier(spec)
        assert not problems, problems
        assert applier is not None
        system = GenericSystem(spec, applier, root=tmp_path / "root")
        made.append(system)
        return system

    yield make
    for system in made:
        system.stop()


def command_args(scripts: tuple[str, str], extra: str = "", online: bool = True) -> str:
    server, client = scripts
    py = q(sys.executable)
    text = (
        "  kind: command-args\n"
        f"  start: [{py}, {q(server)}, --port, '{{port}}']\n"
        '  flag: "--{name} {value}"\n'
        "  names: dashes\n"
    )
    if online:
        text += f"  online: [{py}, {q(client)}, '{{port}}', SET, '{{name}}', '{{value}}']\n"
    return text + extra


def ask(system: GenericSystem, line: str) -> str:
    port = int(system.placeholders()["port"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall((line + "\n").encode())
        return s.makefile().readline().strip()


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie nobody reaped yet counts as exited)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


DEFAULTS = {"max_conns": 100, "hz": 10, "cache.size": 1024, "fast": False, "mode": "safe"}


# -- command-args ---------------------------------------------------------------------


def test_command_args_start_flags_online_and_restart(
    systems: Callable[..., GenericSystem], scripts: tuple[str, str]
) -> None:
    system = systems(command_args(scripts))
    system.start()
    ph = system.placeholders()
    assert ph["host"] == "127.0.0.1" and int(ph["port"]) > 0
    assert Path(ph["workdir"]).is_dir() and Path(ph["workdir"]).name.startswith(PREFIX)
    assert system.healthy()
    system.mark_good()

    report = system.apply(DEFAULTS)  # the first config: a restart with every value as a flag
    assert report.action == "restart"
    first_pid = ask(system, "PID")
    assert ask(system, "GET max-conns") == "100"  # names: dashes
    assert ask(system, "GET cache.size") == "1024"  # native unit, bare; dots stay
    assert ask(system, "GET fast") == "off"  # the default bool words
    system.mark_good()

    report = system.apply({**DEFAULTS, "hz": 50, "mode": "a b"})  # online: CONFIG SET-like
    assert report.action == "online" and report.apply_s > 0
    assert ask(system, "PID") == first_pid
    assert ask(system, "GET hz") == "50"
    assert ask(system, "GET mode") == "a b"

    report = system.apply({**DEFAULTS, "hz": 50, "mode": "a b", "max_conns": 7})
    assert report.action == "restart" and report.restart_s > 0
    assert ask(system, "PID") != first_pid
    # The online values survive the restart: every current value is a flag.
    assert ask(system, "GET hz") == "50" and ask(system, "GET max-conns") == "7"
    # A value is exactly one argv element, whatever it holds.
    argv = ask(system, "ARGV")
    assert '"--mode", "a b"' in argv


def test_reload_knobs_restart_with_command_args(
    systems: Callable[..., GenericSystem], scripts: tuple[str, str]
) -> None:
    system = systems(command_args(scripts))
    system.start()
    system.apply(DEFAULTS)
    pid = ask(system, "PID")
    report = system.apply({**DEFAULTS, "cache.size": 2048})
    assert report.action == "restart"  # argv cannot change on a running process
    assert ask(system, "PID") != pid and ask(system, "GET cache.size") == "2048"


def test_online_knobs_restart_without_an_online_command(
    systems: Callable[..., GenericSystem], scripts: tuple[str, str]
) -> None:
    system = systems(command_args(scripts, online=False))
    system.start()
    system.apply(DEFAULTS)
    report = system.apply({**DEFAULTS, "hz": 20})
    assert report.action == "restart" and ask(system, "GET hz") == "20"
    assert system.apply({**DEFAULTS, "hz": 20}).action == "online"  # nothing changed


def test_bool_words_and_unit_suffixes(
    systems: Callable[..., GenericSystem], scripts: tuple[str, str]
) -> None:
    system = systems(command_args(scripts, '  bool: ["no", "yes"]\n  units: suffix\n'))
    system.start()
    system.apply({**DEFAULTS, "fast": True, "cache.size": 2048})
    assert ask(system, "GET fast") == "yes"
    assert ask(system, "GET cache.size") == "2MB"


def test_a_value_the_server_refuses_online_is_rolled_back(
    systems: Callable[..., GenericSystem], scripts: tuple[str, str]
) -> None:
    system = systems(command_args(scripts))
    system.start()
    system.apply({**DEFAULTS, "hz": 40})
    system.mark_good()
    pid = ask(system, "PID")
    with pytest.raises(ConfigFailed) as failed:
        system.apply({**DEFAULTS, "hz": 41, "mode": "crash"})
    assert "rolled back" in str(failed.value)
    assert "ERR bad value for mode" in failed.value.log_excerpt
    assert system.healthy()
    assert ask(system, "PID") == pid  # undone online, no restart needed
    assert ask(system, "GET hz") == "40" and ask(system, "GET mode") == "safe"
    assert system.apply({**DEFAULTS, "hz": 40}).action == "online"  # back in step


def test_a_config_that_stops_the_server_from_starting_is_rolled_back(
    systems: Callable[..., GenericSystem], scripts: tuple[str, str]
) -> None:
    system = systems(command_args(scripts, online=False))
    system.start()
    system.apply({**DEFAULTS, "max_conns": 5})
    system.mark_good()
    with pytest.raises(ConfigFailed) as failed:
        system.apply({**DEFAULTS, "max_conns": 6, "mode": "crash"})
    assert "exited with code 1" in str(failed.value)
    assert "FATAL: bad value for mode" in failed.value.log_excerpt
    assert system.healthy()
    assert ask(system, "GET max-conns") == "5" and ask(system, "GET mode") == "safe"
    assert "FATAL" in system.log_excerpt() or "serving" in system.log_excerpt()
    # The log file lives in the workdir.
    log = Path(system.placeholders()["workdir"]) / "server.log"
    assert "FATAL: bad value for mode" in log.read_text()


def test_invalid_values_never_reach_the_server(
    systems: Callable[..., GenericSystem], scripts: tuple[str, str]
) -> None:
    system = systems(command_args(scripts))
    system.start()
    with pytest.raises(SystemError_, match="outside"):
        system.apply({**DEFAULTS, "hz": 10_000})
    with pytest.raises(SystemError_, match="not one of"):
        system.apply({**DEFAULTS, "mode": "; rm -rf /"})
    with pytest.raises(SystemError_, match="not in spec"):
        system.apply({"nope": 1})


# -- env ---------------------------------------------------------------------------------


def test_env_applier_puts_values_in_variables(
    systems: Callable[..., GenericSystem], scripts: tuple[str, str]
) -> None:
    server, client = scripts
    py = q(sys.executable)
    system = systems(
        "  kind: env\n"
        f"  start: [{py}, {q(server)}, --port, '{{port}}', --env-prefix, TOY_]\n"
        '  env: "TOY_{NAME}"\n'
        f"  online: [{py}, {q(client)}, '{{port}}', SET, 'TOY_{{name}}', '{{value}}']\n"
    )
    system.start()
    assert system.apply(DEFAULTS).action == "restart"
    assert ask(system, "GET CACHE_SIZE") == "1024"  # dots become underscores
    assert ask(system, "GET MAX_CONNS") == "100"
    pid = ask(system, "PID")
    assert system.apply({**DEFAULTS, "cache.size": 4096}).action == "restart"
    assert ask(system, "GET CACHE_SIZE") == "4096" and ask(system, "PID") != pid


# -- config-file -------------------------------------------------------------------------


def config_file(scripts: tuple[str, str], body: str) -> str:
    server, client = scripts
    py = q(sys.executable)
    return (
        "  kind: config-file\n"
        "  path: conf/toy.conf\n"
        f"  start: [{py}, {q(server)}, --port, '{{port}}', --config, '{{workdir}}/conf/toy.conf']\n"
        f"  reload: [{py}, {q(client)}, '{{port}}', RELOAD]\n" + body
    )


def test_config_file_template_reload_and_restart(
    systems: Callable[..., GenericSystem], scripts: tuple[str, str]
) -> None:
    template = "# toy config for port {port}\\nmax_conns {max_conns}\\ncache {cache.size}\\n"
    system = systems(
        config_file(scripts, f'  template: "{template}"\n  line: "{{name}} {{value}}"\n')
    )
    system.start()
    conf = Path(system.placeholders()["workdir"]) / "conf" / "toy.conf"
    assert system.apply(DEFAULTS).action == "restart"
    text = conf.read_text()
    assert f"# toy config for port {system.placeholders()['port']}" in text
    assert "max_conns 100\ncache 1024\n" in text and "hz 10\n" in text
    pid = ask(system, "PID")

    report = system.apply({**DEFAULTS, "cache.size": 2048, "hz": 30})
    assert report.action == "reload"  # online knobs ride along in the reloaded file
    assert ask(system, "PID") == pid
    assert ask(system, "GET cache") == "2048" and ask(system, "GET hz") == "30"
    system.mark_good()

    assert system.apply({**DEFAULTS, "cache.size": 2048, "hz": 30, "max_conns": 3}).action == (
        "restart"
    )
    assert ask(system, "GET max_conns") == "3" and ask(system, "PID") != pid
    system.mark_good()

    with pytest.raises(ConfigFailed, match="reload"):
        system.apply({**DEFAULTS, "cache.size": 2048, "hz": 30, "max_conns": 3, "mode": "crash"})
    assert system.healthy() and ask(system, "GET mode") == "safe"
    assert "mode crash" not in conf.read_text()


def test_config_file_template_from_a_file_next_to_the_spec(
    tmp_path: Path, systems: Callable[..., GenericSystem], scripts: tuple[str, str]
) -> None:
    (tmp_path / "toy.conf.in").write_text("max_conns {max_conns}\nfast {fast}\n")
    system = systems(config_file(scripts, "  template: {file: toy.conf.in}\n"))
    system.start()
    system.apply({"max_conns": 9})
    assert ask(system, "GET max_conns") == "9"
    assert ask(system, "GET fast") == "off"  # not in the config: the spec's default


def test_config_file_reload_knobs_restart_without_a_reload_command(
    systems: Callable[..., GenericSystem], scripts: tuple[str, str]
) -> None:
    server, _ = scripts
    system = systems(
        "  kind: config-file\n  path: toy.conf\n"
        f"  start: [{q(sys.executable)}, {q(server)}, --port, '{{port}}', --config, toy.conf]\n"
        '  line: "{name} {value}"\n'
    )
    system.start()
    system.apply(DEFAULTS)
    pid = ask(system, "PID")
    assert system.apply({**DEFAULTS, "cache.size": 128}).action == "restart"
    assert ask(system, "GET cache.size") == "128" and ask(system, "PID") != pid


# -- process hygiene ---------------------------------------------------------------------


def test_missing_executable_is_one_clear_error(
    tmp_path: Path, systems: Callable[..., GenericSystem], scripts: tuple[str, str]
) -> None:
    system = systems(
        "  kind: command-args\n  start: [no-such-server-xyz, --port, '{port}']\n"
        "  online: [no-such-cli-xyz, '{name}', '{value}']\n"
    )
    with pytest.raises(SystemError_) as err:
        system.start()
    message = str(err.value)
    assert "no-such-server-xyz" in message and "no-such-cli-xyz" in message
    assert "not found" in message
    assert not list((tmp_path / "root").glob(PREFIX + "*"))


def test_stop_leaves_no_process_even_a_forked_child_or_one_ignoring_sigterm(
    tmp_path: Path, systems: Callable[..., GenericSystem], scripts: tuple[str, str]
) -> None:
    server, _ = scripts
    system = systems(
        "  kind: command-args\n"
        f"  start: [{q(sys.executable)}, {q(server)}, --port, '{{port}}', --ignore-term, 'yes',"
        " --fork-child, 'yes']\n"
        "  stop: {signal: TERM, timeout: 1s}\n"
    )
    system.start()
    system.apply(DEFAULTS)
    pid = int(ask(system, "PID"))
    workdir = Path(system.placeholders()["workdir"])
    t0 = time.monotonic()
    system.stop()
    assert time.monotonic() - t0 < 8
    assert gone(pid)
    assert group_members(pid) == []  # the forked child went with it
    assert not workdir.exists()
    system.stop()  # twice is fine
    system.restore()


def test_restore_without_a_config_stops_and_removes(
    systems: Callable[..., GenericSystem], scripts: tuple[str, str]
) -> None:
    system = systems(command_args(scripts))
    system.start()
    pid = int(ask(system, "PID"))
    workdir = Path(system.placeholders()["workdir"])
    system.restore()
    assert gone(pid) and not workdir.exists()


def test_a_server_that_never_gets_ready_times_out_cleanly(
    tmp_path: Path, systems: Callable[..., GenericSystem], scripts: tuple[str, str]
) -> None:
    server, _ = scripts
    system = systems(
        "  kind: command-args\n"
        f"  start: [{q(sys.executable)}, {q(server)}, --port, '{{port}}', --never-ready, 'yes']\n"
        "  ready: {tcp: '{port}', timeout: 1s}\n"
    )
    with pytest.raises(SystemError_, match="not ready within 1s") as err:
        system.start()
    assert "serving on" in err.value.log_excerpt
    assert not list((tmp_path / "root").glob(PREFIX + "*"))


def test_ready_command(systems: Callable[..., GenericSystem], scripts: tuple[str, str]) -> None:
    server, client = scripts
    py = q(sys.executable)
    system = systems(
        "  kind: command-args\n"
        f"  start: [{py}, {q(server)}, --port, '{{port}}']\n"
        f"  ready: {{command: [{py}, {q(client)}, '{{port}}', GET, hz]}}\n"
    )
    system.start()
    assert system.healthy()
    system.apply({"hz": 12})
    assert ask(system, "GET hz") == "12"


def test_the_server_dies_between_trials_and_comes_back(
    systems: Callable[..., GenericSystem], scripts: tuple[str, str]
) -> None:
    system = systems(command_args(scripts))
    system.start()
    system.apply({**DEFAULTS, "hz": 20})
    system.mark_good()
    os.killpg(int(ask(system, "PID")), signal.SIGKILL)
    deadline = time.monotonic() + 5
    while system.healthy() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not system.healthy()
    system.rollback()
    assert system.healthy() and ask(system, "GET hz") == "20"


def test_sweep_stops_servers_left_by_a_killed_autotune(
    tmp_path: Path, scripts: tuple[str, str]
) -> None:
    import subprocess

    root = tmp_path / "root"
    stale = root / f"{PREFIX}stale"
    stale.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (stale / "owner.pid").write_text(str(dead.pid))
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], cwd=stale, start_new_session=True
    )
    try:
        assert sweep_stale(root) == [stale]
        orphan.wait(timeout=5)
        assert not stale.exists()
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


def test_metrics_snapshot_has_the_server_process(
    systems: Callable[..., GenericSystem], scripts: tuple[str, str]
) -> None:
    system = systems(command_args(scripts))
    system.start()
    metrics = system.metrics_snapshot()
    assert metrics["server.rss_bytes"] > 0 and metrics["server.threads"] >= 1
    assert "server.cpu_user_s" in metrics and "host.mem.available_bytes" in metrics
    assert "server.rss_bytes" in system.metric_gauges


# -- the applier mapping -----------------------------------------------------------------


def spec_with(applier: str, knobs: str = KNOBS) -> Spec:
    return parse_spec(f"system: toy\napplier:\n{applier}{knobs}", "toy.yaml", MACHINE)


def test_registered_kinds_and_the_registry() -> None:
    assert {"command-args", "env", "config-file"} <= set(known_kinds())
    spec = spec_with("  kind: command-args\n  start: [server, --port, '{port}']\n")
    assert isinstance(make_system(spec, Target()), GenericSystem)
    with pytest.raises(SystemError_, match="--dsn"):
        make_system(spec, Target(dsn="host=db"))


def test_applier_problems_are_all_reported_naming_file_and_field() -> None:
    spec = spec_with(
        "  kind: command-args\n"
        "  start: [server, '{prot}']\n"
        '  flag: "--{name}"\n'
        "  online: [cli, SET, '{name}']\n"
        "  bool: [no, yes]\n"
        "  names: camel\n"
        "  units: metric\n"
        "  path: x.conf\n"
        "  ready: {tcp: '{port}', command: [x]}\n"
        "  stop: {signal: TERMINATE, timeout: -1}\n"
    )
    problems = check_applier(spec)
    assert all(p.startswith("toy.yaml: field 'applier.") for p in problems), problems
    text = "\n".join(problems)
    for expected in (
        "field 'applier.path': unknown field for a command-args applier "
        "(it belongs to config-file appliers)",
        "field 'applier.start': unknown placeholder {prot} (known: host, port, user, workdir)",
        "field 'applier.flag': must place the value: {value}",
        "field 'applier.online': must pass the new value: {value} or {value_sql}",
        "field 'applier.bool': quote the words",
        "field 'applier.names': must be dashes",
        "field 'applier.units': 'metric' is not native",
        "field 'applier.ready': give exactly one of",
        "field 'applier.stop.signal': 'TERMINATE' is not a signal name",
        "field 'applier.stop.timeout'",
    ):
        assert expected in text, expected
    with pytest.raises(SpecError) as err:
        make_system(spec, Target())
    assert err.value.problems == problems


def test_applier_problems_for_config_file_and_env() -> None:
    assert check_applier(spec_with("  kind: config-file\n  start: [s]\n")) == [
        "toy.yaml: field 'applier.path': missing (the config file's name, relative to the workdir)",
        "toy.yaml: field 'applier.template': give a template, a line pattern, or both",
    ]
    problems = check_applier(
        spec_with(
            "  kind: config-file\n  start: [s]\n  path: ../x.conf\n"
            "  template: '{nope} {max_conns}'\n  line: '{name}'\n"
            "  template2: x\n"
        )
    )
    text = "\n".join(problems)
    assert "'../x.conf' must be a relative path inside the workdir" in text
    assert "field 'applier.template': unknown placeholder {nope}" in text
    assert "field 'applier.line': must place the value: {value}" in text
    assert "field 'applier.template2': unknown field" in text
    assert "template: {file: missing.conf}" and check_applier(
        spec_with("  kind: config-file\n  start: [s]\n  path: c\n  template: {file: missing.in}\n")
    )[0].startswith("toy.yaml: field 'applier.template': cannot read missing.in")
    assert check_applier(spec_with("  kind: env\n  start: [s]\n  env: PREFIX_\n")) == [
        "toy.yaml: field 'applier.env': must be a variable name pattern with {NAME} or "
        '{name}, e.g. "APP_{NAME}"'
    ]
    assert check_applier(spec_with("  kind: env\n  start: [s]\n  env: '1{NAME}'\n"))[0].endswith(
        "not an environment variable name"
    )
    assert check_applier(spec_with("  kind: sql\n  start: [s]\n")) == [
        "toy.yaml: field 'applier.kind': 'sql' is not one of command-args, env, config-file, "
        "workload-flags"
    ]
    assert check_applier(spec_with("  kind: command-args\n")) == [
        "toy.yaml: field 'applier.start': missing (a list of program and arguments)"
    ]
