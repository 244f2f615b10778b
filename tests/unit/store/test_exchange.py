"""Export and import of one experiment as a versioned file: lossless, validated, all or nothing."""

from __future__ import annotations

import copy
import dataclasses
import gzip
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from autotune.bench.problems import (
    PG_RECORDED,
    fit_surrogate,
    load_recorded,
    recorded_space,
    training_trials,
)
from autotune.spec import parse_spec
from autotune.store import (
    Experiment,
    Store,
    StoreError,
    Trial,
    export_experiment,
    import_experiment,
    read_export,
    write_export,
)
from autotune.store import _store as store_module
from autotune.store._document import TRIAL_KEYS, VERSION, spec_hash, workload_hash
from autotune.workloads import WorkloadDef
from tests.unit._support import MACHINE, T0, TOY_SPEC, TOY_WORKLOAD

MakeExperiment = Callable[..., Experiment]
MakeTrial = Callable[..., Trial]

FILES = {"scripts/run.sql": "SELECT 1;\n", "setup.sql": "CREATE TABLE t (x int);\n"}
# Floats that a careless writer (str(), %g, float32) would change.
AWKWARD = [0.1, 1 / 3, 0.1 + 0.2, 1e-300, 5e-324, 1.7976931348623157e308, 123456789.123456789]


