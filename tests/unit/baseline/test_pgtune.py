"""pgtune's formulas, their mapping onto a knob spec, and `autotune baseline pgtune`.

Expected values are worked out by hand from le0pard/pgtune's
src/features/configuration/configurationSlice.js (memory in kB, Math.floor).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from autotune.baseline import PgtuneInput, pgtune_config, pgtune_settings, pgtune_warnings
from autotune.cli.baseline import app
from autotune.spec import Machine, Spec, Unit, parse_quantity, parse_spec
from tests.unit._support import MACHINE, ROOT

GiB = 1024**3
POSTGRES = ROOT / "knobs" / "postgres.yaml"
runner = CliRunner()


def postgres_on(memory_bytes: int, cpus: int) -> Spec:
    """knobs/postgres.yaml resolved on the machine pgtune tunes for."""
    return parse_spec(POSTGRES.read_text(), str(POSTGRES), Machine(memory_bytes, cpus))


def test_8gb_4cpus_oltp_ssd() -> None:
    # RAM = 8GB = 8388608 kB; oltp: 300 connections; PostgreSQL 15
    assert list(pgtune_settings(PgtuneInput(8 * GiB, 4, "oltp", "ssd")).items()) == [
        ("max_connections", "300"),
        ("shared_buffers", "2GB"),  # 8388608 / 4 = 2097152 kB
        ("effective_cache_size", "6GB"),  # 8388608 * 3 / 4 = 6291456 kB
        ("maintenance_work_mem", "512MB"),  # 8388608 / 16 = 524288 kB (< 8GB cap)
        ("checkpoint_completion_target", "0.9"),
        ("wal_buffers", "16MB"),  # 3 * 2097152 / 100 = 62914 kB, capped at 16384 kB
        ("default_statistics_target", "100"),
        ("random_page_cost", "1.1"),
        ("effective_io_concurrency", "200"),
        # (8388608 - 2097152) / ((300 + 4 workers) * 3) = 6291456 / 912 = 6898.53 -> 6898
        ("work_mem", "6898kB"),
        ("huge_pages", "try"),  # shared_buffers 2097152 kB >= 2GB
        ("jit", "off"),  # oltp on PostgreSQL >= 12
        ("wal_compression", "lz4"),  # PostgreSQL >= 15
        ("min_wal_size", "2GB"),  # 2048MB
        ("max_wal_size", "8GB"),  # 8192MB
        ("max_worker_processes", "4"),  # cpus
        ("max_parallel_workers_per_gather", "2"),  # ceil(4 / 2)
        ("max_parallel_workers", "4"),  # cpus
        ("max_parallel_maintenance_workers", "2"),  # min(ceil(4 / 2), 4)
    ]


def test_24gb_2cpus_oltp_ssd_this_host() -> None:
    # The acceptance machine: 25165824 kB, 2 CPUs (< 4: no parallel settings, 8 workers)
    assert list(pgtune_settings(PgtuneInput(24 * GiB, 2, "oltp", "ssd")).items()) == [
        ("max_connections", "300"),
        ("shared_buffers", "6GB"),
        ("effective_cache_size", "18GB"),
        ("maintenance_work_mem", "1536MB"),  # 25165824 / 16 = 1572864 kB
        ("checkpoint_completion_target", "0.9"),
        ("wal_buffers", "16MB"),
        ("default_statistics_target", "100"),
        ("random_page_cost", "1.1"),
        ("effective_io_concurrency", "200"),
        # (25165824 - 6291456) / ((300 + 8) * 3) = 18874368 / 924 = 20426.8
        ("work_mem", "20426kB"),
        ("huge_pages", "try"),
        ("jit", "off"),
        ("wal_compression", "lz4"),
        ("min_wal_size", "2GB"),
        ("max_wal_size", "8GB"),
    ]


def test_2gb_1cpu_web_hdd() -> None:
    # RAM = 2097152 kB; web: 200 connections; 1 CPU < 4: no parallel settings
    assert list(pgtune_settings(PgtuneInput(2 * GiB, 1, "web", "hdd")).items()) == [
        ("max_connections", "200"),
        ("shared_buffers", "512MB"),  # 2097152 / 4 = 524288 kB
        ("effective_cache_size", "1536MB"),  # 2097152 * 3 / 4 = 1572864 kB, not whole GB
        ("maintenance_work_mem", "128MB"),  # 2097152 / 16 = 131072 kB
        ("checkpoint_completion_target", "0.9"),
        # 3 * 524288 / 100 = 15728 kB: between 14MB and 16MB, so rounded up to 16MB
        ("wal_buffers", "16MB"),
        ("default_statistics_target", "100"),
        ("random_page_cost", "4"),
        ("effective_io_concurrency", "2"),
        # (2097152 - 524288) / ((200 + 8 default workers) * 3) = 1572864 / 624 = 2520.6,
        # under the 4MB floor
        ("work_mem", "4MB"),
        ("huge_pages", "off"),
        ("jit", "off"),
        ("wal_compression", "lz4"),
        ("min_wal_size", "1GB"),
        ("max_wal_size", "4GB"),
    ]


def test_64gb_16cpus_dw_san() -> None:
    # RAM = 67108864 kB; dw: 40 connections
    assert list(pgtune_settings(PgtuneInput(64 * GiB, 16, "dw", "san")).items()) == [
        ("max_connections", "40"),
        ("shared_buffers", "16GB"),  # 67108864 / 4 = 16777216 kB
        ("effective_cache_size", "48GB"),  # 67108864 * 3 / 4 = 50331648 kB
        ("maintenance_work_mem", "8GB"),  # 67108864 / 8 = 8GB, the cap
        ("checkpoint_completion_target", "0.9"),
        ("wal_buffers", "16MB"),  # 3% of 16GB, capped at 16MB
        ("default_statistics_target", "500"),
        ("random_page_cost", "4"),  # dw larger than RAM (1x-3x, the default)
        ("effective_io_concurrency", "300"),
        # (67108864 - 16777216) / ((40 + 16) * 3) = 50331648 / 168 = 299593.14; / 2 = 149796.57
        ("work_mem", "149796kB"),
        ("huge_pages", "try"),
        # no jit for dw
        ("wal_compression", "lz4"),
        ("autovacuum_max_workers", "4"),  # 16 <= cpus < 32
        ("autovacuum_work_mem", "2GB"),  # maintenance_work_mem >= 2GB
        ("min_wal_size", "4GB"),
        ("max_wal_size", "16GB"),
        ("max_worker_processes", "16"),
        ("max_parallel_workers_per_gather", "8"),  # ceil(16 / 2), no cap of 4 for dw
        ("max_parallel_workers", "16"),
        ("max_parallel_maintenance_workers", "4"),  # min(ceil(16 / 2), 4)
    ]


def test_4gb_2cpus_desktop_adds_minimal_wal() -> None:
    got = pgtune_settings(PgtuneInput(4 * GiB, 2, "desktop", "ssd"))
    assert got["max_connections"] == "20"
    assert got["shared_buffers"] == "256MB"  # 4194304 / 16 = 262144 kB
    assert got["effective_cache_size"] == "1GB"  # 4194304 / 4
    assert got["wal_buffers"] == "7864kB"  # 3 * 262144 / 100 = 7864.32
    # (4194304 - 262144) / ((20 + 8) * 3) = 46811.43; / 6 = 7801.9, over the 4MB floor
    assert got["work_mem"] == "7801kB"
    assert "jit" not in got  # desktop keeps PostgreSQL's default
    assert got["min_wal_size"] == "100MB"
    assert list(got)[-2:] == ["wal_level", "max_wal_senders"]
    assert (got["wal_level"], got["max_wal_senders"]) == ("minimal", "0")


def test_wal_buffers_just_over_14mb_round_up_to_16mb() -> None:
    # 1920MB = 1966080 kB: shared_buffers 491520 kB; 3 * 491520 / 100 = 14745 kB > 14336 kB
    got = pgtune_settings(PgtuneInput(1920 * 1024**2, 2, "web"))
    assert got["wal_buffers"] == "16MB"
    # 1792MB = 1835008 kB: shared_buffers 458752 kB; 3 * 458752 / 100 = 13762 kB, kept
    assert pgtune_settings(PgtuneInput(1792 * 1024**2, 2, "web"))["wal_buffers"] == "13762kB"


def test_mixed_with_connections_and_8_cpus() -> None:
    got = pgtune_settings(PgtuneInput(16 * GiB, 8, connections=50))
    assert got["max_connections"] == "50"
    # (16777216 - 4194304) / ((50 + 8) * 3) = 12582912 / 174 = 72315.59; / 2 = 36157.79
    assert got["work_mem"] == "36157kB"
    assert got["max_parallel_workers_per_gather"] == "4"  # ceil(8 / 2) = 4
    assert got["max_parallel_maintenance_workers"] == "4"


def test_non_dw_caps_workers_per_gather_at_4_and_pg10_has_no_maintenance_workers() -> None:
    got = pgtune_settings(PgtuneInput(32 * GiB, 12, "oltp", pg_version=10))
    assert got["max_parallel_workers_per_gather"] == "4"  # ceil(12 / 2) = 6, capped at 4
    assert "max_parallel_maintenance_workers" not in got
    assert got["wal_compression"] == "on"  # pglz before PostgreSQL 15


# -- pgtune's own test cases ---------------------------------------------------------
# Ported from src/features/configuration/__tests__/configurationSlice.test.js at
# 7caef27c; each JavaScript case is one assertion here. The Windows and macOS cases
# are left out (autotune tunes Linux hosts), and so is the low-memory warning: like
# pgtune's form, PgtuneInput refuses less than 512MB.


def settings(**kwargs: Any) -> dict[str, str]:
    args: dict[str, Any] = {"memory_bytes": 8 * GiB, "cpus": 2, "db_type": "web", **kwargs}
    return pgtune_settings(PgtuneInput(**args))


@pytest.mark.parametrize(
    ("db_type", "connections", "statistics"),
    [("web", 200, 100), ("oltp", 300, 100), ("dw", 40, 500), ("desktop", 20, 100),
     ("mixed", 100, 100)],
)  # fmt: skip
def test_upstream_max_connections_and_statistics_target(
    db_type: str, connections: int, statistics: int
) -> None:
    got = settings(db_type=db_type)
    assert got["max_connections"] == str(connections)
    assert got["default_statistics_target"] == str(statistics)


@pytest.mark.parametrize(
    ("kwargs", "cost"),
    [
        ({"storage": "hdd"}, "4"),
        ({"storage": "ssd"}, "1.1"),
        ({"storage": "san"}, "1.1"),
        ({"storage": "nvme"}, "1.1"),
        ({"storage": "hdd", "db_size": "less_ram"}, "1.1"),  # fits in RAM: seeks are free
        ({"storage": "ssd", "db_type": "dw", "db_size": "mid_ram"}, "4"),
        ({"storage": "ssd", "db_type": "dw", "db_size": "less_ram"}, "1.1"),
    ],
)
def test_upstream_random_page_cost(kwargs: dict[str, Any], cost: str) -> None:
    assert settings(**kwargs)["random_page_cost"] == cost


@pytest.mark.parametrize(
    ("storage", "concurrency"), [("hdd", "2"), ("ssd", "200"), ("san", "300"), ("nvme", "1000")]
)
def test_upstream_effective_io_concurrency(storage: str, concurrency: str) -> None:
    assert settings(storage=storage)["effective_io_concurrency"] == concurrency


PARALLEL = (
    "max_worker_processes",
    "max_parallel_workers_per_gather",
    "max_parallel_workers",
    "max_parallel_maintenance_workers",
)


def parallel(*values: str) -> dict[str, str]:
    """pgtune's parallel settings, first to last; PostgreSQL 10 has no maintenance workers."""
    return dict(zip(PARALLEL[: len(values)], values, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"pg_version": 14, "cpus": 1}, {}),
        ({"pg_version": 13, "cpus": 12}, parallel("12", "4", "12", "4")),
        ({"pg_version": 10, "cpus": 12}, parallel("12", "4", "12")),
        ({"pg_version": 10, "cpus": 31}, parallel("31", "4", "31")),
        (
            {"pg_version": 12, "cpus": 31, "db_type": "dw"},
            parallel("31", "16", "31", "4"),
        ),
    ],
)
def test_upstream_parallel_settings(kwargs: dict[str, Any], expected: dict[str, str]) -> None:
    got = settings(**kwargs)
    assert {k: v for k, v in got.items() if k in PARALLEL} == expected
    assert [k for k in got if k in PARALLEL] == list(expected)  # pgtune's order


