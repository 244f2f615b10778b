"""``autotune tune`` end to end: real PostgreSQL, real pgbench, the real CLI."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from autotune.spec import Machine, load_spec
from autotune.tuner import pgtune_arm
from tests.conftest import DATA, ROOT
from tests.integration.pgutil import run_cli

pytestmark = pytest.mark.pg

TINY_TPCB = str(DATA / "workloads" / "tiny-tpcb.yaml")
OLTP = ["--knobs", "shared_buffers,work_mem,random_page_cost,checkpoint_completion_target"]


def trials_json(workdir: Path, name: str) -> list[dict[str, object]]:
    out = run_cli(workdir, "trials", name, "--format", "json").stdout
    data = json.loads(out)
    assert isinstance(data, list)
    return data


def test_tune_records_trials_prints_best_and_resumes(workdir: Path) -> None:
    result = run_cli(
        workdir,
        "tune", "--system", "postgres", "--workload", TINY_TPCB,
        "--trials", "4", "--duration", "2", "--experiment", "smoke", *OLTP,
    )  # fmt: skip
    assert "summary: smoke" in result.stdout
    assert "baseline" in result.stdout and "measuring" in result.stdout
    trials = trials_json(workdir, "smoke")
    assert [t["number"] for t in trials] == [1, 2, 3, 4]
    assert trials[0]["baseline"] is True
    for trial in trials:
        assert set(trial["config"]) == {  # type: ignore[arg-type]
            "shared_buffers", "work_mem", "random_page_cost", "checkpoint_completion_target",
        }  # fmt: skip
        if trial["status"] == "ok":
            tps = trial["metrics"]["tps"]  # type: ignore[index]
            assert isinstance(tps, float) and tps > 0
            timings = trial["timings"]
            for phase in ("apply_s", "warmup_s", "measure_s", "collect_s", "total_s"):
                assert phase in timings  # type: ignore[operator]
            assert timings["measure_s"] >= 2.0  # type: ignore[index]
    assert sum(t["status"] == "ok" for t in trials) >= 3
    # Distinct configs: the optimiser never proposes one twice.
    assert len({json.dumps(t["config"], sort_keys=True) for t in trials}) == 4

    conf = run_cli(workdir, "best", "smoke", "--format", "conf").stdout.strip().splitlines()
    assert len(conf) == 5
    assert conf[0].startswith("# smoke best: trial ") and "single run, not confirmed" in conf[0]
    assert all(re.match(r"^[a-z_]+ = \S+(  # needs a restart)?$", line) for line in conf[1:]), conf
    assert "shared_buffers" in next(line for line in conf if line.endswith("# needs a restart"))
    sql = run_cli(workdir, "best", "smoke", "--format", "sql").stdout
    assert sql.count("ALTER SYSTEM SET") == 4 and sql.startswith("-- smoke best: trial ")
    best = json.loads(run_cli(workdir, "best", "smoke", "--format", "json").stdout)
    ok = [t for t in trials if t["status"] == "ok"]
    top = max(ok, key=lambda t: t["objective"])  # type: ignore[arg-type, return-value]
    assert best["trial"] == top["number"]
    csv_out = run_cli(workdir, "trials", "smoke", "--format", "csv").stdout.splitlines()
    assert csv_out[0].startswith("number,status,baseline,objective")
    assert len(csv_out) == 5
    assert "smoke" in run_cli(workdir, "experiments").stdout

    # Resume by name alone, with more trials: the recorded system, workload, knobs and
    # duration; the first four trials are kept as they were.
    result = run_cli(workdir, "tune", "--experiment", "smoke", "--trials", "5")
    assert "resuming experiment smoke" in result.stdout
    again = trials_json(workdir, "smoke")
    assert len(again) == 5
    assert again[:4] == trials

    # A changed workload is refused, by name.
    changed = workdir / "tiny-tpcb.yaml"
    changed.write_text(Path(TINY_TPCB).read_text().replace("clients: 2", "clients: 3"))
    result = run_cli(
        workdir, "tune", "--system", "postgres", "--workload", str(changed),
        "--trials", "6", "--experiment", "smoke", check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "cannot resume experiment 'smoke'" in result.stderr
    assert "workload" in result.stderr
    assert len(trials_json(workdir, "smoke")) == 5


def test_tune_races_the_best_with_repeats(workdir: Path) -> None:
    """The budget's last trials re-measure the baseline and the best; the summary says how sure."""
    result = run_cli(
        workdir, "tune", "--system", "postgres", "--workload", TINY_TPCB, "--trials", "5",
        "--repeats", "2", "--duration", "1", "--optimizer", "random", "--experiment", "raced",
        "--knobs", "work_mem,random_page_cost",
    )  # fmt: skip
    assert "the last 2 re-measuring the best" in result.stdout
    trials = trials_json(workdir, "raced")
    assert [t["repeat"] for t in trials] == [False, False, False, True, True]
    assert all(t["fidelity"] == 1.0 for t in trials)
    assert trials[3]["baseline"] is True and trials[3]["config"] == trials[0]["config"]
    searched = [t for t in trials[1:3] if t["status"] == "ok"]
    assert searched, "both searched trials failed"
    top = max(searched, key=lambda t: t["objective"])  # type: ignore[arg-type, return-value]
    assert trials[4]["config"] == top["config"]  # then the best searched config
    assert re.search(r"^trial +4  ok  tps=\S+ \(repeat\)", result.stdout, re.M), result.stdout
    best_line = re.search(
        r"^best +(trial (\d+) \(2 runs\), median \S+ tps.*); not verified$", result.stdout, re.M
    )
    assert best_line, result.stdout
    best = json.loads(run_cli(workdir, "best", "raced", "--format", "json").stdout)
    assert best["summary"] == best_line[1]
    assert best["runs"] == 2 and best["confirmed"] is True and best["trial"] == int(best_line[2])
    if best["trial"] == 1:  # on this workload the knobs barely matter: the baseline may win
        assert best_line[1].endswith("the baseline; no config beat it")
        assert best["ratio_ci"] is None and best["significant"] is False
    else:
        assert best["trial"] == top["number"]
        ci = r"× baseline \(95% CI [\d.]+–[\d.]+\), (not )?significant"
        assert re.search(ci, best_line[1]), best_line[1]
        assert len(best["ratio_ci"]) == 2 and isinstance(best["significant"], bool)
    assert "trials        5 done" in result.stdout and "2 repeats" in result.stdout


