"""``kind: command`` workloads: any program, metrics read from its output."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from autotune.spec import Config, SpecError
from autotune.systems import ApplyReport, System
from autotune.workloads import WorkloadDef, WorkloadError, make_workload, parse_workload
from autotune.workloads.command import CommandWorkload, read_metric
from tests.unit._support import ROOT

PY = json.dumps(sys.executable)


class FakeSystem(System):
    """Only what a command workload asks of a system: its placeholders."""

    def __init__(self, **placeholders: str) -> None:
        self.values = {"port": "6390", "host": "127.0.0.1", "workdir": "/tmp/w", **placeholders}

    def placeholders(self) -> dict[str, str]:
        return dict(self.values)

    def start(self) -> None: ...
    def apply(self, config: Config) -> ApplyReport:
        return ApplyReport()

    def mark_good(self) -> None: ...
    def healthy(self) -> bool:
        return True

    def rollback(self) -> None: ...
    def restore(self, config: Config | None = None) -> None: ...
    def stop(self) -> None: ...


def workload(tmp_path: Path, body: str, **extra: Any) -> CommandWorkload:
    text = "name: c\nsystem: toy\nkind: command\n" + body
    for key, value in extra.items():
        text += f"{key}: {value}\n"
    path = tmp_path / "c.yaml"
    path.write_text(text)
    made = make_workload(parse_workload(text, path))
    assert isinstance(made, CommandWorkload)
    return made


def script(tmp_path: Path, code: str, name: str = "tool.py") -> str:
    path = tmp_path / name
    path.write_text(code)
    return json.dumps(str(path))


def run(wl: CommandWorkload, system: System | None = None, duration: float | None = None) -> Any:
    phases: list[str] = []
    result = wl.run(system or FakeSystem(), duration, phases.append)
    return result, phases


CSV = """\
"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"SET","92250.92","0.353","0.064","0.287","0.423","3.535","7.511"
"GET","74074.07","0.449","0.024","0.287","1.735","4.103","7.887"
"""


# -- reading metrics ---------------------------------------------------------------------


def test_regex_metrics_take_the_first_group_from_stdout_then_stderr() -> None:
    how = {"regex": '^"GET","([0-9.]+)"'}
    assert read_metric("get_rps", how, CSV, "") == 74074.07
    assert read_metric("get_rps", how, "noise\n", CSV) == 74074.07
    p99 = {"regex": '^"GET"(?:,"[0-9.]+"){5},"([0-9.]+)"'}
    assert read_metric("p99", p99, CSV, "") == 4.103


def test_json_metrics_follow_a_dotted_path() -> None:
    doc = json.dumps({"results": {"ops": [{"rps": 10}, {"rps": "12.5"}]}, "ok": True})
    assert read_metric("a", {"json": "results.ops.1.rps"}, doc, "") == 12.5
    assert read_metric("a", {"json": "results.ops.-1.rps"}, doc, "") == 12.5
    last_line = "starting…\nwarming up\n" + json.dumps({"tps": 321})
    assert read_metric("tps", {"json": "tps"}, last_line, "") == 321.0


@pytest.mark.parametrize(
    ("how", "stdout", "message"),
    [
        ({"regex": '^"GET","([0-9.]+)"'}, "nothing here", 'regex \'^"GET","([0-9.]+)"\' matched'),
        ({"regex": "rps=(\\S+)"}, "rps=fast", "captured 'fast', not a number"),
        ({"json": "a.b"}, "not json at all", "the output is not JSON"),
        ({"json": "a.b"}, '{"a": {"c": 1}}', "has no 'a.b' (no 'b')"),
        ({"json": "a.3"}, '{"a": [1]}', "has no 'a.3' (no '3')"),
        ({"json": "a"}, '{"a": {"b": 1}}', "is {'b': 1}, not a number"),
        ({"json": "a"}, '{"a": true}', "not a number"),
        ({"json": "a"}, '{"a": "x"}', "not a number"),
    ],
)
def test_parse_failures_name_the_metric_and_keep_the_output(
    how: dict[str, str], stdout: str, message: str
) -> None:
    with pytest.raises(WorkloadError) as err:
        read_metric("get_rps", how, stdout, "")
    assert str(err.value).startswith("metric 'get_rps': ")
    assert message in str(err.value)
    assert stdout[-50:] in err.value.log_excerpt


# -- running -------------------------------------------------------------------------------


def test_placeholders_fill_one_argument_each_and_phases_are_reported(tmp_path: Path) -> None:
    tool = script(
        tmp_path, "import json, sys\nprint(json.dumps({'argv': sys.argv[1:], 'rps': 42}))\n"
    )
    wl = workload(
        tmp_path,
        f"run: [{PY}, {tool}, '-p', '{{port}}', '--at={{host}}:{{port}}', '{{workdir}}',"
        " '-t', '{duration}', '{{literal}}']\n"
        "metrics: {rps: {json: rps}}\nobjective: {metric: rps}\n",
    )
    system = FakeSystem(workdir="/tmp/a dir; rm -rf /")
    result, phases = run(wl, system, duration=1.2)
    assert phases == ["measure", "collect"]
    assert result.metrics == {"rps": 42.0}
    assert result.details["rounds"] == 1  # it names {duration}: one run of that length
    out = json.loads(wl._execute("x", wl.params["run_argv"], system, 1.2, 30)[0])
    assert out["argv"] == [
        "-p", "6390", "--at=127.0.0.1:6390", "/tmp/a dir; rm -rf /", "-t", "2", "{literal}",
    ]  # fmt: skip


def test_a_fixed_amount_of_work_repeats_until_the_duration_is_used(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    tool = script(
        tmp_path,
        "import pathlib, time\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "time.sleep(0.1)\n"
        "print(f'round {n} value={n * 10}')\n",
    )
    body = (
        f"run: [{PY}, {tool}]\nmetrics: {{v: {{regex: 'value=([0-9]+)'}}}}\n"
        "objective: {metric: v}\n"
    )
    result, _ = run(workload(tmp_path, body, repeat=3))
    assert result.details["rounds"] == 3 and result.metrics["v"] == 20.0  # mean of 10, 20, 30
    counter.unlink()
    result, _ = run(workload(tmp_path, body), duration=0.5)
    rounds = result.details["rounds"]
    assert rounds >= 3 and result.measure_s >= 0.5
    assert result.metrics["v"] == pytest.approx(10 * (rounds + 1) / 2)
    counter.unlink()
    result, phases = run(workload(tmp_path, body, warmup="0.2s"), duration=0.01)
    assert phases == ["warmup", "measure", "collect"]
    assert result.details["rounds"] == 1 and result.warmup_s >= 0.2


def test_setup_runs_once_in_prepare(tmp_path: Path) -> None:
    marker = tmp_path / "loaded"
    setup = script(
        tmp_path,
        f"import pathlib, sys\npathlib.Path({str(marker)!r}).write_text(' '.join(sys.argv[1:]))\n",
        "setup.py",
    )
    tool = script(tmp_path, "print('x=1')\n")
    wl = workload(
        tmp_path,
        f"setup: [{PY}, {setup}, '{{port}}']\nrun: [{PY}, {tool}]\n"
        "metrics: {x: {regex: 'x=(\\d)'}}\nobjective: {metric: x}\n",
    )
    wl.prepare(FakeSystem())
    assert marker.read_text() == "6390"


def test_failures_are_workload_errors_with_the_output(tmp_path: Path) -> None:
    failing = script(tmp_path, "import sys\nprint('connecting…')\nsys.exit('refused')\n")
    wl = workload(
        tmp_path,
        f"run: [{PY}, {failing}]\nmetrics: {{x: {{regex: 'x=(1)'}}}}\nobjective: {{metric: x}}\n",
    )
    with pytest.raises(WorkloadError, match="exited 1") as err:
        run(wl)
    assert "connecting…" in err.value.log_excerpt and "refused" in err.value.log_excerpt

    slow = script(
        tmp_path, "import time\nprint('started', flush=True)\ntime.sleep(30)\n", "slow.py"
    )
    wl = workload(
        tmp_path,
        f"run: [{PY}, {slow}]\nmetrics: {{x: {{regex: 'x=(1)'}}}}\nobjective: {{metric: x}}\n",
        timeout="500ms",
    )
    with pytest.raises(WorkloadError, match=r"did not finish within 0\.5s"):
        run(wl)

    quiet = script(tmp_path, "print('all good, no numbers')\n", "quiet.py")
    wl = workload(
        tmp_path,
        f"run: [{PY}, {quiet}]\nmetrics: {{rps: {{regex: 'rps=([0-9.]+)'}}}}\n"
        "objective: {metric: rps}\n",
    )
    with pytest.raises(WorkloadError, match="metric 'rps': regex") as err:
        run(wl)
    assert "all good, no numbers" in err.value.log_excerpt

    wl = workload(
        tmp_path,
        "run: [no-such-benchmark-xyz]\nmetrics: {x: {regex: '(1)'}}\nobjective: {metric: x}\n",
    )
    with pytest.raises(WorkloadError, match="program not found: 'no-such-benchmark-xyz'"):
        run(wl)


def test_an_unknown_placeholder_fails_in_prepare_naming_the_known_ones(tmp_path: Path) -> None:
    wl = workload(
        tmp_path, "run: [bench, '{socket}']\nmetrics: {x: {regex: '(1)'}}\nobjective: {metric: x}\n"
    )
    with pytest.raises(WorkloadError) as err:
        wl.prepare(FakeSystem())
    assert "field 'run': unknown placeholder {socket}" in str(err.value)
    assert "known: duration, host, port, scratch, workdir" in str(err.value)


# -- the loader ----------------------------------------------------------------------------


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "w.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as err:
        parse_workload(text, path)
    return err.value.problems


def test_loader_reports_every_problem_naming_file_and_field(tmp_path: Path) -> None:
    lines = problems(
        tmp_path,
        "name: c\nsystem: toy\nkind: command\n"
        "run: bench --fast\n"
        "setup: [load, '{duration}']\n"
        "metrics:\n"
        "  rps: {regex: 'rps=[0-9]+'}\n"
        "  lat: {regex: '([0-9'}\n"
        "  p99: {json: 'a..b'}\n"
        "  odd: {xpath: '/a'}\n"
        "  bad-name: {regex: '(1)'}\n"
        "repeat: 0\n"
        "timeout: soon\n"
        "queries: q*.sql\n"
        "objective: {metric: tps}\n",
    )
    where = f"{tmp_path / 'w.yaml'}: field "
    assert all(line.startswith(where) for line in lines), lines
    for fld, words in [
        ("queries", "unknown field"),
        ("objective", "metric 'tps' is not one of rps, lat, p99, odd, bad-name"),
        ("run", "must be a non-empty list of strings"),
        ("setup", "{duration} is only known when measuring"),
        ("metrics.rps", "needs a group around the number"),
        ("metrics.lat", "does not compile"),
        ("metrics.p99", "is not a dotted path"),
        ("metrics.odd", "must be {regex: '...'} or {json: path.to.field}"),
        ("metrics.bad-name", "invalid metric name"),
        ("repeat", "not a positive integer"),
        ("timeout", "soon"),
    ]:
        assert any(f"field '{fld}'" in ln and words in ln for ln in lines), (fld, lines)
    assert len(lines) == 11, lines


def test_loader_needs_run_and_metrics(tmp_path: Path) -> None:
    lines = problems(tmp_path, "name: c\nsystem: toy\nkind: command\nobjective: {metric: x}\n")
    path = tmp_path / "w.yaml"
    assert lines == [
        f"{path}: field 'run': missing (a list: the program, then its arguments)",
        f"{path}: field 'metrics': missing: map each metric name to {{regex: '...'}} or "
        "{json: path.to.field}",
    ]


def test_a_command_workload_parses(tmp_path: Path) -> None:
    text = (
        "name: c\nsystem: toy\nkind: command\nrun: [bench, '-p', '{port}', 1000]\n"
        "metrics: {rps: {regex: 'rps=([0-9.]+)'}, p99: {json: lat.p99}}\n"
        "duration: 5s\nwarmup: 1s\ntimeout: 2min\n"
        "objective: {metric: p99, direction: minimize}\n"
    )
    path = tmp_path / "w.yaml"
    wl = parse_workload(text, path)
    assert isinstance(wl, WorkloadDef) and wl.kind == "command"
    assert (wl.duration_s, wl.warmup_s) == (5.0, 1.0)
    assert wl.params == {
        "run_argv": ["bench", "-p", "{port}", "1000"],
        "metrics": {"rps": {"regex": "rps=([0-9.]+)"}, "p99": {"json": "lat.p99"}},
        "repeat": 1,
        "timeout_s": 120.0,
        "cache": False,
    }
    assert wl.objective_metric == "p99" and wl.direction == "minimize"


def test_the_built_in_redis_benchmark_workload_reads_redis_benchmark_csv() -> None:
    from autotune.workloads import load_workload

    wl = load_workload(str(ROOT / "workloads" / "redis-benchmark.yaml"))
    assert wl.kind == "command" and wl.system == "redis" and wl.objective_metric == "get_rps"
    metrics = {name: read_metric(name, how, CSV, "") for name, how in wl.params["metrics"].items()}
    assert metrics == {
        "set_rps": 92250.92,
        "get_rps": 74074.07,
        "set_avg_latency_ms": 0.353,
        "get_avg_latency_ms": 0.449,
        "set_p99_latency_ms": 3.535,
        "get_p99_latency_ms": 4.103,
    }


def test_a_command_workload_cannot_ask_for_the_dataset_cache(tmp_path: Path) -> None:
    text = (
        "name: c\nsystem: redis\nkind: command\nrun: [bench]\ncache: true\n"
        "metrics: {rps: {regex: 'rps=([0-9.]+)'}}\nobjective: {metric: rps}\n"
    )
    with pytest.raises(SpecError) as err:
        parse_workload(text, tmp_path / "c.yaml")
    assert any("field 'cache': a command workload has no data" in p for p in err.value.problems)