def test_upstream_wal_level() -> None:
    desktop = settings(db_type="desktop")
    assert (desktop["wal_level"], desktop["max_wal_senders"]) == ("minimal", "0")
    assert "wal_level" not in settings(db_type="web")


def test_upstream_maintenance_work_mem() -> None:
    assert settings(memory_bytes=256 * GiB, pg_version=17)["maintenance_work_mem"] == "8GB"
    assert settings(memory_bytes=16 * GiB, pg_version=15)["maintenance_work_mem"] == "1GB"


def test_upstream_huge_pages() -> None:
    assert settings(memory_bytes=4 * GiB)["huge_pages"] == "off"  # shared_buffers 1GB
    assert settings(memory_bytes=16 * GiB)["huge_pages"] == "try"  # shared_buffers 4GB


def kb(text: str) -> int:
    return int(parse_quantity(text, Unit.parse("kB")))


def test_upstream_work_mem() -> None:
    floor = settings(memory_bytes=4 * GiB, connections=9999, cpus=4)["work_mem"]
    assert kb(floor) == 4096  # the 4MB floor
    mid = kb(settings(memory_bytes=64 * GiB, db_size="mid_ram")["work_mem"])
    assert kb(settings(memory_bytes=64 * GiB, db_size="less_ram")["work_mem"]) == int(mid * 1.3)
    assert kb(settings(memory_bytes=64 * GiB, db_size="greater_ram")["work_mem"]) == int(mid * 0.9)