def rows(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608


def counts(store: Store) -> dict[str, int]:
    tables = ("experiments", "trials", "metrics", "analyses", "specs", "workloads", "systems")
    return {t: rows(store, t) for t in tables}


def without_exported_at(doc: dict[str, Any]) -> str:
    doc = {k: v for k, v in doc.items() if k != "exported_at"}
    return json.dumps(doc, sort_keys=True, indent=1)


@pytest.fixture
def other(tmp_path: Path) -> Iterator[Store]:
    st = Store(f"sqlite:///{tmp_path / 'other' / 'autotune.db'}")
    yield st
    st.close()


@pytest.fixture
def rich(store: Store, make_experiment: MakeExperiment, make_trial: MakeTrial) -> Experiment:
    """An experiment with every kind of trial, many metrics, optimiser state and analyses."""
    exp = make_experiment(
        "rich",
        spec_hash=spec_hash(TOY_SPEC),
        spec_path="/somewhere/knobs/toy.yaml",
        workload_hash=workload_hash(TOY_WORKLOAD, FILES),
        workload_files=FILES,
        workload_path="/somewhere/workloads/toy-bench.yaml",
        seed=42,
        settings={
            "knobs": ["mem", "ratio"],
            "duration_s": 8.0,
            "machine": {"memory_bytes": 25276510208, "cpus": 2},
            "budget": 9,
            "repeats": 1,
            "weights": AWKWARD,
        },
    )
    metrics = {f"metric_{i:02d}": AWKWARD[i] if i < len(AWKWARD) else i / 7 for i in range(40)}

    def history(n: int, end: str) -> list[tuple[str, ...]]:
        t = T0 + timedelta(minutes=n)
        return [
            ("pending", t.isoformat()),
            ("leased", (t + timedelta(seconds=1)).isoformat(), "agent-1"),
            (end, (t + timedelta(seconds=30)).isoformat()),
        ]

    def extra(n: int, end: str) -> dict[str, Any]:
        return dict(
            agent="agent-1",
            attempts=1,
            proposed_at=T0 + timedelta(minutes=n, microseconds=123456),
            status_history=history(n, end),
            timings={"apply_s": 0.008132823999403627, "measure_s": 8.076098644000012},
        )

    trials = [
        make_trial(
            1, 2922.826464, baseline=True, metrics={**metrics, "tps": 2922.826464}, **extra(1, "ok")
        ),
        make_trial(2, 1 / 3, config={"mem": 8192, "ratio": 0.1 + 0.2}, **extra(2, "ok")),
        make_trial(
            3,
            None,
            "failed",
            config={"mem": 1 << 40, "ratio": 1.0},
            error="the server did not start",
            log_excerpt="FATAL:  could not map anonymous shared memory\nHINT: ‘less’ – ünïcode",
            not_applied={"mem": "server kept 4MB"},
            **extra(3, "failed"),
        ),
        make_trial(
            4, 2.0 / 3, config={"mem": 8192, "ratio": 0.1 + 0.2}, repeat=True, **extra(4, "ok")
        ),
        make_trial(5, 1e-300, fidelity=0.25, **extra(5, "ok")),
        make_trial(6, 3.5, phase="verify", round=2, arm="trial 2", **extra(6, "ok")),
        make_trial(7, 3.25, phase="control", **extra(7, "ok")),
        make_trial(
            8,
            None,
            "pending",
            started_at=None,
            finished_at=None,
            proposed_at=T0 + timedelta(minutes=8),
            status_history=[("pending", (T0 + timedelta(minutes=8)).isoformat())],
        ),
    ]
    for trial in trials:
        store.add_trial(exp, trial)
    state = {"gp": {"length_scales": AWKWARD, "noise": 1e-6}, "hedge": [0.5, 0.25, 0.25]}
    store.save_optimizer_state(exp, state)
    store.add_analysis(exp, "analyze", {"ranking": [["mem", 0.75], ["ratio", 1 / 3]]})
    store.add_analysis(exp, "verify", {"ratio": 1.0123, "ci": [0.99, 1.04]}, T0)
    return store.update_experiment(exp, status="done")


# -- round trip -------------------------------------------------------------------------------


def test_the_document_holds_every_field(store: Store, rich: Experiment) -> None:
    doc = export_experiment(store, "rich")
    assert doc["format"] == "autotune-experiment" and doc["version"] == VERSION
    assert set(doc) == {
        "format",
        "version",
        "autotune_version",
        "exported_at",
        "experiment",
        "trials",
        "analyses",
    }
    # Every field of Trial but the store's own id, and nothing else.
    assert set(TRIAL_KEYS) == {f.name for f in dataclasses.fields(Trial)} - {"id"}
    assert all(set(t) == set(TRIAL_KEYS) for t in doc["trials"])
    e = doc["experiment"]
    assert e["spec"] == {"path": rich.spec_path, "hash": rich.spec_hash, "content": TOY_SPEC}
    assert e["workload"]["files"] == FILES
    assert e["status"] == "done" and e["optimizer_state"]["gp"]["length_scales"] == AWKWARD
    assert e["created_at"].endswith("+00:00")
    assert [a["kind"] for a in doc["analyses"]] == ["verify", "analyze"]  # oldest first
    assert [t["number"] for t in doc["trials"]] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert doc["trials"][0]["proposed_at"] == "2026-01-02T03:05:05.246912+00:00"
    assert doc["trials"][2]["log_excerpt"].startswith("FATAL:")
    assert len(doc["trials"][0]["metrics"]) == 41


@pytest.mark.parametrize("filename", ["rich.json", "sub/dir/rich.json.gz"])
def test_round_trip_is_lossless(
    store: Store, other: Store, rich: Experiment, tmp_path: Path, filename: str
) -> None:
    path = tmp_path / filename
    first = export_experiment(store, "rich")
    write_export(first, path)
    raw = path.read_bytes()
    if filename.endswith(".gz"):
        assert raw[:2] == b"\x1f\x8b"
        raw = gzip.decompress(raw)
    text = raw.decode()
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=1) + "\n"

    doc = read_export(path)
    assert doc == first
    imported = import_experiment(other, doc)
    again = export_experiment(other, "rich")
    assert without_exported_at(again) == without_exported_at(first)
    # The same rows, not just the same text.
    assert dataclasses.replace(imported, id=rich.id) == store.require_experiment("rich")
    assert other.trials(imported) == store.trials(rich)
    assert [(a.kind, a.result, a.created_at) for a in other.analyses(imported)] == [
        (a.kind, a.result, a.created_at) for a in store.analyses(rich)
    ]
    trial = other.trials(imported)[1]
    assert trial.objective == 1 / 3 and trial.config["ratio"] == 0.1 + 0.2


