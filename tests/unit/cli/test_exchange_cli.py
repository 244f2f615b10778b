"""`autotune export` and `autotune import`, and `autotune bench export-recorded`, end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from autotune.cli import app as autotune_app
from autotune.cli import exchange
from autotune.store import Experiment, Store, Trial, export_experiment, read_export
from autotune.store._document import spec_hash, workload_hash
from tests.unit._support import TOY_SPEC, TOY_WORKLOAD

runner = CliRunner()

app = typer.Typer()
app.command("export")(exchange.export)
app.command("import")(exchange.import_)


@pytest.fixture
def filled(
    store: Store, make_experiment: Callable[..., Experiment], make_trial: Callable[..., Trial]
) -> Experiment:
    exp = make_experiment(
        "bench",
        spec_hash=spec_hash(TOY_SPEC),
        workload_hash=workload_hash(TOY_WORKLOAD, {}),
        settings={"knobs": ["mem", "ratio"], "duration_s": 1.0},
    )
    store.add_trial(exp, make_trial(1, 100.0, baseline=True))
    store.add_trial(exp, make_trial(2, 1 / 3, metrics={"tps": 1 / 3, "latency_p95_ms": 0.1}))
    store.add_trial(exp, make_trial(3, None, "failed", error="no start", log_excerpt="FATAL"))
    store.add_analysis(exp, "analyze", {"ranking": [["mem", 0.5]]})
    return exp


def test_export_then_import_into_another_store(
    store: Store, store_url: str, filled: Experiment, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "bench.json.gz"
    result = runner.invoke(app, ["export", "bench", "--out", str(out), "--store", store_url])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote experiment 'bench' (3 trials) to {out}\n"

    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    result = runner.invoke(app, ["import", str(out), "--store", other_url])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"imported experiment 'bench' (3 trials) from {out} into ")
    other = Store(other_url)
    try:
        again = export_experiment(other, "bench")
    finally:
        other.close()
    first = read_export(out)
    first.pop("exported_at")
    again.pop("exported_at")
    assert again == first


def test_import_refuses_a_taken_name_and_takes_name(
    store: Store, store_url: str, filled: Experiment, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    assert (
        runner.invoke(app, ["export", "bench", "-o", str(out), "--store", store_url]).exit_code == 0
    )
    before = len(store.trials(filled))

    result = runner.invoke(app, ["import", str(out), "--store", store_url])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: experiment 'bench' already exists in {store.safe_url}; give --name NEW"
    )
    assert [e.name for e in store.experiments()] == ["bench"]
    assert len(store.trials(filled)) == before

    result = runner.invoke(app, ["import", str(out), "--name", "bench-2", "--store", store_url])
    assert result.exit_code == 0, result.output
    assert "imported experiment 'bench-2' (3 trials)" in result.stdout
    copy = store.require_experiment("bench-2")
    assert store.trials(copy) == store.trials(filled)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d.update(version=7), "version: 7: made by a newer autotune"),
        (lambda d: d.update(format="csv"), "format: 'csv' is not 'autotune-experiment'"),
        (lambda d: d["trials"][1].pop("metrics"), "trials[1].metrics: missing"),
        (lambda d: d["experiment"]["spec"].update(content="x"), "experiment.spec.hash: "),
    ],
    ids=["newer", "other-format", "missing-field", "hash-mismatch"],
)
def test_import_of_a_bad_file_is_one_line_naming_file_and_field(
    store: Store,
    store_url: str,
    filled: Experiment,
    tmp_path: Path,
    edit: Callable[[dict[str, object]], object],
    expected: str,
) -> None:
    doc = export_experiment(store, "bench")
    edit(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    result = runner.invoke(app, ["import", str(path), "--store", other_url])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: {expected}"), lines


def test_import_of_a_corrupt_or_missing_file(tmp_path: Path, store_url: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"format": "autotune-experiment"')
    result = runner.invoke(app, ["import", str(path), "--store", store_url])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {path}: not valid JSON (")
    result = runner.invoke(app, ["import", str(tmp_path / "none.json"), "--store", store_url])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'none.json'}: no such file"


def test_export_errors(store: Store, store_url: str, filled: Experiment, tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", "bench", "--store", store_url])
    assert result.exit_code == 2 and "--out" in result.output  # required
    out = tmp_path / "x.json"
    result = runner.invoke(app, ["export", "nope", "--out", str(out), "--store", store_url])
    assert result.exit_code == 2
    assert "no experiment 'nope'" in result.stderr and "known: bench" in result.stderr
    assert not out.exists()


def test_bench_export_recorded_writes_the_versioned_format(
    store: Store, store_url: str, filled: Experiment, tmp_path: Path
) -> None:
    out = tmp_path / "rec.json"
    args = ["bench", "export-recorded", "bench", "--store", store_url, "--out", str(out)]
    result = runner.invoke(autotune_app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote 3 trials to {out}\n"
    doc = read_export(out)
    assert doc["version"] == 2 and [t["number"] for t in doc["trials"]] == [1, 2, 3]
    result = runner.invoke(autotune_app, [*args[:2], "nope", *args[3:]])
    assert result.exit_code == 2 and "no experiment 'nope'" in result.stderr


def test_import_refuses_configs_outside_the_spec_and_writes_nothing(
    store: Store, store_url: str, filled: Experiment, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    assert (
        runner.invoke(app, ["export", "bench", "--out", str(out), "--store", store_url]).exit_code
        == 0
    )
    doc = json.loads(out.read_text())
    doc["trials"][1]["config"]["mem"] = 10**12  # far above the toy spec's max
    doc["trials"][2]["config"]["bogus"] = 1
    out.write_text(json.dumps(doc))
    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    result = runner.invoke(app, ["import", str(out), "--store", other_url])
    assert result.exit_code == 2
    assert f"{out}: trials[1].config.mem:" in result.output
    assert f"{out}: trials[2].config.bogus: not a knob of the experiment's spec" in result.output
    other = Store(other_url)
    try:
        assert other.experiments() == []
    finally:
        other.close()