def test_upstream_jit() -> None:
    assert settings(pg_version=12, db_type="web")["jit"] == "off"
    assert settings(pg_version=15, db_type="oltp")["jit"] == "off"
    assert "jit" not in settings(pg_version=15, db_type="dw")
    assert "jit" not in settings(pg_version=11, db_type="web")


def test_upstream_wal_compression() -> None:
    assert settings(pg_version=10)["wal_compression"] == "on"
    assert settings(pg_version=14)["wal_compression"] == "on"
    assert settings(pg_version=15)["wal_compression"] == "lz4"
    assert settings(pg_version=17)["wal_compression"] == "lz4"


def test_upstream_autovacuum_max_workers() -> None:
    assert settings(cpus=32)["autovacuum_max_workers"] == "5"
    assert settings(cpus=16)["autovacuum_max_workers"] == "4"
    assert "autovacuum_max_workers" not in settings(cpus=8)  # PostgreSQL's default, 3


def test_upstream_autovacuum_work_mem() -> None:
    assert "autovacuum_work_mem" not in settings(memory_bytes=4 * GiB)
    assert settings(memory_bytes=256 * GiB)["autovacuum_work_mem"] == "2GB"


def test_upstream_io_method_and_io_workers() -> None:
    assert "io_method" not in settings(pg_version=17)
    assert settings(pg_version=18)["io_method"] == "io_uring"
    # io_workers only matters for io_method = worker, which Linux does not get
    assert "io_workers" not in settings(pg_version=18, cpus=256)


