"""The results store on SQLite: experiments, trials, metrics, schema versions."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from autotune.cli import app
from autotune.store import Experiment, Proposal, Store, StoreError, Trial, default_url
from autotune.store import _engine as store_module
from autotune.store._engine import _alembic_config

MakeExperiment = Callable[..., Experiment]
MakeTrial = Callable[..., Trial]

runner = CliRunner()


def revision(url: str) -> str | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head() -> str:
    return ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head() or ""


def count_rows(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608
    finally:
        engine.dispose()


# -- experiments --------------------------------------------------------------------------------


def test_a_new_store_is_created_at_the_current_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'deep' / 'dir' / 'a.db'}"
    st = Store(url)
    try:
        assert (tmp_path / "deep" / "dir" / "a.db").is_file()
        assert st.experiments() == []
    finally:
        st.close()
    assert revision(url) == head()
    Store(url).close()  # reopening a current store is fine


def test_create_and_read_back_an_experiment(store: Store, make_experiment: MakeExperiment) -> None:
    created = make_experiment("e1", settings={"knobs": ["a", "b"], "duration_s": 5.0})
    again = store.experiment("e1")
    assert again == created
    assert created.name == "e1"
    assert created.system == "toy"
    assert created.spec_hash == "spec-hash"
    assert created.spec_path == "toy.yaml"
    assert created.workload_name == "toy-bench"
    assert created.objective_metric == "tps"
    assert created.direction == "maximize"
    assert created.optimizer == "gp"
    assert created.seed == 0
    assert created.settings == {"knobs": ["a", "b"], "duration_s": 5.0}
    assert created.created_at.tzinfo is not None
    assert store.experiment("nope") is None


def test_experiments_are_listed_in_creation_order(
    store: Store, make_experiment: MakeExperiment
) -> None:
    for name in ("zeta", "alpha", "mid"):
        make_experiment(name)
    assert [e.name for e in store.experiments()] == ["zeta", "alpha", "mid"]


def test_experiments_share_identical_specs_and_workloads(
    store: Store, store_url: str, make_experiment: MakeExperiment
) -> None:
    make_experiment("a")
    make_experiment("b")
    make_experiment("c", spec_hash="other", spec_content="system: other\n")
    assert count_rows(store_url, "specs") == 2
    assert count_rows(store_url, "workloads") == 1
    assert count_rows(store_url, "systems") == 1
    assert store.experiment("c").spec_content == "system: other\n"  # type: ignore[union-attr]


def test_duplicate_experiment_name(store: Store, make_experiment: MakeExperiment) -> None:
    make_experiment("dup", seed=1)
    with pytest.raises(StoreError, match="experiment 'dup' already exists"):
        make_experiment("dup", seed=2)
    assert store.require_experiment("dup").seed == 1


@pytest.mark.parametrize("name", ["a/b", "../x", "", "-lead", "sp ace", "x" * 129, "pg+linux"])
def test_a_name_the_api_could_not_reach_is_refused(
    store: Store, make_experiment: MakeExperiment, name: str
) -> None:
    with pytest.raises(StoreError, match=r"experiment name .*: use letters, digits"):
        make_experiment(name)
    with pytest.raises(StoreError, match=r"agent name .*: use letters, digits"):
        store.add_agent(name)
    assert store.experiments() == []


def test_unknown_experiment_lists_the_known_ones(
    store: Store, store_url: str, make_experiment: MakeExperiment
) -> None:
    with pytest.raises(StoreError, match="the store has none yet"):
        store.require_experiment("ghost")
    make_experiment("first")
    make_experiment("second")
    with pytest.raises(StoreError) as err:
        store.require_experiment("ghost")
    message = str(err.value)
    assert "no experiment 'ghost'" in message
    assert "known: first, second" in message
    assert store_url in message


# -- trials -------------------------------------------------------------------------------------


def test_trials_round_trip(
    store: Store, make_experiment: MakeExperiment, make_trial: MakeTrial
) -> None:
    exp = make_experiment()
    full = make_trial(
        2,
        1234.5,
        config={"shared_buffers": 16384, "jit": False, "mode": "b", "ratio": 0.25},
        metrics={"tps": 1234.5, "latency_avg_ms": 1.5, "latency_p95_ms": 3.25},
        timings={"apply_s": 0.1, "measure_s": 2.0, "total_s": 2.5},
        status_history=[("apply", "2026-01-01T00:00:00"), ("ok", "2026-01-01T00:00:03")],
        not_applied={"huge_pages": "needs a restart"},
    )
    failed = make_trial(
        3, None, "failed", error="server did not start", log_excerpt="FATAL: out of memory"
    )
    baseline = make_trial(1, 1000.0, baseline=True)
    for trial in (full, failed, baseline):  # out of order on purpose
        store.add_trial(exp, trial)
    got = store.trials(exp)
    assert [t.number for t in got] == [1, 2, 3]
    assert got == [baseline, full, failed]
    assert got[1].status_history[0] == ("apply", "2026-01-01T00:00:00")
    assert got[1].started_at.tzinfo is not None
    assert got[0].is_baseline and not got[1].is_baseline
    assert not got[2].ok and got[2].objective is None and got[2].metrics == {}


def test_trials_belong_to_their_experiment(
    store: Store, make_experiment: MakeExperiment, make_trial: MakeTrial
) -> None:
    a, b = make_experiment("a"), make_experiment("b")
    store.add_trial(a, make_trial(1, 10.0))
    store.add_trial(b, make_trial(1, 20.0))  # the same number in another experiment is fine
    store.add_trial(b, make_trial(2, 30.0))
    assert [t.objective for t in store.trials(a)] == [10.0]
    assert [t.objective for t in store.trials(b)] == [20.0, 30.0]


def test_duplicate_trial_number_is_refused_and_the_first_is_kept(
    store: Store, store_url: str, make_experiment: MakeExperiment, make_trial: MakeTrial
) -> None:
    exp = make_experiment()
    first = make_trial(1, 100.0, metrics={"tps": 100.0, "latency_avg_ms": 2.0})
    store.add_trial(exp, first)
    second = make_trial(
        1, 999.0, config={"mem": 1}, metrics={"tps": 999.0, "latency_p99_ms": 9.0, "qps": 1.0}
    )
    with pytest.raises(StoreError, match="trial 1 of 'exp' is already recorded"):
        store.add_trial(exp, second)
    assert store.trials(exp) == [first]
    # nothing of the second trial leaked in: no metric rows, no trial row
    assert count_rows(store_url, "trials") == 1
    assert count_rows(store_url, "metrics") == 2


def test_a_trial_is_recorded_whole_or_not_at_all(
    store: Store, store_url: str, make_experiment: MakeExperiment, make_trial: MakeTrial
) -> None:
    exp = make_experiment()
    broken = make_trial(1, 5.0, metrics={"tps": 5.0, "latency_avg_ms": "not a number"})
    with pytest.raises((StoreError, ValueError)):
        store.add_trial(exp, broken)
    assert store.trials(exp) == []
    assert count_rows(store_url, "trials") == 0
    assert count_rows(store_url, "metrics") == 0
    store.add_trial(exp, make_trial(1, 5.0))  # the number is still free
    assert len(store.trials(exp)) == 1


def test_a_nan_metric_is_not_reported_as_a_duplicate_trial(
    store: Store, make_experiment: MakeExperiment, make_trial: MakeTrial
) -> None:
    """SQLite stores NaN as NULL; the error must not blame a trial number that is free."""
    exp = make_experiment()
    store.add_trial(exp, make_trial(1, 5.0))
    try:
        store.add_trial(exp, make_trial(2, 6.0, metrics={"tps": 6.0, "p95": float("nan")}))
    except StoreError as exc:
        assert "already recorded" not in str(exc), str(exc)
    else:
        assert [t.number for t in store.trials(exp)] == [1, 2]


def test_trial_json(make_trial: MakeTrial) -> None:
    data = make_trial(4, 2.0, baseline=True).to_json()
    assert data["number"] == 4
    assert data["baseline"] is True
    assert data["objective"] == 2.0
    assert data["metrics"] == {"tps": 2.0}
    assert data["started_at"].startswith("2026-01-02T03:08:05")
    assert (data["fidelity"], data["repeat"]) == (1.0, False)


def test_fidelity_and_repeat_round_trip(
    store: Store, make_experiment: MakeExperiment, make_trial: MakeTrial
) -> None:
    exp = make_experiment()
    short = make_trial(1, 10.0, fidelity=1 / 3)
    again = make_trial(2, 12.0, repeat=True)
    plain = make_trial(3, 11.0)
    for trial in (short, again, plain):
        store.add_trial(exp, trial)
    assert store.trials(exp) == [short, again, plain]
    assert [(t.fidelity, t.repeat) for t in store.history(exp)] == [
        (pytest.approx(1 / 3), False),
        (1.0, True),
        (1.0, False),
    ]
    assert [t.full for t in store.trials(exp)] == [False, True, True]


def test_proposals_keep_fidelity_and_repeat(store: Store, make_experiment: MakeExperiment) -> None:
    exp = make_experiment()
    assert store.add_proposals(
        exp,
        [
            Proposal(1, {"mem": 1}, is_baseline=True),
            Proposal(2, {"mem": 2}, fidelity=0.25),
            Proposal(3, {"mem": 1}, is_baseline=True, repeat=True),
        ],
    )
    got = store.trials(exp)
    assert [(t.status, t.fidelity, t.repeat, t.is_baseline) for t in got] == [
        ("pending", 1.0, False, True),
        ("pending", 0.25, False, False),
        ("pending", 1.0, True, True),
    ]
    trial, _ = store.lease_next(exp, "a", 60) or (None, None)
    assert trial is not None and trial.number == 1


@pytest.mark.parametrize("fidelity", [0.0, -0.5, 1.5, float("nan")])
def test_a_fidelity_outside_0_1_is_refused(
    store: Store, make_experiment: MakeExperiment, make_trial: MakeTrial, fidelity: float
) -> None:
    exp = make_experiment()
    with pytest.raises(StoreError, match="fidelity"):
        store.add_proposals(exp, [Proposal(1, {}, fidelity=fidelity)])
    with pytest.raises(StoreError, match="fidelity"):
        store.add_trial(exp, make_trial(1, 1.0, fidelity=fidelity))
    assert store.trials(exp) == []


def test_optimizer_state_and_settings_round_trip(
    store: Store, make_experiment: MakeExperiment
) -> None:
    exp = make_experiment(settings={"knobs": ["mem"], "budget": 5})
    assert exp.optimizer_state is None
    state = {"rungs": [0.111, 0.333, 1.0], "theta": {"length": [0.5, 2.0]}, "arm": "gp"}
    store.save_optimizer_state(exp, state)
    assert store.require_experiment("exp").optimizer_state == state
    store.save_optimizer_state(exp, None)
    assert store.require_experiment("exp").optimizer_state is None
    updated = store.update_experiment(exp, budget=9, settings={"repeats": 2, "knobs": ["mem"]})
    assert updated.settings == {"knobs": ["mem"], "budget": 9, "repeats": 2}
    assert (updated.budget, updated.repeats, updated.deadline) == (9, 2, None)


# -- URLs ----------------------------------------------------------------------------------------


def test_analyses_are_kept_per_experiment_and_kind(
    store: Store, make_experiment: MakeExperiment
) -> None:
    a, b = make_experiment("a"), make_experiment("b")
    first = store.add_analysis(a, "analyze", {"ranking": ["work_mem", "shared_buffers"]})
    store.add_analysis(a, "verify", {"ratio": 1.1})
    store.add_analysis(a, "analyze", {"ranking": ["shared_buffers"]})
    assert [x.kind for x in store.analyses(a)] == ["analyze", "verify", "analyze"]
    latest = store.analyses(a, "analyze")
    assert [x.result["ranking"] for x in latest] == [
        ["work_mem", "shared_buffers"],
        ["shared_buffers"],
    ]
    assert latest[0].id == first.id and latest[0].created_at.tzinfo is not None
    assert store.analyses(b) == []


def test_default_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AUTOTUNE_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_url() == f"sqlite:///{tmp_path / '.autotune' / 'autotune.db'}"
    monkeypatch.setenv("AUTOTUNE_STORE", "sqlite:////elsewhere/x.db")
    assert default_url() == "sqlite:////elsewhere/x.db"


def test_store_without_url_uses_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("AUTOTUNE_STORE", url)
    st = Store()
    st.close()
    assert st.url == url
    assert (tmp_path / "env.db").is_file()


# A Unix socket directory that does not exist: connecting fails at once, without network.
NO_SERVER = "tuner:s3cret-pw@/autotune?host=/nonexistent-autotune-socket-dir"


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg2"])
def test_store_errors_never_show_the_password(scheme: str) -> None:
    with pytest.raises(StoreError) as err:
        Store(f"{scheme}://{NO_SERVER}")
    assert "cannot open store" in str(err.value)
    assert "s3cret-pw" not in str(err.value)
    assert "***" in str(err.value)


def test_a_plain_postgresql_url_works_with_the_declared_driver() -> None:
    """psycopg2 is the declared dependency; `postgresql://` must not need another driver."""
    with pytest.raises(StoreError) as err:
        Store(f"postgresql://{NO_SERVER}")
    assert "No module named" not in str(err.value)
    assert "nonexistent-autotune-socket-dir" in str(err.value)  # it tried to connect


def test_bad_url() -> None:
    with pytest.raises(StoreError, match="cannot open store"):
        Store("nosuchdialect://x/y")


# -- schema versions -----------------------------------------------------------------------------

NEXT_REVISION = '''\
"""A later schema, as a future autotune would ship it.

