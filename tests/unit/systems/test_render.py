"""Configs printed in each system's own syntax: what a user pastes is what the agent
applies (names, booleans, units), and the shell forms parse as shell."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from autotune.cli._format import formats_of, render
from autotune.spec import Machine, load_spec
from tests.unit._support import MACHINE, ROOT


@pytest.fixture(autouse=True)
def fixed_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Machine, "local", classmethod(lambda cls: MACHINE))


def test_linux_prints_sysctl_values_not_postgres_ones() -> None:
    spec = load_spec(ROOT / "knobs" / "linux.yaml")
    config = {
        "vm.dirty_ratio": 10,
        "vm.swappiness": 1,
        "transparent_hugepage.enabled": "madvise",
        "block.read_ahead_kb": 8192,
    }
    conf = render(spec, config, "conf").splitlines()
    assert "vm.dirty_ratio = 10" in conf and "vm.swappiness = 1" in conf
    assert "# /sys/kernel/mm/transparent_hugepage/enabled = madvise" in conf
    assert "# /sys/block/sd*/queue/read_ahead_kb = 8192" in conf
    assert not any("'" in line or "kB" in line for line in conf)  # no PostgreSQL quoting
    sh = render(spec, config, "sh")
    assert "sysctl -w vm.dirty_ratio=10" in sh.splitlines()
    assert "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled" in sh.splitlines()
    assert 'for f in /sys/block/vd*/queue/read_ahead_kb; do if [ -e "$f" ]' in sh
    assert subprocess.run(["bash", "-n"], input=sh, text=True).returncode == 0
    assert formats_of(spec) == ["conf", "sh", "json"]


def test_linux_booleans_and_times_are_the_kernels_integers() -> None:
    spec = load_spec(ROOT / "knobs" / "linux.yaml")
    bools = [k for k in spec.knobs.values() if k.type == "bool"]
    timed = [k for k in spec.knobs.values() if k.unit.dimension == "time"]
    assert len(bools) >= 2 and len(timed) >= 3  # kernel.sched_autogroup_enabled, *_centisecs
    config = {k.name: not k.default for k in bools} | {k.name: k.default for k in timed}
    lines = render(spec, config, "conf").splitlines()
    assert len(lines) == len(config)
    for line in lines:
        value = line.partition(" = ")[2]
        assert value.lstrip("-").isdigit(), line  # 1/0, centiseconds: never 'on' or '30s'


def test_redis_prints_its_own_names_booleans_and_flags() -> None:
    spec = load_spec(ROOT / "knobs" / "redis.yaml")
    bool_knob = next(k for k in spec.knobs.values() if k.type == "bool")
    config = {"io_threads": 2, bool_knob.name: True}
    conf = render(spec, config, "conf").splitlines()
    assert "io-threads 2" in conf
    assert f"{bool_knob.name.replace('_', '-')} yes" in conf
    flags = render(spec, config, "flags")
    argv = shlex.split(flags.replace("\\\n", " "))
    assert argv[:2] == ["--io-threads", "2"] and f"--{bool_knob.name.replace('_', '-')}" in argv
    assert formats_of(spec) == ["conf", "flags", "json"]
    with pytest.raises(ValueError, match="unknown format 'sql' for redis configs"):
        render(spec, config, "sql")


def test_postgres_conf_marks_restart_knobs_and_sql_names_them_last() -> None:
    spec = load_spec(ROOT / "knobs" / "postgres.yaml")
    config = {"shared_buffers": 65536, "work_mem": 8192, "wal_buffers": -1}
    conf = render(spec, config, "conf").splitlines()
    assert "shared_buffers = '512MB'  # needs a restart" in conf and "work_mem = '8MB'" in conf
    sql = render(spec, config, "sql").splitlines()
    assert sql[0] == """ALTER SYSTEM SET "work_mem" = '8MB';"""
    assert sql.index("SELECT pg_reload_conf();") == len(sql) - 2
    assert "for shared_buffers, wal_buffers: a reload does not apply them" in sql[-1]


def test_a_value_outside_the_spec_is_refused_in_every_format() -> None:
    for path, config, fmt in [
        ("linux.yaml", {"vm.swappiness": 1000}, "sh"),
        ("redis.yaml", {"io_threads": "1; rm -rf /"}, "flags"),
        ("redis.yaml", {"no_such_knob": 1}, "conf"),
    ]:
        spec = load_spec(ROOT / "knobs" / path)
        with pytest.raises(ValueError):
            render(spec, config, fmt)
