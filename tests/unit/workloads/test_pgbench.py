"""Reading pgbench's summary and its per-transaction logs (no pgbench is run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.workloads import WorkloadError
from autotune.workloads._loader import parse_workload
from autotune.workloads.pgbench import PgbenchWorkload, parse_summary, read_latencies_ms

# What pgbench 15-17 prints after a run.
SUMMARY = """\
pgbench (15.18 (Debian 15.18-1.pgdg120+1))
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 1
query mode: simple
number of clients: 2
number of threads: 1
maximum number of tries: 1
duration: 2 s
number of transactions actually processed: 1763
number of failed transactions: 0 (0.000%)
latency average = 1.134 ms
initial connection time = 4.514 ms
tps = 1763.527031 (without initial connection time)
"""


def test_parse_summary() -> None:
    assert parse_summary(SUMMARY) == {
        "tps": pytest.approx(1763.527031),
        "latency_avg_ms": pytest.approx(1.134),
        "transactions": 1763.0,
        "failed": 0.0,
    }


def test_parse_summary_with_failures_and_extra_lines() -> None:
    text = SUMMARY.replace(
        "number of failed transactions: 0 (0.000%)",
        "number of failed transactions: 12 (0.680%)\nnumber of serialization failures: 12",
    ).replace("latency average = 1.134 ms", "latency average = 2.5 ms\nlatency stddev = 0.7 ms")
    metrics = parse_summary(text)
    assert metrics["failed"] == 12.0
    assert metrics["latency_avg_ms"] == 2.5  # not the stddev
    assert metrics["tps"] == pytest.approx(1763.527031)


def test_parse_summary_tps_only() -> None:
    assert parse_summary("tps = 10.5 (without initial connection time)\n") == {"tps": 10.5}


def test_parse_summary_ignores_per_statement_and_progress_lines() -> None:
    text = (
        "progress: 1.0 s, 900.0 tps, lat 1.1 ms stddev 0.2, 0 failed\n"
        + SUMMARY
        + "statement latencies in milliseconds and failures:\n         0.002  0  \\set aid\n"
    )
    assert parse_summary(text)["tps"] == pytest.approx(1763.527031)


def test_parse_summary_without_a_tps_line_keeps_the_output() -> None:
    output = "pgbench: error: connection to server failed: FATAL: too many connections\n"
    with pytest.raises(WorkloadError, match="no tps line") as err:
        parse_summary(output)
    assert "too many connections" in err.value.log_excerpt


def test_parse_summary_keeps_only_the_tail_of_long_output() -> None:
    output = "x" * 5000 + "END"
    with pytest.raises(WorkloadError) as err:
        parse_summary(output)
    assert err.value.log_excerpt.endswith("END")
    assert len(err.value.log_excerpt) == 2000


def test_read_latencies_ms(tmp_path: Path) -> None:
    # client_id transaction_no time(us) script_no time_epoch time_us [schedule_lag]
    (tmp_path / "tx.123").write_text(
        "0 1 1500 0 1700000000 100\n"
        "0 2 2500 0 1700000000 200\n"
        "1 1 failed 0 1700000000 300\n"
        "1 2 skipped 0 1700000000 400\n"
        "\n"
    )
    (tmp_path / "tx.123.1").write_text("2 1 1000 0 1700000001 100 5\n3 1 250 0 1700000001 9\n")
    (tmp_path / "tx.empty").write_text("")
    files = sorted(tmp_path.glob("tx.*"))
    latencies = read_latencies_ms(files)
    assert sorted(latencies.tolist()) == [0.25, 1.0, 1.5, 2.5]
    assert read_latencies_ms([]).size == 0
    assert read_latencies_ms([tmp_path / "tx.empty"]).size == 0


def test_percentiles_from_a_log(tmp_path: Path) -> None:
    lines = [f"0 {i} {i * 1000} 0 1700000000 0" for i in range(1, 101)]  # 1..100 ms
    (tmp_path / "tx.1").write_text("\n".join(lines) + "\n")
    latencies = read_latencies_ms([tmp_path / "tx.1"])
    assert latencies.size == 100
    assert np.percentile(latencies, 95) == pytest.approx(95.05)
    assert latencies.mean() == pytest.approx(50.5)


def test_run_args(tmp_path: Path) -> None:
    text = """\
name: t
system: postgres
kind: pgbench
builtin: select-only
mode: prepared
clients: 8
threads: 2
objective: {metric: tps}
"""
    path = tmp_path / "t.yaml"
    path.write_text(text)
    args = PgbenchWorkload(parse_workload(text, path))._run_args(2.2)
    assert args[args.index("--client") + 1] == "8"
    assert args[args.index("--jobs") + 1] == "2"
    assert args[args.index("--protocol") + 1] == "prepared"
    assert args[args.index("--time") + 1] == "3"  # whole seconds, rounded up
    assert args[args.index("--builtin") + 1] == "select-only"
    assert "--no-vacuum" in args