Revision ID: v9.0.0
Revises: {down}
"""

import sqlalchemy as sa
from alembic import op

revision = "v9.0.0"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("notes")
'''


@pytest.fixture
def newer_autotune(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Pretend this autotune ships one more migration than the store was made with."""
    migrations = tmp_path / "migrations"
    shutil.copytree(
        store_module.MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__")
    )
    down = head()
    (migrations / "versions" / "v9_0_0_test.py").write_text(NEXT_REVISION.format(down=down))
    monkeypatch.setattr(store_module, "MIGRATIONS", migrations)
    assert head() == "v9.0.0"
    return down


def test_an_older_schema_is_refused_with_the_upgrade_command(
    store_url: str, newer_autotune: str
) -> None:
    # a store at the newest schema, downgraded with alembic to the previous revision
    st = Store(store_url)
    st.close()
    assert revision(store_url) == "v9.0.0"
    command.downgrade(_alembic_config(store_url), newer_autotune)
    assert revision(store_url) == newer_autotune

    with pytest.raises(StoreError) as err:
        Store(store_url)
    message = str(err.value)
    assert "older schema" in message
    assert f"autotune store upgrade --store {store_url}" in message
    assert revision(store_url) == newer_autotune  # not touched silently

    result = runner.invoke(app, ["store", "upgrade", "--store", store_url])
    assert result.exit_code == 0, result.output
    assert f"upgraded from {newer_autotune} to v9.0.0" in result.stdout
    assert revision(store_url) == "v9.0.0"
    Store(store_url).close()