def test_upstream_warnings() -> None:
    assert pgtune_warnings(PgtuneInput(4 * GiB, 2, pg_version=14)) == []
    [high] = pgtune_warnings(PgtuneInput(256 * GiB, 2, pg_version=14))
    assert "very high memory" in high
    [lz4] = pgtune_warnings(PgtuneInput(4 * GiB, 2, pg_version=15))
    assert "lz4" in lz4
    assert ["lz4" in w for w in pgtune_warnings(PgtuneInput(4 * GiB, 2, pg_version=18))] == [
        True,
        False,
    ]
    assert "io_uring" in pgtune_warnings(PgtuneInput(4 * GiB, 2, pg_version=18))[1]
    dw = pgtune_warnings(PgtuneInput(64 * GiB, 2, "dw", "nvme", pg_version=15))
    assert len(dw) == 2 and "random_page_cost" in dw[1]


def test_maps_onto_postgres_spec_in_native_units() -> None:
    spec = postgres_on(8 * GiB, 4)
    result = pgtune_config(spec, PgtuneInput(8 * GiB, 4, "oltp", "ssd"))
    config = result.config
    assert set(config) == set(spec.knobs)
    assert config["shared_buffers"] == 262144  # 2GB in 8kB pages
    assert config["effective_cache_size"] == 786432  # 6GB in 8kB pages
    assert config["wal_buffers"] == 2048  # 16MB in 8kB pages
    assert config["work_mem"] == 6898  # kB
    assert config["maintenance_work_mem"] == 524288  # kB
    assert (config["min_wal_size"], config["max_wal_size"]) == (2048, 8192)  # MB
    assert config["random_page_cost"] == pytest.approx(1.1)
    assert config["effective_io_concurrency"] == 200
    assert config["huge_pages"] == "try"
    assert config["jit"] is False
    assert config["wal_compression"] == "lz4"
    assert config["max_parallel_workers_per_gather"] == 2
    # max_connections is in the spec (not searched), so the server runs with the
    # connection count pgtune sized work_mem for
    assert config["max_connections"] == 300 and "max_connections" in result.applied
    # knobs pgtune is silent on keep the spec's defaults
    assert config["temp_buffers"] == spec.knobs["temp_buffers"].default
    assert config["autovacuum_work_mem"] == -1
    # each value reads back as pgtune wrote it
    for name in result.applied:
        knob = spec.knobs[name]
        assert knob.validate(result.settings[name]) == config[name]
    assert result.notes == [
        "pgtune warns that wal_compression = lz4 needs a PostgreSQL built --with-lz4"
    ]
    assert not spec.violated(config, Machine(8 * GiB, 4))


