"""postgres+linux as one system: a real PostgreSQL sandbox and a scratch kernel root."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from autotune.agent import Agent
from autotune.cli._common import load_system_spec
from autotune.systems._composite import CompositeSystem
from autotune.systems._registry import Target, make_system
from autotune.systems.linux._system import LinuxSystem
from autotune.systems.postgres import PostgresSystem
from autotune.workloads import load_workload, make_workload
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