def test_upgrade_keeps_the_data(
    store_url: str, make_trial: MakeTrial, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = Store(store_url)
    exp = st.create_experiment(
        name="kept",
        system="toy",
        spec_content="s",
        spec_hash="h",
        spec_path="p",
        workload_name="w",
        workload_content="w",
        workload_hash="wh",
        workload_path="wp",
        objective_metric="tps",
        direction="maximize",
        optimizer="gp",
        seed=0,
        settings={},
    )
    st.add_trial(exp, make_trial(1, 42.0))
    st.close()
    old = head()
    migrations = tmp_path / "migrations"
    shutil.copytree(store_module.MIGRATIONS, migrations)
    (migrations / "versions" / "v9_0_0_test.py").write_text(NEXT_REVISION.format(down=old))
    monkeypatch.setattr(store_module, "MIGRATIONS", migrations)
    with pytest.raises(StoreError, match="autotune store upgrade"):
        Store(store_url)
    result = runner.invoke(app, ["store", "upgrade", "--store", store_url])
    assert result.exit_code == 0, result.output
    st = Store(store_url)
    try:
        assert [t.objective for t in st.trials(st.require_experiment("kept"))] == [42.0]
    finally:
        st.close()


def test_a_database_with_foreign_tables_is_not_taken_for_a_store(store_url: str) -> None:
    """Tables without alembic's version table were not made by autotune: refuse, touch nothing."""
    Store(store_url).close()
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE alembic_version"))
    engine.dispose()
    with pytest.raises(StoreError) as err:
        Store(store_url)
    assert "not made by autotune" in str(err.value)
    assert "store upgrade" not in str(err.value)
    engine = sa.create_engine(store_url)
    assert "alembic_version" not in sa.inspect(engine).get_table_names()
    engine.dispose()


def test_a_store_from_a_newer_autotune_is_refused(store_url: str) -> None:
    Store(store_url).close()
    command.stamp(_alembic_config(store_url), "base", purge=True)
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES ('v99.0.0')"))
    engine.dispose()
    with pytest.raises(StoreError) as err:
        Store(store_url)
    assert "newer autotune" in str(err.value)
    assert "v99.0.0" in str(err.value)
    assert revision(store_url) == "v99.0.0"


def test_a_store_downgraded_to_base_is_empty_and_starts_afresh(store_url: str) -> None:
    """Downgrading to base drops every table: what is left is an empty store, reinitialised."""
    Store(store_url).close()
    command.downgrade(_alembic_config(store_url), "base")
    assert revision(store_url) is None
    st = Store(store_url)
    try:
        assert st.experiments() == []
    finally:
        st.close()
    assert revision(store_url) == head()


def test_store_upgrade_on_a_current_store(store_url: str) -> None:
    Store(store_url).close()
    result = runner.invoke(app, ["store", "upgrade", "--store", store_url])
    assert result.exit_code == 0, result.output
    assert f"store already at schema {head()}" in result.stdout


def test_store_upgrade_creates_a_new_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = runner.invoke(app, ["store", "upgrade", "--store", url])
    assert result.exit_code == 0, result.output
    assert f"store upgraded from empty to {head()}" in result.stdout
    assert revision(url) == head()
