"""A command workload's own data and flags: ``{scratch}``, ``{flags}`` and a setup
of several commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autotune.workloads import WorkloadError, parse_workload
from tests.unit.workloads.test_command import PY, FakeSystem, run, script, workload


class FlagsSystem(FakeSystem):
    """A system whose knobs are the workload program's flags."""

    def argv_placeholders(self) -> dict[str, list[str]]:
        return {"flags": ["--a=1", "--b=x y"]}


def test_each_run_gets_a_new_scratch_directory_that_goes_with_it(tmp_path: Path) -> None:
    tool = script(
        tmp_path,
        "import json, os, sys\n"
        "d = sys.argv[1]\n"
        "mine = [f for f in os.listdir(d) if f != '.autotune-owner']\n"
        "print(json.dumps({'dir': d, 'cwd': os.getcwd(), 'empty': mine == [], 'n': 1}))\n"
        "open(os.path.join(d, 'data'), 'w').write('x' * 100)\n",
    )
    wl = workload(
        tmp_path,
        f"run: [{PY}, {tool}, '{{scratch}}']\nmetrics: {{n: {{json: n}}}}\n"
        "objective: {metric: n}\nrepeat: 3\n",
    )
    seen = [
        json.loads(wl._execute("run", wl.params["run_argv"], FakeSystem(), None, 30)[0])
        for _ in range(2)
    ]
    assert all(s["empty"] and s["cwd"] == s["dir"] for s in seen)
    assert seen[0]["dir"] != seen[1]["dir"]
    assert not any(Path(s["dir"]).exists() for s in seen)  # removed when the run ends
    result, _ = run(wl)
    assert result.details["rounds"] == 3


def test_flags_become_one_argument_each(tmp_path: Path) -> None:
    tool = script(tmp_path, "import json, sys\nprint(json.dumps({'argv': sys.argv[1:], 'n': 1}))\n")
    wl = workload(
        tmp_path,
        f"run: [{PY}, {tool}, --x, '{{flags}}', --y, 'pre{{port}}']\n"
        "metrics: {n: {json: n}}\nobjective: {metric: n}\n",
    )
    out = json.loads(wl._execute("run", wl.params["run_argv"], FlagsSystem(), None, 30)[0])
    assert out["argv"] == ["--x", "--a=1", "--b=x y", "--y", "pre6390"]
    with pytest.raises(WorkloadError, match=r"unknown placeholder \{flags\}"):
        wl.prepare(FakeSystem())  # a system without flags: named, before any run


def test_setup_runs_several_commands_in_turn(tmp_path: Path) -> None:
    log = tmp_path / "log"
    step = script(
        tmp_path, f"import sys\nopen({str(log)!r}, 'a').write(sys.argv[1] + '\\n')\n", "s.py"
    )
    tool = script(tmp_path, "print('x=1')\n")
    wl = workload(
        tmp_path,
        f"setup:\n  - [{PY}, {step}, one]\n  - [{PY}, {step}, '{{port}}']\n"
        f"run: [{PY}, {tool}]\nmetrics: {{x: {{regex: 'x=(\\d)'}}}}\nobjective: {{metric: x}}\n",
    )
    wl.prepare(FakeSystem())
    assert log.read_text() == "one\n6390\n"


def test_a_bad_setup_entry_is_named_by_its_index(tmp_path: Path) -> None:
    text = (
        "name: c\nsystem: toy\nkind: command\nsetup:\n  - [ok]\n  - ['', '{duration}']\n"
        "run: [bench]\nmetrics: {x: {regex: '(1)'}}\nobjective: {metric: x}\n"
    )
    with pytest.raises(Exception) as err:
        parse_workload(text, tmp_path / "c.yaml")
    message = str(err.value)
    assert "field 'setup[1]': the program (first element) is empty" in message
    assert "field 'setup[1]': {duration} is only known when measuring (in run)" in message
