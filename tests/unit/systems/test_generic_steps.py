"""The generic appliers' steps for servers with a data directory and SQL, and the
workload-flags applier: ``init``, ``show`` read-back, ``{value_sql}``, ``{user}``,
``{flags}``. The toy server of test_generic stands in for the real one."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from autotune.spec import parse_spec
from autotune.systems.generic import GenericSystem, check_applier, parse_applier
from autotune.systems.generic._render import FORMATS
from autotune.systems.generic._values import same_value, sql_literal
from tests.unit._support import MACHINE
from tests.unit.systems import test_generic
from tests.unit.systems.test_generic import DEFAULTS, KNOBS, ask, command_args, q, spec_with

# The toy server's fixtures, shared with test_generic.
scripts = test_generic.scripts
systems = test_generic.systems

PY = q(sys.executable)


def test_init_runs_once_in_the_new_workdir_before_the_first_start(
    systems: Callable[..., GenericSystem], scripts: tuple[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "init.log"
    code = "import os, sys; open(sys.argv[1], 'a').write(os.getcwd() + ' ' + sys.argv[2] + '\\n')"
    init = f"  init: [{PY}, -c, {q(code)}, {q(str(log))}, '{{workdir}}/data']\n"
    system = systems(command_args(scripts, init))
    system.start()
    workdir = system.placeholders()["workdir"]
    assert log.read_text() == f"{workdir} {workdir}/data\n"
    system.apply({**DEFAULTS, "max_conns": 7})  # a restart: init does not run again
    system.apply({**DEFAULTS, "max_conns": 8})
    assert log.read_text().count("\n") == 1


def test_a_failing_init_is_one_error_and_leaves_nothing(
    systems: Callable[..., GenericSystem], scripts: tuple[str, str]
) -> None:
    system = systems(command_args(scripts, f"  init: [{PY}, -c, 'import sys; sys.exit(3)']\n"))
    with pytest.raises(Exception, match=r"did not start: init: .* exited 3"):
        system.start()
    assert system.server.dir is None and not system.server.alive()


def test_values_are_read_back_and_differences_reported(
    systems: Callable[..., GenericSystem], scripts: tuple[str, str]
) -> None:
    server, client = scripts
    applier = (
        "  kind: command-args\n"
        f"  start: [{PY}, {q(server)}, --port, '{{port}}']\n"
        '  flag: "--{name} {value}"\n'
        # {value_sql}: numbers bare, words quoted; the toy server keeps what it is sent
        f"  online: [{PY}, {q(client)}, '{{port}}', SET, '{{name}}', '{{value_sql}}']\n"
        f"  show: [{PY}, {q(client)}, '{{port}}', GET, '{{name}}']\n"
    )
    system = systems(applier)
    system.start()
    report = system.apply(DEFAULTS)  # a restart: every value as a flag, as sent
    assert report.action == "restart" and report.not_applied == {}
    system.mark_good()
    report = system.apply({**DEFAULTS, "hz": 60, "mode": "a b"})
    assert report.action == "online"
    assert ask(system, "GET hz") == "60"
    # The server now runs the quoted literal, which is not what was asked for.
    assert report.not_applied == {"mode": "wanted a b, server has 'a b'"}


def test_read_back_compares_values_as_the_knob_reads_them() -> None:
    spec = spec_with(
        "  kind: command-args\n  start: [s]\n",
        KNOBS + "  lwm: {type: real, min: 0, max: 70, default: 10, apply: online}\n",
    )
    knobs = spec.knobs
    words = ("OFF", "ON")
    assert same_value(knobs["fast"], "ON", "1", words)
    assert same_value(knobs["fast"], "OFF", "0", words)
    assert not same_value(knobs["fast"], "ON", "0", words)
    assert same_value(knobs["lwm"], "10", "10.000000", words)
    assert not same_value(knobs["hz"], "50", "49", words)
    assert same_value(knobs["cache.size"], "1024", "1MB", words)
    assert same_value(knobs["mode"], "quick", "QUICK", words)
    assert not same_value(knobs["hz"], "50", "(nil)", words)
    assert sql_literal(knobs["hz"], "50") == "50"
    assert sql_literal(knobs["mode"], "it's\\") == "'it''s\\\\'"


def test_user_placeholder_is_the_os_user(
    systems: Callable[..., GenericSystem], scripts: tuple[str, str]
) -> None:
    system = systems(command_args(scripts))
    assert system.placeholders()["user"] == getpass.getuser()


def test_applier_problems_for_the_new_fields() -> None:
    text = "\n".join(
        check_applier(
            spec_with(
                "  kind: command-args\n  start: [s]\n  show: [cli, GET]\n"
                "  online: [cli, SET, '{name}', '{value_sql}']\n"
                "  names: {hz: 'hz; DROP TABLE t'}\n"
            )
        )
    )
    assert "field 'applier.show': must name the setting to print: {name}" in text
    assert "field 'applier.online'" not in text  # {value_sql} passes the value
    assert "field 'applier.names.hz': 'hz; DROP TABLE t' is not a setting name" in text
    problems = check_applier(
        spec_with("  kind: workload-flags\n  start: [s]\n  online: [x, '{value}']\n")
    )
    assert problems == [
        "toy.yaml: field 'applier.online': unknown field for a workload-flags applier "
        "(a workload-flags system runs no server: its workload runs the program)",
        "toy.yaml: field 'applier.start': unknown field for a workload-flags applier "
        "(a workload-flags system runs no server: its workload runs the program)",
    ]
    assert check_applier(spec_with("  kind: workload-flags\n")) == []


FLAGS_SPEC = "system: bench\napplier:\n  kind: workload-flags\n  flag: '--{name}={value}'\n"


def test_workload_flags_hands_the_config_to_the_workload(tmp_path: Path) -> None:
    text = FLAGS_SPEC + "  bool: ['false', 'true']\n" + KNOBS
    spec = parse_spec(text, "bench.yaml", MACHINE)
    applier, problems = parse_applier(spec)
    assert applier is not None and not problems
    system = GenericSystem(spec, applier, root=tmp_path)
    system.start()
    try:
        workdir = Path(system.placeholders()["workdir"])
        assert system.placeholders() == {"workdir": str(workdir)} and workdir.is_dir()
        assert system.healthy()
        assert system.argv_placeholders() == {"flags": []}
        report = system.apply({**DEFAULTS, "hz": 50, "mode": "a b"})
        assert report.action == "online" and report.not_applied == {}
        assert system.argv_placeholders()["flags"] == [
            "--max_conns=100", "--hz=50", "--cache.size=1024", "--fast=false", "--mode=a b",
        ]  # fmt: skip
        system.mark_good()
        system.apply({**DEFAULTS, "hz": 7})
        system.rollback()
        assert "--hz=50" in system.argv_placeholders()["flags"]
    finally:
        system.stop()
    assert not workdir.exists()
    flags = FORMATS["workload-flags"]["flags"](spec, {"hz": 50, "mode": "a b"})
    assert flags == "--hz=50 \\\n'--mode=a b'"