def test_values_above_the_spec_bounds_are_clipped_with_a_note() -> None:
    spec = postgres_on(MACHINE.memory_bytes, MACHINE.cpus)  # 16GB: shared_buffers <= 4GB
    result = pgtune_config(spec, PgtuneInput(64 * GiB, 16, "dw", "san"))
    assert result.config["shared_buffers"] == 524288  # 4GB in 8kB pages
    assert result.config["effective_cache_size"] == 1572864  # 12GB in 8kB pages
    assert (
        "shared_buffers: pgtune's 16GB is above the spec's max 4GB; clipped to it" in result.notes
    )
    assert (
        "effective_cache_size: pgtune's 48GB is above the spec's max 12GB; clipped to it"
        in result.notes
    )


def test_values_below_the_spec_bounds_are_clipped_with_a_note(
    make_spec: Callable[..., Spec],
) -> None:
    spec = make_spec(
        "system: toy\nknobs:\n"
        "  random_page_cost: {type: real, min: 2, max: 10, default: 4}\n"
        "  work_mem: {type: integer, unit: kB, min: 64kB, max: 1GB, default: 4MB}\n"
        "  default_statistics_target: {type: real, min: 10, max: 50, default: 20}\n"
    )
    result = pgtune_config(spec, PgtuneInput(8 * GiB, 4, "oltp", "ssd"))
    assert result.config == {
        "random_page_cost": 2.0,
        "work_mem": 6898,
        "default_statistics_target": 50.0,
    }
    assert "random_page_cost: pgtune's 1.1 is below the spec's min 2; clipped to it" in (
        result.notes
    )
    assert (
        "default_statistics_target: pgtune's 100 is above the spec's max 50; clipped to it"
        in result.notes
    )
    assert result.applied == ("default_statistics_target", "random_page_cost", "work_mem")
    missing = [n for n in result.notes if n.startswith("not in spec 'toy'")]
    assert len(missing) == 1
    assert "shared_buffers = 2GB" in missing[0] and "max_connections = 300" in missing[0]


