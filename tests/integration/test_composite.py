"""postgres+linux as one system: a real PostgreSQL sandbox and a scratch kernel root."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from autotune.agent import Agent
from autotune.cli._common import load_system_spec
from autotune.spec import KnobValueError, load_spec
from autotune.systems._composite import CompositeSystem
from autotune.systems._registry import Target, make_system
from autotune.systems.linux._system import LinuxSystem
from autotune.systems.postgres import PostgresSystem
from autotune.workloads import load_workload, make_workload
from tests.conftest import ROOT
from tests.integration.pgutil import run_cli
from tests.unit.systems.test_linux import fake_root, snapshot

pytestmark = pytest.mark.pg

WORKLOAD = Path(__file__).resolve().parents[1] / "data" / "workloads" / "tiny-tpcb.yaml"


def values(files: dict[str, str]) -> dict[str, str]:
    def value(text: str) -> str:
        match = re.search(r"\[([^\]]+)\]", text)
        return match.group(1) if match else text.strip()

    return {path: value(text) for path, text in files.items()}


def test_postgres_plus_linux_runs_a_trial_and_restores_both_parts(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)  # the managed sandbox lives under ./.autotune/sandboxes
    root = fake_root(tmp_path / "root")
    before = snapshot(root)
    spec = load_system_spec("postgres+linux")
    assert spec.system == "postgres+linux" and spec.drives("postgres")
    system = make_system(spec, Target(root=root, journal_dir=tmp_path / "journal"))
    assert isinstance(system, CompositeSystem)
    pg, linux = system.find(PostgresSystem), system.find(LinuxSystem)
    assert pg is not None and linux is not None
    agent = Agent(system, make_workload(load_workload(str(WORKLOAD))), 1.0)
    agent.start()
    try:
        config = {
            **spec.defaults(),
            "postgres.work_mem": 8192,
            "linux.vm.dirty_ratio": 30,
            "linux.vm.swappiness": 10,
        }
        outcome = agent.run_trial(config)
        assert outcome.status == "ok", outcome.error
        assert outcome.metrics["tps"] > 0 and outcome.metrics["pg.database.xact_commit"] > 0
        assert outcome.not_applied == {}
        assert (root / "proc/sys/vm/dirty_ratio").read_text().strip() == "30"
        assert (root / "proc/sys/vm/swappiness").read_text().strip() == "10"
        with pg.connect() as conn, conn.cursor() as cur:
            cur.execute("SHOW work_mem")
            row = cur.fetchone()
            assert row is not None and row[0] == "8MB"
    finally:
        agent.stop()
    # Every kernel value as it was. Plain files stand in for the kernel's, so a bracketed
    # choice file ("always [madvise] never") comes back as the bare choice ("madvise").
    assert values(snapshot(root)) == values(before)
    assert not list((tmp_path / "journal").glob("*.json"))  # journal removed once restored


def _host_values(spec_path: Path) -> dict[str, object]:
    """Each knob of knobs/linux.yaml as this host's kernel files hold it, read here
    directly (the first device for per-device knobs), not through the system's reads."""
    linux_spec = load_spec(spec_path)
    system = LinuxSystem(linux_spec, journal_dir=Path("/nonexistent"))
    system._resolve_files()  # where each knob's files are; nothing is read or locked
    files = system.files()
    out: dict[str, object] = {}
    for name, paths in files.items():
        if not paths:
            continue
        text = Path(paths[0]).read_text()
        match = re.search(r"\[([^\]\s]+)\]", text)
        raw = match.group(1) if match else text.strip()
        try:
            out[name] = linux_spec.knobs[name].validate(raw)
        except KnobValueError:
            continue  # outside the spec: the baseline keeps the spec's default for it
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="reading every kernel knob needs root")
def test_a_host_sessions_baseline_is_what_the_host_runs(workdir: Path) -> None:
    """Trial 1 of `tune --system postgres+linux` measures the host's kernel values as they
    were before the session, not the spec's defaults (THP `always`, read_ahead_kb 128)."""
    before = _host_values(ROOT / "knobs" / "linux.yaml")
    assert before, "no kernel knob readable on this host"
    result = run_cli(
        workdir,
        "tune", "--system", "postgres+linux", "--workload", str(WORKLOAD),
        "--trials", "1", "--duration", "1", "--experiment", "host-baseline",
    )  # fmt: skip
    trials = json.loads(run_cli(workdir, "trials", "host-baseline", "--format", "json").stdout)
    assert len(trials) == 1 and trials[0]["baseline"] and trials[0]["status"] == "ok"
    config = trials[0]["config"]
    spec = load_system_spec("postgres+linux")
    defaults = spec.defaults()
    linux = {k.removeprefix("linux."): v for k, v in config.items() if k.startswith("linux.")}
    assert linux == {k: v for k, v in before.items() if k in linux}
    assert linux  # the session's kernel knobs (the safe ones), each at the host's value
    for name, value in config.items():
        if name.startswith("postgres."):
            assert value == defaults[name]  # a fresh sandbox: the spec's defaults
    differ = {k for k, v in linux.items() if defaults[f"linux.{k}"] != v}
    if differ:
        assert "baseline: the configuration the target runs today" in result.stdout
        assert "(trial 1: as found, " in result.stdout  # the summary's baseline line
    assert _host_values(ROOT / "knobs" / "linux.yaml") == before  # nothing changed
