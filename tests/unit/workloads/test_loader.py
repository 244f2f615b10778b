"""Workload files: parsed, checked, every problem reported at once."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from autotune.spec import SpecError
from autotune.workloads import WorkloadDef, load_workload, make_workload, parse_workload
from autotune.workloads.pgbench import PgbenchWorkload
from autotune.workloads.sqlset import SqlSetWorkload
from tests.unit._support import ROOT

PGBENCH = """\
name: tiny
system: postgres
kind: pgbench
builtin: tpcb-like
scale: 3
clients: 4
threads: 2
duration: 1min
warmup: 500ms
objective: {metric: tps, direction: maximize}
"""


def write(tmp_path: Path, text: str, name: str = "w.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def parse(tmp_path: Path, text: str) -> WorkloadDef:
    return parse_workload(text, write(tmp_path, text))


def problems(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as err:
        parse_workload(text, path)
    return err.value.problems


def test_pgbench_workload(tmp_path: Path) -> None:
    wl = parse(tmp_path, PGBENCH)
    assert wl.name == "tiny"
    assert wl.system == "postgres"
    assert wl.kind == "pgbench"
    assert wl.objective_metric == "tps"
    assert wl.direction == "maximize"
    assert wl.duration_s == 60.0
    assert wl.warmup_s == 0.5
    assert wl.params == {
        "builtin": "tpcb-like",
        "scale": 3,
        "clients": 4,
        "threads": 2,
        "mode": "simple",
        "reset": True,  # tpcb-like writes: every trial starts from the loaded data
        "cache": False,  # loaded again each session unless it asks
    }
    assert wl.source == PGBENCH
    assert wl.content_hash == hashlib.sha256(PGBENCH.encode()).hexdigest()
    assert isinstance(make_workload(wl), PgbenchWorkload)


def test_pgbench_defaults(tmp_path: Path) -> None:
    text = (
        "name: d\nsystem: postgres\nkind: pgbench\nbuiltin: select-only\nobjective: {metric: tps}\n"
    )
    wl = parse(tmp_path, text)
    assert wl.duration_s == 30.0
    assert wl.warmup_s == 0.0
    assert wl.direction == "maximize"
    assert wl.params["scale"] == wl.params["clients"] == wl.params["threads"] == 1
    assert wl.params["reset"] is False  # select-only leaves the data as it found it


def test_reset_can_be_set_and_must_be_a_bool(tmp_path: Path) -> None:
    assert parse(tmp_path, PGBENCH + "reset: false\n").params["reset"] is False
    script = PGBENCH.replace("builtin: tpcb-like", "script: mix.sql")
    (tmp_path / "mix.sql").write_text("SELECT 1;\n")
    assert parse(tmp_path, script).params["reset"] is True  # a script may write
    assert problems(tmp_path, PGBENCH + "reset: sometimes\n") == [
        f"{tmp_path / 'w.yaml'}: field 'reset': 'sometimes' is not true or false"
    ]


def test_cache_keys_the_data_by_what_the_load_reads(tmp_path: Path) -> None:
    assert parse(tmp_path, PGBENCH).dataset_key() is None  # off unless asked for
    cached = parse(tmp_path, PGBENCH + "cache: true\n")
    assert cached.dataset_key() == "pgbench-scale3-resettable"
    # Another duration or client count loads the same data; another scale does not.
    other = PGBENCH.replace("clients: 4", "clients: 9").replace("duration: 1min", "duration: 5s")
    assert parse(tmp_path, other + "cache: true\n").dataset_key() == cached.dataset_key()
    bigger = parse(tmp_path, PGBENCH.replace("scale: 3", "scale: 4") + "cache: true\n")
    assert bigger.dataset_key() == "pgbench-scale4-resettable"
    select = PGBENCH.replace("tpcb-like", "select-only") + "cache: true\n"
    assert parse(tmp_path, select).dataset_key() == "pgbench-scale3"  # no pristine copy
    assert problems(tmp_path, PGBENCH + "cache: yes please\n") == [
        f"{tmp_path / 'w.yaml'}: field 'cache': 'yes please' is not true or false"
    ]


def test_a_query_sets_cache_key_follows_its_setup_file(tmp_path: Path) -> None:
    (tmp_path / "setup.sql").write_text("CREATE TABLE t (x int);\n")
    (tmp_path / "q1.sql").write_text("SELECT 1;\n")
    text = (
        "name: qs\nsystem: postgres\nkind: sql-set\nsetup: setup.sql\nqueries: q*.sql\n"
        "cache: true\nobjective: {metric: latency_p95_ms, direction: minimize}\n"
    )
    first = parse(tmp_path, text).dataset_key()
    assert first is not None and first.startswith("qs-")
    (tmp_path / "q1.sql").write_text("SELECT 2;\n")  # the queries do not change the data
    assert parse(tmp_path, text).dataset_key() == first
    (tmp_path / "setup.sql").write_text("CREATE TABLE t (x bigint);\n")
    assert parse(tmp_path, text).dataset_key() != first


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30.0), ("90s", 90.0), ("2min", 120.0), ("1500ms", 1.5), ("1h", 3600.0)],
)
def test_durations_in_any_time_unit(tmp_path: Path, text: str, seconds: float) -> None:
    wl = parse(tmp_path, PGBENCH.replace("duration: 1min", f"duration: {text}"))
    assert wl.duration_s == seconds


def test_pgbench_script_is_relative_to_the_workload_file(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "mix.sql").write_text("SELECT 1;\n")
    text = PGBENCH.replace("builtin: tpcb-like", "script: scripts/mix.sql")
    wl = parse(tmp_path, text)
    assert wl.params["script"] == str((tmp_path / "scripts" / "mix.sql").resolve())
    assert "builtin" not in wl.params
    assert wl.relative("scripts/mix.sql") == (tmp_path / "scripts" / "mix.sql").resolve()


def test_sql_set_workload(tmp_path: Path) -> None:
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "setup.sql").write_text("CREATE TABLE t (x int);\n")
    for i in (2, 1, 3):
        (tmp_path / "q" / f"q{i}.sql").write_text(f"SELECT {i};\n")
    (tmp_path / "q" / "notes.txt").write_text("not a query\n")
    text = """\
