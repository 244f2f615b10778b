"""`autotune knobs validate|show`: every problem of a broken spec, one line each."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from autotune.cli import app
from autotune.spec import Machine
from tests.unit._support import MACHINE, ROOT

BROKEN = ROOT / "tests" / "data" / "broken"
POSTGRES = ROOT / "knobs" / "postgres.yaml"

runner = CliRunner()


@pytest.fixture
def fixed_machine(monkeypatch: pytest.MonkeyPatch) -> Machine:
    """Resolve machine-relative bounds on a known host, whatever host runs the tests."""
    monkeypatch.setattr(Machine, "local", classmethod(lambda cls: MACHINE))
    return MACHINE


@pytest.fixture
def no_eval(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every string handed to eval/exec while a test runs."""
    calls: list[str] = []
    real_eval, real_exec = builtins.eval, builtins.exec

    def spy_eval(source: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(repr(source))
        return real_eval(source, *args, **kwargs)

    def spy_exec(source: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(repr(source))
        return real_exec(source, *args, **kwargs)

    monkeypatch.setattr(builtins, "eval", spy_eval)
    monkeypatch.setattr(builtins, "exec", spy_exec)
    return calls


def validate(*paths: Path | str) -> Any:
    return runner.invoke(app, ["knobs", "validate", *(str(p) for p in paths)])


def problem_lines(result: Any) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


# file -> one expected problem per entry: (knob or None, field, words the line must contain)
SINGLE_PROBLEM = {
    "missing-type.yaml": ("work_mem", "type", "missing"),
    "min-greater-than-max.yaml": ("work_mem", "min", "greater than max"),
    "unknown-unit.yaml": ("work_mem", "unit", "unknown unit '8kX'"),
    "default-out-of-range.yaml": ("work_mem", "default", "outside"),
    "unknown-knob-in-constraint.yaml": (
        "effective_cache_size",
        "constraints[1]",
        "unknown knob",
    ),
    "injection-import.yaml": (None, "constraints[0]", "__import__"),
    "injection-exec.yaml": (None, "constraints[0]", "shared_buffers <= exec("),
    "duplicate-knob.yaml": ("work_mem", "knobs", "duplicate"),
}


def assert_names(line: str, path: Path, knob: str | None, fld: str, words: str) -> None:
    assert str(path) in line, line
    assert f"field '{fld}'" in line, line
    if knob is not None:
        assert f"'{knob}'" in line, line
    assert words in line, line


@pytest.mark.parametrize("name", sorted(SINGLE_PROBLEM))
def test_validate_reports_the_one_problem_of_each_broken_fixture(
    name: str, fixed_machine: Machine
) -> None:
    path = BROKEN / name
    result = validate(path)
    assert result.exit_code == 1
    lines = problem_lines(result)
    assert len(lines) == 1, lines
    assert_names(lines[0], path, *SINGLE_PROBLEM[name])
    assert "ok (" not in result.stdout


def test_validate_reports_every_problem_of_a_file_at_once(fixed_machine: Machine) -> None:
    path = BROKEN / "several-problems.yaml"
    result = validate(path)
    assert result.exit_code == 1
    lines = problem_lines(result)
    expected = [
        ("no_type", "type", "missing"),
        ("inverted", "min", "greater than max"),
        ("odd_unit", "unit", "unknown unit '8kX'"),
        ("too_big", "default", "outside"),
        ("twice", "knobs", "duplicate knob"),
        ("effective_cache_size", "constraints[0]", "unknown knob"),
        (None, "constraints[1]", "__import__"),
        (None, "constraints[2]", "shared_buffers <= exec("),
    ]
    assert len(lines) == len(expected), lines
    for knob, fld, words in expected:
        matching = [
            line
            for line in lines
            if f"field '{fld}'" in line and words in line and (knob is None or knob in line)
        ]
        assert len(matching) == 1, (knob, fld, lines)
        assert_names(matching[0], path, knob, fld, words)


def test_validate_checks_every_file_and_fails_if_any_is_broken(fixed_machine: Machine) -> None:
    broken = BROKEN / "missing-type.yaml"
    result = validate(POSTGRES, broken)
    assert result.exit_code == 1
    assert f"{POSTGRES}: ok (" in result.stdout
    assert any(str(broken) in line for line in problem_lines(result))


def test_validate_unreadable_file_names_it(tmp_path: Path, fixed_machine: Machine) -> None:
    missing = tmp_path / "nope.yaml"
    result = validate(missing)
    assert result.exit_code != 0
    assert str(missing) in result.stderr
    assert "cannot read" in result.stderr


def test_validate_not_yaml_is_one_line(tmp_path: Path, fixed_machine: Machine) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("system: x\nknobs: [unclosed\n")
    result = validate(path)
    assert result.exit_code == 1
    assert str(path) in result.stderr
    assert "not valid YAML" in result.stderr


# -- constraints are parsed, never evaluated --------------------------------------------------


@pytest.mark.parametrize("name", ["injection-import.yaml", "injection-exec.yaml"])
def test_injection_fixtures_are_rejected_without_evaluating_anything(
    name: str, fixed_machine: Machine, no_eval: list[str]
) -> None:
    pwned = Path("/tmp/pwned")
    existed = pwned.exists()
    result = validate(BROKEN / name)
    assert result.exit_code == 1
    assert not [call for call in no_eval if "pwned" in call or "'x'" in call], no_eval
    if not existed:
        assert not pwned.exists(), "the constraint was evaluated: /tmp/pwned was created"


def test_injection_payloads_never_run(
    tmp_path: Path, fixed_machine: Machine, no_eval: list[str]
) -> None:
    """Payloads aimed at tmp_path, so a run would leave files we can look for."""
    marker1, marker2, marker3 = (tmp_path / f"pwned{i}" for i in (1, 2, 3))
    payloads = [
        f"__import__('os').system('touch {marker1}') == 0",
        f"shared_buffers <= exec(\"open('{marker2}', 'w')\")",
        f"shared_buffers <= eval(\"open('{marker3}', 'w')\") + 1",
        "shared_buffers <= __import__",  # a bare name: an unknown knob, not a lookup
        "shared_buffers.__class__ <= 1",
        "shared_buffers <= (lambda: 0)()",
    ]
    spec = {
        "system": "injected",
        "knobs": {
            "shared_buffers": {
                "type": "integer",
                "unit": "8kB",
                "min": "16MB",
                "max": "1GB",
                "default": "128MB",
            }
        },
        "constraints": payloads,
    }
    path = tmp_path / "injected.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = validate(path)
    assert result.exit_code == 1
    lines = problem_lines(result)
    assert len(lines) == len(payloads), lines
    for i in range(len(payloads)):
        assert sum(f"field 'constraints[{i}]'" in line for line in lines) == 1, lines
    for marker in (marker1, marker2, marker3):
        assert not marker.exists(), f"{marker} exists: a constraint was evaluated"
    assert not [call for call in no_eval if "pwned" in call], no_eval


# -- the real spec ----------------------------------------------------------------------------


def test_validate_builtin_postgres_spec_on_this_host() -> None:
    result = validate(POSTGRES)
    assert result.exit_code == 0, result.output
    assert f"{POSTGRES}: ok (" in result.stdout
    assert result.stderr == ""


def test_validate_builtin_postgres_spec_on_a_fixed_host(fixed_machine: Machine) -> None:
    result = validate(POSTGRES)
    assert result.exit_code == 0, result.output
    knobs = int(result.stdout.split("ok (")[1].split(" knobs")[0])
    assert knobs >= 25


def test_show_lists_knobs_with_resolved_bounds_and_safety(fixed_machine: Machine) -> None:
    # wide enough that rich does not fold knob names over two lines
    result = runner.invoke(app, ["knobs", "show", str(POSTGRES)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    for name in ("shared_buffers", "fsync", "synchronous_commit", "full_page_writes", "jit"):
        assert name in out
    (row,) = [line for line in out.splitlines() if "│ shared_buffers " in line]
    assert "32MB" in row  # min
    assert "4GB" in row  # max: 25% of 16 GiB, in the largest exact unit
    assert "restart" in row
    assert "unsafe" in out
    assert "constraint: min_wal_size <= max_wal_size" in out
    assert "group oltp:" in out


def test_show_broken_spec_exits_non_zero_with_the_problems(fixed_machine: Machine) -> None:
    path = BROKEN / "min-greater-than-max.yaml"
    result = runner.invoke(app, ["knobs", "show", str(path)])
    assert result.exit_code == 1
    assert f"{path}: knob 'work_mem': field 'min'" in result.stderr


def test_validate_checks_the_applier_before_anything_runs(tmp_path: Path) -> None:
    knob = "knobs:\n  a: {type: integer, min: 1, max: 5, default: 2}\n"
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("system: x\napplier: nope\n" + knob)
    generic = tmp_path / "generic.yaml"
    generic.write_text("system: y\napplier: {kind: command-args, flag: 3}\n" + knob)
    result = runner.invoke(app, ["knobs", "validate", str(unknown), str(generic)])
    assert result.exit_code == 1
    assert f"{unknown}: field 'applier': no applier 'nope' (known: " in result.output
    assert f"{generic}: field 'applier.start': missing" in result.output
    assert f"{generic}: field 'applier.flag'" in result.output
    shipped = sorted(str(p) for p in (ROOT / "knobs").glob("*.yaml"))
    ok = runner.invoke(app, ["knobs", "validate", *shipped])
    assert ok.exit_code == 0, ok.output
    assert ok.output.count(": ok (") == len(shipped) >= 3