def test_gzip_output_is_reproducible(store: Store, rich: Experiment, tmp_path: Path) -> None:
    doc = export_experiment(store, "rich")
    write_export(doc, tmp_path / "a.json.gz")
    write_export(doc, tmp_path / "b.json.gz")
    assert (tmp_path / "a.json.gz").read_bytes() == (tmp_path / "b.json.gz").read_bytes()


def test_import_under_another_name(store: Store, rich: Experiment) -> None:
    doc = export_experiment(store, "rich")
    copy_ = import_experiment(store, doc, name="rich-copy")
    assert copy_.name == "rich-copy" and copy_.id != rich.id
    again = export_experiment(store, "rich-copy")
    assert again["experiment"]["name"] == "rich-copy"
    again["experiment"]["name"] = "rich"
    assert without_exported_at(again) == without_exported_at(doc)
    assert rows(store, "specs") == 1 and rows(store, "workloads") == 1  # shared by hash


def test_an_existing_name_is_refused_and_nothing_changes(store: Store, rich: Experiment) -> None:
    doc = export_experiment(store, "rich")
    before = counts(store)
    with pytest.raises(StoreError) as err:
        import_experiment(store, doc)
    assert str(err.value) == (
        f"experiment 'rich' already exists in {store.safe_url}; give --name NEW"
    )
    assert counts(store) == before
    with pytest.raises(StoreError, match="--name: experiment name: is empty"):
        import_experiment(store, doc, name=" ")


def test_a_leased_trial_comes_in_pending(store: Store, other: Store, rich: Experiment) -> None:
    lease = store.lease_next(rich, "agent-2", 3600)
    assert lease is not None
    leased = lease[0]
    assert leased.number == 8 and leased.lease_expires_at is not None
    doc = export_experiment(store, "rich")
    assert doc["trials"][-1]["status"] == "leased"
    assert doc["trials"][-1]["lease_expires_at"] == leased.lease_expires_at.isoformat()
    imported = import_experiment(other, doc)
    got = other.trials(imported)[-1]
    assert got == dataclasses.replace(leased, status="pending", lease_expires_at=None)
    assert got.agent == "agent-2" and got.attempts == 1
    # The only change: an agent of the new store can run it.
    again = export_experiment(other, "rich")
    doc["trials"][-1].update(status="pending", lease_expires_at=None)
    assert without_exported_at(again) == without_exported_at(doc)
    relet = other.lease_next(imported, "agent-3", 60)
    assert relet is not None and relet[0].number == 8 and relet[0].attempts == 2


# -- all or nothing ---------------------------------------------------------------------------


def test_a_duplicate_trial_number_imports_nothing(
    store: Store, other: Store, rich: Experiment
) -> None:
    doc = export_experiment(store, "rich")
    doc["trials"].append(copy.deepcopy(doc["trials"][2]))  # after five good trials
    with pytest.raises(StoreError, match="cannot import experiment 'rich': trial 3 appears twice"):
        import_experiment(other, doc)
    assert set(counts(other).values()) == {0}