name: analytic-test
system: postgres
kind: sql-set
setup: q/setup.sql
queries: q/q*.sql
repeat: 2
warmup_rounds: 0
timeout: 1min
objective: {metric: latency_p95_ms, direction: minimize}
"""
    wl = parse(tmp_path, text)
    assert wl.kind == "sql-set"
    assert wl.direction == "minimize"
    assert wl.params["setup"] == str((tmp_path / "q" / "setup.sql").resolve())
    assert wl.params["queries"] == [
        str((tmp_path / "q" / f"q{i}.sql").resolve()) for i in (1, 2, 3)
    ]
    assert wl.params["repeat"] == 2
    assert wl.params["warmup_rounds"] == 0
    assert wl.params["timeout_s"] == 60.0
    assert wl.params["reset"] is False  # queries read
    assert wl.duration_s is None
    assert isinstance(make_workload(wl), SqlSetWorkload)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """\
name: bad name
kind: pgbench
scale: 0
clients: x
threads: true
mode: fast
warmup: -1s
duration: 5 parsecs
foo: 1
objective: {metric: qps, direction: up}
"""
    lines = problems(tmp_path, text)
    path = tmp_path / "w.yaml"
    expected = [
        ("foo", "unknown field"),
        ("name", "missing or invalid"),
        ("system", "missing"),
        ("objective", "metric 'qps' is not one of tps"),
        ("objective", "direction 'up' is not maximize or minimize"),
        ("duration", "parsecs"),
        ("warmup", "must not be negative"),
        ("builtin", "give exactly one of builtin or script"),
        ("scale", "0 is not a positive integer"),
        ("clients", "'x' is not a positive integer"),
        ("threads", "True is not a positive integer"),
        ("mode", "'fast' is not one of simple, extended, prepared"),
    ]
    assert len(lines) == len(expected), lines
    for fld, words in expected:
        matching = [ln for ln in lines if f"field '{fld}'" in ln and words in ln]
        assert len(matching) == 1, (fld, words, lines)
        assert matching[0].startswith(f"{path}: ")


def test_pgbench_builtin_and_script_problems(tmp_path: Path) -> None:
    both = PGBENCH.replace("builtin: tpcb-like", "builtin: tpcb-like\nscript: x.sql")
    assert any("exactly one of builtin or script" in ln for ln in problems(tmp_path, both))
    unknown = PGBENCH.replace("tpcb-like", "tpcc")
    assert any("'tpcc' is not one of tpcb-like" in ln for ln in problems(tmp_path, unknown))
    missing = PGBENCH.replace("builtin: tpcb-like", "script: nowhere.sql")
    (line,) = problems(tmp_path, missing)
    assert "field 'script': file not found" in line
    assert "nowhere.sql" in line


def test_sql_set_problems(tmp_path: Path) -> None:
    text = """\
