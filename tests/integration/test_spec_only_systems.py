"""MariaDB with sysbench and RocksDB with db_bench, end to end from specs alone.

Neither has code in autotune: knobs/mariadb.yaml drives the generic config-file
applier (a private server made by ``init``, values changed by SET GLOBAL and read
back), knobs/rocksdb.yaml the workload-flags applier (db_bench takes the config
as its flags, its database in a scratch directory per run).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import unavailable
from tests.integration.pgutil import cli_env, processes_under

pytestmark = pytest.mark.slow


def live(program: str) -> list[int]:
    """Pids of every live process named ``program`` on this host."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != program:
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A private directory, also TMPDIR (where work and scratch directories go);
    asserts that no server, benchmark or directory of ours is left behind."""
    root = Path(tempfile.mkdtemp(prefix="at-spec-", dir="/tmp"))
    before = {p: set(live(p)) for p in ("mariadbd", "db_bench", "sysbench")}
    try:
        yield root
        for program, pids in before.items():
            left = set(live(program)) - pids
            assert not left, f"{program} left running: {left}"
        assert not processes_under(root), processes_under(root)
        assert not list(root.glob("**/autotune-gen-*")), "work directory left behind"
        assert not list(root.glob("**/autotune-cmd-*")), "scratch directory left behind"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_cli(workdir: Path, *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    env = cli_env(workdir)
    env["TMPDIR"] = str(workdir)
    result = subprocess.run(
        [sys.executable, "-m", "autotune", *args],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (
        f"autotune {' '.join(args)} exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def trials(workdir: Path, name: str, store: str) -> list[dict]:
    out = run_cli(workdir, "trials", name, "--format", "json", "--store", store).stdout
    return list(json.loads(out))


def test_tune_mariadb_with_sysbench(workdir: Path) -> None:
    if not all(shutil.which(p) for p in ("mariadbd", "mariadb-install-db", "sysbench")):
        unavailable(
            "MariaDB tests need mariadb-server, mariadb-client and sysbench (.ci/run installs them)"
        )
    store = f"sqlite:///{workdir / 'm.db'}"
    result = run_cli(
        workdir,
        "tune", "--system", "mariadb", "--workload", "sysbench-oltp",
        "--trials", "3", "--duration", "3", "--experiment", "mariadb-smoke", "--store", store,
    )  # fmt: skip
    assert "summary: mariadb-smoke" in result.stdout, result.stdout
    done = trials(workdir, "mariadb-smoke", store)
    assert [t["number"] for t in done] == [1, 2, 3]
    assert all(t["status"] == "ok" for t in done), done
    for trial in done:
        metrics = trial["metrics"]
        assert metrics["tps"] > 10 and metrics["latency_p95_ms"] > 0, metrics
        assert metrics["qps"] > metrics["tps"]  # ~20 queries per transaction
        assert trial["objective"] == metrics["tps"]
        # Every value was read back with SELECT @@GLOBAL and is what was set.
        assert trial["not_applied"] == {}, trial["not_applied"]
    assert done[0]["config"]["innodb_buffer_pool_size"] == 128 * 2**20  # the default


def test_tune_rocksdb_with_db_bench(workdir: Path) -> None:
    if not shutil.which("db_bench"):
        unavailable("RocksDB tests need db_bench: apt-get install rocksdb-tools (.ci/run does)")
    store = f"sqlite:///{workdir / 'r.db'}"
    result = run_cli(
        workdir,
        "tune", "--system", "rocksdb", "--workload", "db_bench-readrandom",
        "--trials", "3", "--duration", "2", "--experiment", "rocksdb-smoke", "--store", store,
    )  # fmt: skip
    assert "summary: rocksdb-smoke" in result.stdout, result.stdout
    done = trials(workdir, "rocksdb-smoke", store)
    assert [t["number"] for t in done] == [1, 2, 3]
    assert all(t["status"] == "ok" for t in done), done
    for trial in done:
        metrics = trial["metrics"]
        assert metrics["readrandom_ops"] > 100 and metrics["fillrandom_ops"] > 100, metrics
        assert trial["objective"] == metrics["readrandom_ops"]
        assert trial["timings"]["measure_s"] >= 4.0  # fill, then read, 2 s each
    flags = run_cli(workdir, "best", "rocksdb-smoke", "--format", "flags", "--store", store).stdout
    assert "--write_buffer_size=" in flags and "--sync" not in flags  # unsafe: untouched
