"""Every listing at 80 columns: no experiment, knob, agent or spec name is cut, and
--format csv and json give every column."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from autotune.cli import app
from autotune.cli._listing import Column, Format, print_listing
from autotune.spec import Machine, load_spec
from autotune.store import Experiment, Store, Trial
from tests.unit._support import MACHINE, ROOT
from tests.unit.analysis._support import create_pg_experiment, fill

runner = CliRunner()
NARROW = {"COLUMNS": "80"}
LONG = "postgres-pgbench-tpcb-oltp20-2026-12-02T1830-seed4.verified"  # 58 characters


@pytest.fixture(autouse=True)
def fixed_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Machine, "local", classmethod(lambda cls: MACHINE))


def whole(name: str, out: str) -> bool:
    """``name`` printed as one token: not folded, cut or ellipsised."""
    return re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", out) is not None


def widest(out: str) -> int:
    return max(len(line) for line in out.splitlines())


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), env=NARROW)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def listed(
    store: Store,
    make_experiment: Callable[..., Experiment],
    make_trial: Callable[..., Trial],
) -> list[str]:
    names = [LONG, "short", "postgres-pgbench-select-2026-12-02"]
    for name in names:
        exp = make_experiment(name, settings={"knobs": ["mem", "ratio"], "duration_s": 1.0})
        store.add_trial(exp, make_trial(1, 100.0, baseline=True))
        tried = {"mem": 65536, "ratio": 0.25}
        store.add_trial(exp, make_trial(2, 123.456, config=tried))
        store.add_trial(exp, make_trial(3, 120.0, config=tried, repeat=True))
    return names


def test_experiments_at_80_columns_keep_every_name_whole(listed: list[str], store_url: str) -> None:
    out = invoke("experiments", "--store", store_url)
    assert widest(out) <= 80, out
    assert "…" not in out
    for name in listed:
        assert whole(name, out), (name, out)
    assert "left out to fit 80 columns" in " ".join(out.split())  # it says what it dropped


def test_experiments_csv_and_json_have_every_column(listed: list[str], store_url: str) -> None:
    rows = read_csv(invoke("experiments", "-f", "csv", "--store", store_url))
    assert [r["experiment"] for r in rows] == listed
    assert set(rows[0]) >= {"system", "workload", "objective", "trials", "best", "created"}
    data = json.loads(invoke("experiments", "--format", "json", "--store", store_url))
    assert data[0]["experiment"] == LONG and data[0]["best"] == pytest.approx(121.728)


def test_trials_at_80_columns_say_which_trial_a_repeat_repeats(
    listed: list[str], store_url: str
) -> None:
    out = invoke("trials", LONG, "--store", store_url)
    assert widest(out) <= 80, out
    assert whole(LONG, out)
    (row,) = [line for line in out.splitlines() if "repeat" in line]
    assert "repeat of 2" in row


def test_knobs_show_at_80_columns_keeps_every_knob_name_whole() -> None:
    path = ROOT / "knobs" / "postgres.yaml"
    out = invoke("knobs", "show", str(path))
    assert widest(out) <= 80, out
    assert "…" not in out
    for name in load_spec(path).knobs:
        assert whole(name, out), (name, out)
    data = json.loads(invoke("knobs", "show", str(path), "--format", "json"))
    unsafe = {k["knob"] for k in data if k["safety"] == "unsafe"}
    assert {"fsync", "synchronous_commit", "full_page_writes"} <= unsafe


def test_systems_and_agents_at_80_columns(store: Store, store_url: str) -> None:
    out = invoke("systems")
    assert widest(out) <= 80, out
    for name in ("postgres", "linux", "redis"):
        assert whole(name, out), out
    agents = ["db-host-042.eu-west-1.internal.example", "a"]
    for name in agents:
        store.add_agent(name)
    out = invoke("agents", "list", "--store", store_url)
    assert widest(out) <= 80, out
    assert all(whole(name, out) for name in agents), out
    data = json.loads(invoke("agents", "list", "-f", "json", "--store", store_url))
    assert [a["agent"] for a in data] == agents and data[0]["last_seen"] is None


def test_analyze_at_80_columns_names_every_knob_and_warns_on_few_trials(
    store: Store, store_url: str
) -> None:
    exp = fill(store, create_pg_experiment(store, name=LONG), n=12)
    out = invoke("analyze", LONG, "--store", store_url)
    assert widest(out) <= 80, out
    assert "…" not in out
    assert "caution: ranked from 12 trials" in out
    for knob in exp.settings["knobs"]:
        assert whole(knob, out), (knob, out)
    rows = read_csv(invoke("analyze", LONG, "-f", "csv", "--store", store_url))
    assert {r["knob"] for r in rows} == set(exp.settings["knobs"])


def _rows(n: int, name: str) -> list[dict[str, Any]]:
    return [{"name": f"{name}{i}", "a": "x" * 30, "b": "y" * 30, "c": i} for i in range(n)]


def test_a_table_too_wide_drops_columns_then_folds_but_never_cuts_a_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    columns = [Column("name", name=True), Column("a"), Column("b", drop=1), Column("c")]
    print_listing(_rows(3, "n" * 40), columns, Format.table, width=80)
    out = capsys.readouterr().out
    assert widest(out) <= 80
    assert all(whole(f"{'n' * 40}{i}", out) for i in range(3)), out
    assert "y" * 10 not in out and "(b left out to fit 80 columns" in out


def test_names_wider_than_the_terminal_print_as_expanded_records(
    capsys: pytest.CaptureFixture[str],
) -> None:
    columns = [Column("name", name=True), Column("a"), Column("c")]
    print_listing(_rows(2, "n" * 90), columns, Format.table, width=80)
    out = capsys.readouterr().out
    assert "-[ 1 ]-" in out and "-[ 2 ]-" in out
    assert all(whole(f"{'n' * 90}{i}", out) for i in range(2)), out