@pytest.mark.slow
def test_a_session_ends_with_its_paired_verification(workdir: Path) -> None:
    """From 10 trials: the two best and pgtune, each beside the default on a twin sandbox,
    in rotating rounds; the summary's best, ratio and CI are the rounds', and `autotune
    best` says the same."""
    result = run_cli(
        workdir, "tune", "--system", "postgres", "--workload", TINY_TPCB, "--trials", "10",
        "--duration", "1", "--optimizer", "random", "--experiment", "checked",
        "--knobs", "work_mem,random_page_cost", "--max-rounds", "3",
    )  # fmt: skip
    out = result.stdout
    assert "then a paired verification" in out
    assert (  # pgtune's db type follows the workload: oltp for pgbench
        "search done: verifying the best configs and pgtune (oltp, as for this workload) "
        "against the default"
    ) in out
    assert "beside the default on a twin server" in out
    trials = trials_json(workdir, "checked")
    search = [t for t in trials if t["phase"] == "search"]
    verify = [t for t in trials if t["phase"] == "verify"]
    assert len(search) == 10 and len(verify) == 3 * 3  # 3 arms, capped at 3 rounds
    arms = [t["arm"] for t in verify if t["round"] == 1]
    assert "default" not in arms and arms[-1] == "pgtune" and len(set(arms)) == 3
    assert [t["arm"] for t in verify if t["round"] == 2] == [*arms[1:], arms[0]]
    for t in verify:  # each run measured its own default beside it, slice by slice
        if t["status"] == "ok":
            assert t["metrics"]["reference.objective"] > 0 and t["metrics"]["slices"] >= 1, t
    assert all(t["timings"]["reset_s"] > 0 for t in trials if t["status"] == "ok")
    assert re.search(r"verification: 3 paired rounds, tps", out), out
    (best_line,) = [line for line in out.splitlines() if line.startswith("best  ")]
    best = json.loads(run_cli(workdir, "best", "checked", "--format", "json").stdout)
    assert best_line.split(None, 1)[1] == best["verdict"]
    assert best["rounds"] == 3 and isinstance(best["verified"], bool)
    assert best["recommended"] is best["verified"]
    assert best["verdict"].startswith("verified gain" if best["verified"] else "no verified gain")
    assert best["trial"] in {int(a.split()[1]) for a in arms if a.startswith("trial ")}
    assert len(best["ratio_ci"]) == 2 and best["ratio_ci"][0] <= best["ratio"]