def test_fractional_pages_are_rounded_to_the_nearest_with_a_note() -> None:
    # 8388632 kB: shared_buffers 8388632 / 4 = 2097158 kB = 262144.75 pages -> 262145
    memory = 8 * GiB + 6 * 4096
    spec = postgres_on(MACHINE.memory_bytes, MACHINE.cpus)  # room above 2GB
    result = pgtune_config(spec, PgtuneInput(memory, 4, "oltp"))
    assert result.config["shared_buffers"] == 262145
    rounded = (
        "shared_buffers: pgtune's 2097158kB is not a whole number of 8kB; rounded to 2097160kB"
    )
    assert rounded in result.notes


def test_knob_subset_notes_the_rest() -> None:
    spec = postgres_on(8 * GiB, 4)
    chosen = ["shared_buffers", "jit", "temp_buffers"]
    result = pgtune_config(spec, PgtuneInput(8 * GiB, 4, "oltp"), chosen)
    assert result.config == {"shared_buffers": 262144, "jit": False, "temp_buffers": 1024}
    assert result.applied == ("shared_buffers", "jit")
    [unchosen] = [n for n in result.notes if n.startswith("not among the chosen knobs")]
    assert "work_mem = 6898kB" in unchosen and "shared_buffers" not in unchosen


def test_unknown_knob_in_subset_is_an_error() -> None:
    with pytest.raises(ValueError, match="knobs not in spec 'postgres': bogus"):
        pgtune_config(postgres_on(8 * GiB, 4), PgtuneInput(8 * GiB, 4), ["work_mem", "bogus"])


