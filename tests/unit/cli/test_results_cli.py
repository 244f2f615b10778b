"""`autotune experiments | trials | best` over a store in tmp_path."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from autotune.cli import app
from autotune.spec import Machine
from autotune.store import Experiment, Store, Trial
from tests.unit._support import MACHINE, ROOT

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


@pytest.fixture(autouse=True)
def fixed_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Machine, "local", classmethod(lambda cls: MACHINE))


@pytest.fixture
def filled(
    store: Store,
    make_experiment: Callable[..., Experiment],
    make_trial: Callable[..., Trial],
) -> Experiment:
    exp = make_experiment("bench", settings={"knobs": ["mem", "mode", "jit"], "duration_s": 1.0})
    base = {"mem": 4096, "mode": "a", "jit": True}
    store.add_trial(
        exp,
        make_trial(
            1,
            100.0,
            baseline=True,
            config=base,
            metrics={"tps": 100.0, "latency_p95_ms": 9.5},
            timings={"measure_s": 2.0, "total_s": 3.0, "reload_s": 0.1},
        ),
    )
    store.add_trial(
        exp,
        make_trial(
            2,
            150.0,
            config={"mem": 65536, "mode": "b", "jit": False},
            metrics={"tps": 150.0, "latency_p95_ms": 7.0},
        ),
    )
    store.add_trial(
        exp,
        make_trial(3, None, "failed", config={"mem": 64, "mode": "c", "jit": True}, error="boom"),
    )
    return exp


def invoke(*args: str, store_url: str) -> Any:
    return runner.invoke(app, [*args, "--store", store_url], env=WIDE)


def test_experiments_lists_progress_and_best(filled: Experiment, store_url: str) -> None:
    result = invoke("experiments", store_url=store_url)
    assert result.exit_code == 0, result.output
    (row,) = [line for line in result.stdout.splitlines() if "bench" in line]
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells[:8] == ["bench", "toy", "toy-bench", "tps (max)", "3", "1", "100", "150"]


def test_trials_csv(filled: Experiment, store_url: str) -> None:
    result = invoke("trials", "bench", "--format", "csv", store_url=store_url)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["number"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["baseline"] == "True"
    assert rows[1]["objective"] == "150.0"
    assert rows[1]["mem"] == "64MB"  # formatted in the knob's units
    assert rows[1]["jit"] == "off"
    assert rows[0]["latency_p95_ms"] == "9.5"
    assert rows[2]["status"] == "failed"
    assert rows[2]["error"] == "boom"
    assert (rows[0]["fidelity"], rows[0]["repeat"]) == ("1.0", "False")


def test_trials_json(filled: Experiment, store_url: str) -> None:
    result = invoke("trials", "bench", "--format", "json", store_url=store_url)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [t["number"] for t in data] == [1, 2, 3]
    assert data[1]["config"] == {"mem": 65536, "mode": "b", "jit": False}
    assert data[2]["error"] == "boom"


def test_trials_table(filled: Experiment, store_url: str) -> None:
    result = invoke("trials", "bench", store_url=store_url)
    assert result.exit_code == 0, result.output
    assert "1 (baseline)" in result.stdout
    assert "┃ run " in result.stdout  # the column for repeats and short runs
    assert "mem=64MB mode=b jit=off" in result.stdout
    assert "failed" in result.stdout


@pytest.mark.parametrize("command", ["trials", "best"])
def test_unknown_experiment(filled: Experiment, store_url: str, command: str) -> None:
    result = invoke(command, "nope", store_url=store_url)
    assert result.exit_code != 0
    assert "no experiment 'nope'" in result.stderr
    assert "known: bench" in result.stderr


def test_best_sql(filled: Experiment, store_url: str) -> None:
    result = invoke("best", "bench", "--format", "sql", store_url=store_url)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "-- bench best: trial 2 (single run, not confirmed), value 150 tps, 1.5× baseline; "
        "not verified",
        """ALTER SYSTEM SET "mem" = '64MB';""",
        """ALTER SYSTEM SET "mode" = 'b';""",
        """ALTER SYSTEM SET "jit" = 'off';""",
        "SELECT pg_reload_conf();",
    ]


def test_best_conf_and_json(filled: Experiment, store_url: str) -> None:
    conf = invoke("best", "bench", store_url=store_url)
    assert conf.exit_code == 0, conf.output
    assert conf.stdout.splitlines() == [
        "# bench best: trial 2 (single run, not confirmed), value 150 tps, 1.5× baseline; "
        "not verified",
        "mem = '64MB'",
        "mode = 'b'",
        "jit = 'off'",
    ]
    out = invoke("best", "bench", "--format", "json", store_url=store_url)
    data = json.loads(out.stdout)
    assert data["trial"] == 2
    assert data["objective"] == {"tps": 150.0}
    assert data["baseline"] == 100.0
    assert data["config"] == {"mem": "64MB", "mode": "b", "jit": "off"}
    assert (data["runs"], data["confirmed"], data["significant"]) == (1, False, False)
    assert data["ratio"] == 1.5 and data["ratio_ci"] is None
    assert data["verified"] is None and data["recommended"] is True


def test_best_is_the_robust_one_with_its_ci(
    store: Store,
    store_url: str,
    make_experiment: Callable[..., Experiment],
    make_trial: Callable[..., Trial],
) -> None:
    """A single lucky run loses to a config confirmed by repeats; the header says how sure."""
    exp = make_experiment("raced", settings={"knobs": ["mem"], "duration_s": 1.0})
    runs = [  # (config's mem, tps, repeat)
        (4096, 100.0, False),
        (8192, 160.0, False),  # lucky once, never confirmed
        (16384, 120.0, False),
        (4096, 102.0, True),
        (16384, 118.0, True),
        (4096, 98.0, True),
        (16384, 122.0, True),
        (8192, 600.0, False),  # a short run: never the best
    ]
    for number, (mem, value, repeat) in enumerate(runs, start=1):
        store.add_trial(
            exp,
            make_trial(
                number,
                value,
                config={"mem": mem},
                baseline=mem == 4096,
                repeat=repeat,
                fidelity=0.25 if value == 600.0 else 1.0,
            ),
        )
    conf = invoke("best", "raced", store_url=store_url)
    assert conf.exit_code == 0, conf.output
    head, *lines = conf.stdout.splitlines()
    assert head.startswith("# raced best: trial 3 (3 runs), median 120 tps, 1.2× baseline (95% CI ")
    assert head.endswith("), significant; not verified")
    assert lines == ["mem = '16MB'"]
    data = json.loads(invoke("best", "raced", "--format", "json", store_url=store_url).stdout)
    assert (data["trial"], data["runs"], data["trials"]) == (3, 3, [3, 5, 7])
    assert data["objective"] == {"tps": 120.0} and data["baseline"] == 100.0
    assert data["ratio"] == pytest.approx(1.2) and data["significant"] is True
    assert 1.0 < data["ratio_ci"][0] <= 1.2 <= data["ratio_ci"][1]
    assert data["summary"].startswith("trial 3 (3 runs)")
    assert data["config"] == {"mem": "16MB"}


def _verified(
    store: Store,
    make_experiment: Callable[..., Experiment],
    make_trial: Callable[..., Trial],
    ratios: list[float],
) -> None:
    """A search (default, 8 MB, 16 MB), then paired rounds of the default and trial 2."""
    exp = make_experiment("checked", settings={"knobs": ["mem"], "duration_s": 1.0})
    for number, (mem, value) in enumerate([(4096, 100.0), (8192, 130.0), (16384, 110.0)], 1):
        store.add_trial(exp, make_trial(number, value, config={"mem": mem}, baseline=number == 1))
    number = 3
    for r, ratio in enumerate(ratios, start=1):
        for arm, mem, value in (("default", 4096, 100.0 + r), ("trial 2", 8192, (100 + r) * ratio)):
            number += 1
            store.add_trial(
                exp,
                make_trial(number, value, config={"mem": mem}, phase="verify", round=r, arm=arm),
            )


def test_best_after_a_verification_is_its_best_with_the_paired_ci(
    store: Store,
    store_url: str,
    make_experiment: Callable[..., Experiment],
    make_trial: Callable[..., Trial],
) -> None:
    _verified(store, make_experiment, make_trial, [1.10, 1.12, 1.09, 1.11])
    conf = invoke("best", "checked", store_url=store_url)
    assert conf.exit_code == 0, conf.output
    head, *lines = conf.stdout.splitlines()
    assert head.startswith("# checked best: verified gain: trial 2 is 1.10")
    assert head.endswith(", 4 paired rounds)")
    assert lines == ["mem = '8MB'"]
    data = json.loads(invoke("best", "checked", "--format", "json", store_url=store_url).stdout)
    assert data["verified"] is True and data["recommended"] is True
    assert data["trial"] == 2 and data["rounds"] == 4
    assert data["ratio"] == pytest.approx(1.1049, abs=1e-3)
    assert 1.0 < data["ratio_ci"][0] < data["ratio"] < data["ratio_ci"][1]
    assert data["verdict"].startswith("verified gain: trial 2")
    assert [a["label"] for a in data["verification"]["arms"]] == ["default", "trial 2"]


def test_best_without_a_verified_gain_says_keep_the_default(
    store: Store,
    store_url: str,
    make_experiment: Callable[..., Experiment],
    make_trial: Callable[..., Trial],
) -> None:
    _verified(store, make_experiment, make_trial, [1.03, 0.98, 1.01, 0.99])
    sql = invoke("best", "checked", "--format", "sql", store_url=store_url)
    assert sql.exit_code == 0, sql.output
    lines = sql.stdout.splitlines()
    assert lines[0].startswith("-- checked best: no verified gain: keep the default (trial 2 is")
    assert lines[1] == "-- the best candidate, not recommended (uncomment to try it anyway):"
    assert lines[2:] == ["""-- ALTER SYSTEM SET "mem" = '8MB';""", "-- SELECT pg_reload_conf();"]
    data = json.loads(invoke("best", "checked", "--format", "json", store_url=store_url).stdout)
    assert data["verified"] is False and data["recommended"] is False
    assert data["ratio_ci"][0] < 1 < data["ratio_ci"][1] and data["significant"] is False


def test_best_minimize_picks_the_lowest(
    store: Store,
    store_url: str,
    make_experiment: Callable[..., Experiment],
    make_trial: Callable[..., Trial],
) -> None:
    exp = make_experiment("lat", "minimize")
    for number, value, mem in [(1, 10.0, 4096), (2, 4.0, 1024), (3, 8.0, 2048)]:
        store.add_trial(exp, make_trial(number, value, config={"mem": mem}, baseline=number == 1))
    for number, value, mem in [(4, 4.2, 1024), (5, 8.1, 2048)]:  # repeats of 2 and 3
        store.add_trial(exp, make_trial(number, value, config={"mem": mem}, repeat=True))
    data = json.loads(invoke("best", "lat", "--format", "json", store_url=store_url).stdout)
    assert data["trial"] == 2 and data["median"] == pytest.approx(4.1)
    assert data["config"] == {"mem": "1MB"}


def test_best_without_a_successful_trial(
    store: Store,
    store_url: str,
    make_experiment: Callable[..., Experiment],
    make_trial: Callable[..., Trial],
) -> None:
    exp = make_experiment("bad")
    store.add_trial(exp, make_trial(1, None, "failed", baseline=True))
    result = invoke("best", "bad", store_url=store_url)
    assert result.exit_code != 0
    assert "no successful trial" in result.stderr


def test_bad_format_is_refused(filled: Experiment, store_url: str) -> None:
    result = invoke("best", "bench", "--format", "yaml", store_url=store_url)
    assert result.exit_code == 2


def test_best_works_on_a_smaller_host_than_the_one_tuned_on(
    store: Store,
    store_url: str,
    make_experiment: Callable[..., Experiment],
    make_trial: Callable[..., Trial],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reading results needs no machine bounds: a laptop must show a server's best config."""
    spec_text = (ROOT / "knobs" / "postgres.yaml").read_text()
    exp = make_experiment(
        "server",
        spec_content=spec_text,
        spec_hash="pg",
        spec_path="postgres.yaml",
        system="postgres",
    )
    store.add_trial(exp, make_trial(1, 100.0, baseline=True, config={"work_mem": 4096}))
    store.add_trial(exp, make_trial(2, 120.0, config={"work_mem": 65536}))
    laptop = Machine(memory_bytes=4 * 1024**3, cpus=2)
    monkeypatch.setattr(Machine, "local", classmethod(lambda cls: laptop))
    result = invoke("best", "server", "--format", "sql", store_url=store_url)
    assert result.exit_code == 0, result.output
    assert """ALTER SYSTEM SET "work_mem" = '64MB';""" in result.stdout