name: s
system: postgres
kind: sql-set
setup: missing.sql
queries: none/q*.sql
repeat: 0
warmup_rounds: -1
objective: {metric: tps, direction: minimize}
"""
    lines = problems(tmp_path, text)
    for fld, words in [
        ("setup", "file not found"),
        ("queries", "no file matches 'none/q*.sql'"),
        ("repeat", "not a positive integer"),
        ("warmup_rounds", "whole number >= 0"),
        ("objective", "metric 'tps' is not one of latency_avg_ms"),
    ]:
        assert any(f"field '{fld}'" in ln and words in ln for ln in lines), (fld, lines)
    assert len(lines) == 5, lines
    bare = "name: s\nsystem: postgres\nkind: sql-set\nobjective: {metric: qps}\n"
    lines = problems(tmp_path, bare)
    assert len(lines) == 2
    assert any("field 'setup': missing" in ln for ln in lines)
    assert any("field 'queries': missing" in ln for ln in lines)


def test_unknown_kind(tmp_path: Path) -> None:
    lines = problems(tmp_path, "name: x\nsystem: postgres\nkind: fio\n")
    assert lines == [
        f"{tmp_path / 'w.yaml'}: field 'kind': 'fio' is not one of pgbench, sql-set, command"
    ]


def test_not_a_mapping_and_not_yaml(tmp_path: Path) -> None:
    assert problems(tmp_path, "- a\n") == [f"{tmp_path / 'w.yaml'}: a workload must be a mapping"]
    (line,) = problems(tmp_path, "name: [x\n")
    assert "not valid YAML" in line


def test_duplicate_top_level_key(tmp_path: Path) -> None:
    lines = problems(tmp_path, PGBENCH + "clients: 16\n")
    assert lines == [f"{tmp_path / 'w.yaml'}: field 'clients': duplicate key on line 11"]


def test_duplicate_key_inside_the_objective_is_reported(tmp_path: Path) -> None:
    """YAML keeps the last duplicate silently; a workload must say so, as specs do."""
    text = PGBENCH.replace(
        "objective: {metric: tps, direction: maximize}",
        "objective: {metric: tps, direction: maximize, direction: minimize}",
    )
    with pytest.raises(SpecError) as err:
        parse_workload(text, write(tmp_path, text))
    assert any("duplicate" in ln and "direction" in ln for ln in err.value.problems)


def test_a_zero_duration_is_refused(tmp_path: Path) -> None:
    """0 s measures nothing; the run would silently measure 30 s instead."""
    text = PGBENCH.replace("duration: 1min", "duration: 0")
    with pytest.raises(SpecError) as err:
        parse_workload(text, write(tmp_path, text))
    assert any("field 'duration'" in ln for ln in err.value.problems)


# -- built-in workloads ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["pgbench-tpcb", "pgbench-select", "pgbench-simple-update", "pgbench-read-mostly"]
)
def test_builtin_pgbench_workloads_load_by_name(name: str) -> None:
    wl = load_workload(name)
    assert wl.name == name
    assert wl.system == "postgres"
    assert wl.kind == "pgbench"
    assert wl.objective_metric == "tps"
    assert wl.path == ROOT / "workloads" / f"{name}.yaml"


def test_load_workload_by_path_and_unknown_names(tmp_path: Path) -> None:
    path = write(tmp_path, PGBENCH, "mine.yaml")
    assert load_workload(str(path)).name == "tiny"
    with pytest.raises(SpecError) as err:
        load_workload("no-such-workload")
    (line,) = err.value.problems
    assert "unknown workload 'no-such-workload'" in line
    assert "pgbench-tpcb" in line  # the built-in ones are listed
    with pytest.raises(SpecError, match="workload file not found"):
        load_workload(str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize("field", ["script", "setup"])
def test_a_path_outside_the_folder_says_the_same_whether_or_not_it_exists(
    tmp_path: Path, field: str
) -> None:
    def said(target: str) -> list[str]:
        body = (
            f"kind: pgbench\nscript: {target}\n"
            if field == "script"
            else f"kind: sql-set\nsetup: {target}\nqueries: q.sql\n"
        )
        (tmp_path / "q.sql").write_text("SELECT 1;\n")
        found = problems(
            tmp_path, "name: w\nsystem: postgres\n" + body + "objective: {metric: tps}\n"
        )
        return [line.replace(target, "PATH") for line in found if "PATH" not in line]

    there, missing = said("/etc/passwd"), said("/etc/no-such-file-x")
    assert there == missing
    assert any("outside the workload's folder" in line for line in there)
    assert not any("not found" in line for line in there)