def test_broken_constraint_is_named() -> None:
    # pgtune sets max_worker_processes = 4; max_parallel_workers stays at its default 8
    with pytest.raises(ValueError, match=r"max_parallel_workers <= max_worker_processes"):
        pgtune_config(postgres_on(8 * GiB, 4), PgtuneInput(8 * GiB, 4), ["max_worker_processes"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"db_type": "olap"}, r"db_type 'olap' is not one of: web, oltp, dw, desktop, mixed"),
        ({"storage": "tape"}, r"storage 'tape' is not one of: ssd, hdd, san, nvme"),
        ({"db_size": "huge"}, r"db_size 'huge' is not one of: less_ram, mid_ram, greater_ram"),
        ({"memory_bytes": 256 * 1024**2}, r"memory_bytes 268435456 must be .* >= 536870912"),
        ({"cpus": 0}, r"cpus 0 must be a whole number >= 1"),
        ({"connections": 5}, r"connections 5 must be a whole number >= 20"),
        ({"pg_version": 9}, r"pg_version 9 is not one of: 10, 11, .*, 18"),
    ],
)
def test_invalid_input(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"memory_bytes": 8 * GiB, "cpus": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        PgtuneInput(**args)


# -- the command --------------------------------------------------------------------
OLTP_8GB = ["pgtune", "--memory", "8GB", "--cpus", "4", "--db-type", "oltp", "--storage", "ssd"]


def test_cli_conf() -> None:
    result = runner.invoke(app, OLTP_8GB)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("# pgtune (https://github.com/le0pard/pgtune): 8GB memory, 4 CPUs")
    assert lines[1:5] == [
        "max_connections = 300  # needs a restart",
        "shared_buffers = '2GB'  # needs a restart",
        "effective_cache_size = '6GB'",
        "maintenance_work_mem = '512MB'",
    ]
    assert "random_page_cost = 1.1" in lines
    assert "work_mem = '6898kB'" in lines
    assert "jit = 'off'" in lines and "wal_compression = 'lz4'" in lines
    assert not [line for line in lines if line.startswith("temp_buffers")]
    assert "note: pgtune warns that wal_compression = lz4 needs" in result.stderr
    assert "not in spec" not in result.stderr


def test_cli_sql() -> None:
    result = runner.invoke(app, [*OLTP_8GB, "--format", "sql"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("-- pgtune")
    assert "ALTER SYSTEM SET \"shared_buffers\" = '2GB';" in lines
    assert "ALTER SYSTEM SET \"max_parallel_workers\" = '4';" in lines
    assert lines[-2] == "SELECT pg_reload_conf();"
    assert lines[-1].startswith("-- now restart PostgreSQL") and "shared_buffers" in lines[-1]


def test_cli_json() -> None:
    result = runner.invoke(app, [*OLTP_8GB, "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["baseline"] == "pgtune"
    assert doc["input"]["connections"] == 300
    assert doc["config"]["shared_buffers"] == "2GB"
    assert doc["native"]["shared_buffers"] == 262144
    assert doc["pgtune"]["max_connections"] == "300"
    assert doc["config"]["max_connections"] == "300"
    assert doc["input"]["db_size"] == "mid_ram"
    assert any("lz4" in note for note in doc["notes"])


def test_cli_defaults_to_this_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Machine, "local", classmethod(lambda cls: MACHINE))  # 16GB, 4 CPUs
    result = runner.invoke(app, ["pgtune", "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["input"]["memory_bytes"] == 16 * GiB and doc["input"]["db_type"] == "mixed"
    assert doc["config"]["shared_buffers"] == "4GB"


@pytest.mark.parametrize(
    ("args", "db_type", "why"),
    [
        (["--workload", "pgbench-tpcb"], "oltp", "for workload pgbench-tpcb"),
        (["--workload", "analytic"], "dw", "for workload analytic"),
        (["--workload", "analytic", "--pgtune-type", "web"], "web", "--db-type"),
        ([], "mixed", "pgtune's default"),
    ],
)
def test_cli_db_type_follows_the_workload_as_verify_does(
    args: list[str], db_type: str, why: str
) -> None:
    result = runner.invoke(app, ["pgtune", "--memory", "8GB", "--cpus", "4", "-f", "json", *args])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["input"]["db_type"] == db_type
    assert f"pgtune db type: {db_type} ({why})" in result.stderr


def test_cli_unknown_workload_is_one_clear_message() -> None:
    result = runner.invoke(app, ["pgtune", "--workload", "nosuch"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "unknown workload 'nosuch'" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--db-type", "olap"], "db_type 'olap' is not one of"),
        (["--memory", "8"], "--memory '8' needs a unit"),
        (["--memory", "8XB"], "--memory '8XB'"),
        (["--connections", "3"], "connections 3 must be"),
        (["--db-size", "huge"], "db_size 'huge' is not one of"),
        (["--pg-version", "9"], "pg_version 9 is not one of"),
        (["--system", "nosuch"], "unknown knob 'nosuch'"),
    ],
)
def test_cli_bad_input_is_one_clear_message(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["pgtune", "--memory", "8GB", "--cpus", "4", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""