def test_a_failure_after_the_trials_imports_nothing(
    store: Store, other: Store, rich: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = export_experiment(store, "rich")

    def broken(**_: Any) -> None:
        raise StoreError("the disk is full")

    monkeypatch.setattr(store_module, "AnalysisRow", broken)
    with pytest.raises(StoreError, match="the disk is full"):
        import_experiment(other, doc)
    assert set(counts(other).values()) == {0}


def test_a_bad_metric_imports_nothing(store: Store, other: Store, rich: Experiment) -> None:
    doc = export_experiment(store, "rich")
    doc["trials"][4]["metrics"]["tps"] = float("inf")
    with pytest.raises(StoreError, match=r"trials\[4\]\.metrics\.tps: inf is not a finite"):
        import_experiment(other, doc)
    assert set(counts(other).values()) == {0}


# -- bad files: one message each, naming the file and the field -------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set (or, with ..., delete) the field at a dotted path, list indices as numbers."""

    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        index: Any = int(last) if last.isdigit() else last
        if value is ...:
            del node[index]
        else:
            node[index] = value

    return edit


def _edit_a_workload_file(doc: dict[str, Any]) -> None:
    doc["experiment"]["workload"]["files"]["setup.sql"] = "DROP TABLE t;\n"


BAD_DOCS = [
    (_set("format", "optuna-study"), "format: 'optuna-study' is not 'autotune-experiment'"),
    (_set("format", ...), "format: missing: not an autotune experiment export"),
    (_set("version", 3), "version: 3: made by a newer autotune (this one reads version 2)"),
    (_set("version", "1"), "version: expected an integer, got a string"),
    (_set("version", 0), "version: 0 is not a known version"),
    (_set("experiment.seed", "42"), "experiment.seed: expected an integer, got a string"),
    (_set("experiment.spec", ...), "experiment.spec: missing"),
    (_set("experiment.direction", "up"), "experiment.direction: 'up' is not one of"),
    (_set("experiment.created_at", "yesterday"), "experiment.created_at: 'yesterday' is not"),
    (_set("trials.0.metrics", ...), "trials[0].metrics: missing"),
    (_set("trials.1.metrics.tps", "fast"), "trials[1].metrics.tps: expected a number"),
    (_set("trials.2.started_at", "2026-01-01T00:00:00"), "trials[2].started_at: '2026-01-01T00:"),
    (_set("trials.2.colour", "red"), "trials[2].colour: unknown field"),
    (_set("trials.3.status", "done"), "trials[3].status: 'done' is not one of pending"),
    (_set("trials.4.fidelity", 0), "trials[4].fidelity: 0 is not in (0, 1]"),
    (_set("trials.4.status_history.0", []), "trials[4].status_history[0]: is empty"),
    (_set("trials.0.is_baseline", 1), "trials[0].is_baseline: expected true or false"),
    (_set("trials", {}), "trials: expected a list, got an object"),
    (_set("analyses.1.result", None), "analyses[1].result: expected an object, got null"),
    (_set("experiment.spec.content", "x"), "experiment.spec.hash: '"),
    (_edit_a_workload_file, "experiment.workload.hash: '"),
]


@pytest.mark.parametrize(("edit", "expected"), BAD_DOCS)
def test_a_bad_document_is_one_message_naming_file_and_field(
    store: Store,
    other: Store,
    rich: Experiment,
    tmp_path: Path,
    edit: Callable[[dict[str, Any]], None],
    expected: str,
) -> None:
    doc = export_experiment(store, "rich")
    edit(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(StoreError) as err:
        read_export(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {expected}"), message
    assert "\n" not in message
    # A document handed over directly is checked the same way before anything is written.
    with pytest.raises(StoreError) as direct:
        import_experiment(other, doc)
    assert str(direct.value) == message.replace(str(path), "export document")
    assert set(counts(other).values()) == {0}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"format": "autotune-experiment", "version": 1,', "not valid JSON (Expecting"),
        (b"[1, 2]", "format: not an autotune experiment export (it holds a list"),
        (b'{"format": "autotune-experiment", "version": 1, "x": NaN}', "NaN is not allowed"),
        (b"\xff\xfe{}", "not UTF-8 text"),
        (gzip.compress(b"{}" * 1000, mtime=0)[:-6], "not a valid gzip file"),
        (b'{"some": "thing"}', "format: missing: not an autotune experiment export"),
    ],
    ids=["truncated", "not-an-object", "nan", "not-utf8", "truncated-gzip", "other-json"],
)
def test_a_corrupt_file_is_one_message(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    with pytest.raises(StoreError) as err:
        read_export(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and expected in message, message
    assert "\n" not in message


def test_a_missing_file_and_an_unwritable_path(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"nope\.json: no such file"):
        read_export(tmp_path / "nope.json")
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match=r"cannot write .*file/x\.json"):
        write_export({"format": "autotune-experiment"}, tmp_path / "file" / "x.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_hashes_are_those_the_loaders_record(make_workload: Callable[..., WorkloadDef]) -> None:
    assert spec_hash(TOY_SPEC) == parse_spec(TOY_SPEC, "toy.yaml", MACHINE).content_hash
    workload = dataclasses.replace(make_workload(), files=FILES)
    assert workload_hash(workload.source, FILES) == workload.content_hash


# -- the recorded format before version 1 -------------------------------------------------------


def legacy(doc: dict[str, Any]) -> dict[str, Any]:
    """What `autotune bench export-recorded` wrote before version 1 (its code, on a document)."""
    e = doc["experiment"]
    header = {
        "experiment": e["name"],
        "system": e["system"],
        "workload": e["workload"]["name"],
        "objective_metric": e["objective_metric"],
        "direction": e["direction"],
        "optimizer": e["optimizer"],
        "seed": e["seed"],
        "budget": e["settings"].get("budget", 0),
        "knobs": list(e["settings"].get("knobs", [])),
        "machine": e["settings"].get("machine"),
        "duration_s": e["settings"].get("duration_s"),
        "spec_path": Path(e["spec"]["path"]).name,
        "spec_hash": e["spec"]["hash"],
        "spec_content": e["spec"]["content"],
        "trials_from": f"autotune trials {e['name']} --format json",
    }
    trials = []
    for t in doc["trials"]:
        old = {k: v for k, v in t.items() if k not in ("is_baseline", "lease_expires_at")}
        trials.append({"baseline": t["is_baseline"], **old})
    return {"header": header, "trials": trials}


def test_the_older_recorded_format_is_converted(
    store: Store, other: Store, rich: Experiment, tmp_path: Path
) -> None:
    doc = export_experiment(store, "rich")
    path = tmp_path / "old.json"
    path.write_text(json.dumps(legacy(doc), indent=1))
    converted = read_export(path)
    assert converted["format"] == "autotune-experiment" and converted["version"] == 2
    assert converted["trials"] == doc["trials"]
    e = converted["experiment"]
    assert e["status"] == "done" and e["optimizer_state"] is None
    assert e["created_at"] == doc["trials"][0]["proposed_at"]
    assert e["spec"] == {**doc["experiment"]["spec"], "path": "toy.yaml"}
    assert e["settings"] == {
        k: doc["experiment"]["settings"][k] for k in ("knobs", "machine", "duration_s", "budget")
    }
    assert e["workload"]["name"] == "toy-bench" and "not its text" in e["workload"]["content"]
    assert converted["analyses"] == []
    imported = import_experiment(other, converted)
    assert other.trials(imported) == store.trials(rich)
    # A header without what it needs is named like any other field.
    broken = legacy(doc)
    del broken["header"]["spec_content"]
    path.write_text(json.dumps(broken))
    with pytest.raises(StoreError, match=r"old\.json: header\.spec_content: missing"):
        read_export(path)


def test_the_shipped_recorded_experiment_gives_the_same_surrogate_in_both_formats(
    tmp_path: Path,
) -> None:
    doc = load_recorded(PG_RECORDED)
    assert doc["version"] == 2 and len(doc["trials"]) == 80  # version 1, read as version 2
    assert {t["phase"] for t in doc["trials"]} == {"search"}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(legacy(doc), indent=1))
    old = load_recorded(path)
    assert old["trials"] == doc["trials"]
    space, old_space = recorded_space(doc["experiment"]), recorded_space(old["experiment"])
    assert old_space.names == space.names
    trials = training_trials(doc["trials"])
    configs = [t["config"] for t in trials] + list(space.sample(np.random.default_rng(1), 20))
    new_model = fit_surrogate(space, trials)
    old_model = fit_surrogate(old_space, training_trials(old["trials"]))
    assert np.array_equal(
        new_model.predict(space.encode_many(configs)),
        old_model.predict(old_space.encode_many(configs)),
    )
    with pytest.raises(ValueError, match=r"nope\.json: no such file"):
        load_recorded(tmp_path / "nope.json")