@pytest.mark.slow
def test_auto_screens_with_short_runs_under_a_time_budget(workdir: Path) -> None:
    """With wall time as the budget, auto opens with Hyperband's short runs, then runs full."""
    result = run_cli(
        workdir, "tune", "--system", "postgres", "--workload", TINY_TPCB, "--trials", "16",
        "--repeats", "0", "--duration", "2", "--time-budget", "900", "--experiment", "screened",
        "--knobs", "work_mem,random_page_cost", "--no-verify", "--start-with", "none",
    )  # fmt: skip
    assert "summary: screened" in result.stdout
    trials = trials_json(workdir, "screened")
    assert len(trials) == 16
    fidelities = [round(float(t["fidelity"]), 3) for t in trials]  # type: ignore[arg-type]
    assert fidelities[0] == 1.0 and trials[0]["baseline"] is True
    assert fidelities[1] == round(1 / 9, 3)  # the screen's first look is short
    # Two knobs: a design of 3, so a screen that carries one config to full length...
    promoted = [t for t in trials[1:] if t["fidelity"] == 1.0]
    assert promoted, fidelities
    first = promoted[0]
    runs = sorted(
        round(float(t["fidelity"]), 3)  # type: ignore[arg-type]
        for t in trials
        if t["config"] == first["config"]
    )
    assert runs == [round(1 / 9, 3), round(1 / 3, 3), 1.0], runs
    # ...and after it every trial runs full length, on configs not tried before.
    after = trials[trials.index(first) + 1 :]
    assert after and all(t["fidelity"] == 1.0 for t in after), fidelities
    earlier = [json.dumps(t["config"], sort_keys=True) for t in trials[: trials.index(first) + 1]]
    assert all(json.dumps(t["config"], sort_keys=True) not in earlier for t in after)
    # Short runs were measured for their share of the duration, floored at a second.
    short = [t for t in trials if t["status"] == "ok" and t["fidelity"] < 1.0]
    assert short and all(
        1.0 <= t["timings"]["measure_s"] < 2.0  # type: ignore[index]
        for t in short
    )
    # The reported best is a full-length run.
    best = json.loads(run_cli(workdir, "best", "screened", "--format", "json").stdout)
    (chosen,) = [t for t in trials if t["number"] == best["trial"]]
    assert chosen["fidelity"] == 1.0


def test_pgbench_select_workload_starts_from_pgtune_by_default(workdir: Path) -> None:
    workload = DATA / "workloads" / "tiny-select.yaml"
    result = run_cli(
        workdir, "tune", "--system", "postgres", "--workload", str(workload), "--trials", "3",
        "--duration", "1", "--experiment", "select",
        "--knobs", "shared_buffers,effective_cache_size,random_page_cost",
    )  # fmt: skip
    assert "starting from pgtune's config" in result.stdout
    trials = trials_json(workdir, "select")
    assert len(trials) == 3
    assert all(t["status"] == "ok" and t["metrics"]["tps"] > 0 for t in trials)  # type: ignore[index]
    # Trial 2 is pgtune's config for this machine, carried into the three knobs tuned.
    machine = Machine.local()
    spec = load_spec(ROOT / "knobs" / "postgres.yaml", machine)
    memory = {"memory_bytes": machine.memory_bytes, "cpus": machine.cpus}
    tuned = pgtune_arm(spec, memory, workload.read_text(), restartable=True)
    assert tuned is not None
    assert trials[1]["config"] == {
        name: tuned[name] for name in ("shared_buffers", "effective_cache_size", "random_page_cost")
    }


def test_analytic_query_set(workdir: Path) -> None:
    result = run_cli(
        workdir, "tune", "--system", "postgres", "--workload", "analytic",
        "--trials", "3", "--duration", "1", "--experiment", "olap", "--knobs", "group:analytics",
    )  # fmt: skip
    assert "latency_p95_ms" in result.stdout
    trials = trials_json(workdir, "olap")
    assert len(trials) == 3
    ok = [t for t in trials if t["status"] == "ok"]
    assert ok and all(t["metrics"]["latency_p95_ms"] > 0 for t in ok)  # type: ignore[index]
    assert all(t["metrics"]["queries"] >= 5 for t in ok)  # type: ignore[index]
    best = json.loads(run_cli(workdir, "best", "olap", "--format", "json").stdout)
    assert best["trial"] == min(ok, key=lambda t: t["objective"])["number"]  # type: ignore[arg-type,return-value]


def _wait_for(proc: subprocess.Popen[str], text: str, timeout: float) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
        if text in line:
            return seen
    raise AssertionError(f"never saw {text!r}; output so far:\n{seen}")


@pytest.mark.slow
def test_builtin_tpcb_workload_file(workdir: Path) -> None:
    """The shipped pgbench-tpcb (scale 10) as a user runs it, kept short."""
    run_cli(
        workdir, "tune", "--system", "postgres", "--workload", "pgbench-tpcb",
        "--trials", "2", "--duration", "2", "--experiment", "builtin", "--knobs", "group:oltp",
    )  # fmt: skip
    trials = trials_json(workdir, "builtin")
    assert len(trials) == 2 and trials[0]["status"] == "ok"


def test_bad_input_gets_one_clear_error(workdir: Path) -> None:
    result = run_cli(workdir, "tune", "--system", "nosuch", "--workload", TINY_TPCB, check=False)
    assert result.returncode != 0
    assert "unknown knob 'nosuch'" in result.stderr or "nosuch" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli(
        workdir, "tune", "--system", "postgres", "--workload", TINY_TPCB,
        "--knobs", "fsync", check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "--allow-unsafe" in result.stderr
    assert "Traceback" not in result.stderr
