"""A spec-only system end to end: real Redis, real redis-benchmark, the real CLI.

Redis has no code in autotune: knobs/redis.yaml drives the generic
command-args applier and workloads/redis-benchmark.yaml the command workload.
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


@pytest.fixture(autouse=True)
def _needs_redis() -> None:
    if not all(shutil.which(p) for p in ("redis-server", "redis-cli", "redis-benchmark")):
        unavailable(
            "Redis tests need redis-server, redis-cli and redis-benchmark: "
            "apt-get install redis-server redis-tools (.ci/run installs them)"
        )


def redis_servers() -> list[str]:
    """Command lines of every live redis-server on this host."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "redis-server":
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A private directory (and TMPDIR, where the Redis work directories go); asserts
    that no redis-server and no work directory is left behind."""
    root = Path(tempfile.mkdtemp(prefix="at-redis-", dir="/tmp"))
    before = set(redis_servers())
    try:
        yield root
        left = [cmd for cmd in redis_servers() if cmd not in before]
        assert not left, f"redis-server left running: {left}"
        assert not processes_under(root), processes_under(root)
        assert not list(root.glob("**/autotune-gen-*")), "work directory left behind"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_cli(workdir: Path, *args: str, timeout: float = 280) -> subprocess.CompletedProcess[str]:
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


def test_tune_redis_with_redis_benchmark(workdir: Path) -> None:
    store = f"sqlite:///{workdir / 'redis.db'}"
    result = run_cli(
        workdir,
        "tune", "--system", "redis", "--workload", "redis-benchmark",
        "--trials", "3", "--duration", "2", "--experiment", "redis-smoke", "--store", store,
    )  # fmt: skip
    assert "summary: redis-smoke" in result.stdout, result.stdout
    trials = json.loads(
        run_cli(workdir, "trials", "redis-smoke", "--format", "json", "--store", store).stdout
    )
    assert [t["number"] for t in trials] == [1, 2, 3]
    baseline = trials[0]
    assert baseline["baseline"] is True and baseline["status"] == "ok", baseline
    for trial in trials:
        if trial["status"] != "ok":
            continue
        metrics = trial["metrics"]
        assert metrics["get_rps"] > 100 and metrics["set_rps"] > 100, metrics
        assert metrics["get_p99_latency_ms"] > 0
        assert trial["objective"] == metrics["get_rps"]
        assert trial["timings"]["measure_s"] >= 2.0
        assert "server.rss_bytes" in metrics  # the server process's own metrics
    assert sum(t["status"] == "ok" for t in trials) >= 2, trials
    # The baseline ran with the spec's defaults as flags: a restart on the first trial.
    assert baseline["timings"].get("restart_s", 0) > 0
