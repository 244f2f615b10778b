"""pgtune's rule-based settings, as a baseline that tuned configs must beat.

The formulas are le0pard's pgtune (https://pgtune.leopard.in.ua), read from
github.com/le0pard/pgtune at commit 7caef27c204d304623eda21f23e7d56c1ad78d36
(July 2026): the selectors in ``src/features/configuration/configurationSlice.js``,
with the output order and the value formatting (``formatValue``) of
``src/common/components/configurationView/index.jsx``. Since the April 2025
version this module first followed, pgtune caps maintenance_work_mem at 8GB
(was 2GB), floors work_mem at 4MB and scales it by the database size, sets
huge_pages from 2GB of shared_buffers (was 32GB of RAM), keeps random_page_cost
at 4 for a data warehouse larger than RAM, adds the nvme storage type and sets
jit, wal_compression, autovacuum_max_workers, autovacuum_work_mem and, from
PostgreSQL 18, io_method. The OS is Linux, so the Windows and macOS branches
never apply.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from autotune.spec import Config, Knob, Machine, Spec, Value, parse_quantity

DB_TYPES = ("web", "oltp", "dw", "desktop", "mixed")
STORAGES = ("ssd", "hdd", "san", "nvme")
# pgtune's "Total Data Size": less than RAM, 1x to 3x RAM (its default), more than 3x RAM.
DB_SIZES = ("less_ram", "mid_ram", "greater_ram")
PG_VERSIONS = tuple(range(10, 19))  # pgtune's DB_VERSIONS: 10 to 18
DEFAULT_CONNECTIONS = {"web": 200, "oltp": 300, "dw": 40, "desktop": 20, "mixed": 100}
MIN_MEMORY_BYTES = 512 * 1024**2  # pgtune's form refuses less than 512 MB
MIN_CONNECTIONS = 20  # pgtune's form refuses fewer
DEFAULT_WORKERS = 8  # PostgreSQL's max_worker_processes, used when pgtune sets none

_KB_PER_MB = 1024
_KB_PER_GB = 1024 * 1024


@dataclass(frozen=True)
class PgtuneInput:
    """What pgtune's form asks for; ``connections=None`` takes the db type's default."""

    memory_bytes: int
    cpus: int
    db_type: str = "mixed"
    storage: str = "ssd"
    connections: int | None = None
    pg_version: int = 15
    db_size: str = "mid_ram"

    def __post_init__(self) -> None:
        if self.db_type not in DB_TYPES:
            raise ValueError(f"db_type {self.db_type!r} is not one of: {', '.join(DB_TYPES)}")
        if self.storage not in STORAGES:
            raise ValueError(f"storage {self.storage!r} is not one of: {', '.join(STORAGES)}")
        if self.db_size not in DB_SIZES:
            raise ValueError(f"db_size {self.db_size!r} is not one of: {', '.join(DB_SIZES)}")
        if not _whole(self.memory_bytes) or self.memory_bytes < MIN_MEMORY_BYTES:
            raise ValueError(
                f"memory_bytes {self.memory_bytes!r} must be a whole number of bytes "
                f">= {MIN_MEMORY_BYTES} (512MB, pgtune's minimum)"
            )
        if not _whole(self.cpus) or self.cpus < 1:
            raise ValueError(f"cpus {self.cpus!r} must be a whole number >= 1")
        if self.connections is not None and (
            not _whole(self.connections) or self.connections < MIN_CONNECTIONS
        ):
            raise ValueError(
                f"connections {self.connections!r} must be a whole number >= {MIN_CONNECTIONS} "
                "(pgtune's minimum), or None for the db type's default"
            )
        if self.pg_version not in PG_VERSIONS or not _whole(self.pg_version):
            raise ValueError(
                f"pg_version {self.pg_version!r} is not one of: "
                f"{', '.join(str(v) for v in PG_VERSIONS)}"
            )

    @property
    def max_connections(self) -> int:
        if self.connections is not None:
            return self.connections
        return DEFAULT_CONNECTIONS[self.db_type]


@dataclass(frozen=True)
class PgtuneConfig:
    """pgtune's settings mapped onto a spec.

    ``config`` holds every chosen knob (defaults where pgtune is silent),
    ``applied`` the knobs pgtune set, in its order, and ``notes`` everything
    that did not carry over exactly (clipped, rounded, or not in the spec).
    """

    config: Config
    notes: list[str]
    settings: dict[str, str]
    applied: tuple[str, ...] = ()


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _format_kb(kb: int) -> str:
    """pgtune's formatValue: the largest of GB, MB, kB that shows the value exactly."""
    if kb % _KB_PER_GB == 0:
        return f"{kb // _KB_PER_GB}GB"
    if kb % _KB_PER_MB == 0:
        return f"{kb // _KB_PER_MB}MB"
    return f"{kb}kB"


def _parallel(inp: PgtuneInput) -> dict[str, int]:
    """selectParallelSettings: nothing under 4 CPUs; per-gather capped at 4 except for dw."""
    if inp.cpus < 4:
        return {}
    per_gather = math.ceil(inp.cpus / 2)
    if inp.db_type != "dw":
        per_gather = min(per_gather, 4)
    out = {
        "max_worker_processes": inp.cpus,
        "max_parallel_workers_per_gather": per_gather,
        "max_parallel_workers": inp.cpus,  # pg_version >= 10, always true here
    }
    if inp.pg_version >= 11:
        out["max_parallel_maintenance_workers"] = min(math.ceil(inp.cpus / 2), 4)
    return out


def pgtune_settings(inp: PgtuneInput) -> dict[str, str]:
    """The postgresql.conf lines pgtune prints for ``inp``, in its order, as text values.

    Memory is computed in kB with exact fractions, then floored as pgtune's
    ``Math.floor`` does, so the numbers match the web tool's output. Settings
    pgtune leaves at PostgreSQL's default (its ``null``) are not printed.
    """
    mem_kb = Fraction(inp.memory_bytes, 1024)
    kind = inp.db_type
    shared = math.floor(mem_kb / (16 if kind == "desktop" else 4))
    cache = math.floor(mem_kb / 4 if kind == "desktop" else mem_kb * 3 / 4)
    maintenance = min(math.floor(mem_kb / (8 if kind == "dw" else 16)), 8 * _KB_PER_GB)
    wal_buffers = min(3 * shared // 100, 16 * _KB_PER_MB)  # 3% of shared_buffers, <= 16MB
    if 14 * _KB_PER_MB < wal_buffers < 16 * _KB_PER_MB:
        wal_buffers = 16 * _KB_PER_MB  # near 16MB: round up to it
    wal_buffers = max(wal_buffers, 32)
    parallel = _parallel(inp)
    workers = parallel.get("max_worker_processes", DEFAULT_WORKERS)
    per_connection = (mem_kb - shared) / ((inp.max_connections + workers) * 3)
    divisor = {"dw": 2, "mixed": 2, "desktop": 6}.get(kind, 1)
    work_mem = math.floor(per_connection / divisor)
    # In floating point, as pgtune's JavaScript does it.
    if inp.db_size == "less_ram":  # the OS cache has room to spare: 30% more
        work_mem = math.floor(work_mem * 1.3)
    elif inp.db_size == "greater_ram":  # the OS cache is under pressure: 10% less
        work_mem = math.floor(work_mem * 0.9)
    work_mem = max(work_mem, 4 * _KB_PER_MB)
    if inp.db_size == "less_ram" or (inp.storage != "hdd" and kind != "dw"):
        random_page_cost = "1.1"
    else:  # hdd, or a data warehouse larger than RAM: index scans would be chosen too often
        random_page_cost = "4"
    min_wal_mb = {"web": 1024, "oltp": 2048, "dw": 4096, "desktop": 100, "mixed": 1024}[kind]
    max_wal_mb = {"web": 4096, "oltp": 8192, "dw": 16384, "desktop": 2048, "mixed": 4096}[kind]
    settings = {
        "max_connections": str(inp.max_connections),
        "shared_buffers": _format_kb(shared),
        "effective_cache_size": _format_kb(cache),
        "maintenance_work_mem": _format_kb(maintenance),
        "checkpoint_completion_target": "0.9",
        "wal_buffers": _format_kb(wal_buffers),
        "default_statistics_target": "500" if kind == "dw" else "100",
        "random_page_cost": random_page_cost,
        "effective_io_concurrency": {"hdd": "2", "ssd": "200", "san": "300", "nvme": "1000"}[
            inp.storage
        ],
        "work_mem": _format_kb(work_mem),
        "huge_pages": "try" if shared >= 2 * _KB_PER_GB else "off",
    }
    if inp.pg_version >= 12 and kind in ("web", "oltp", "mixed"):
        settings["jit"] = "off"  # short queries pay JIT's compile time and gain nothing
    settings["wal_compression"] = "lz4" if inp.pg_version >= 15 else "on"
    if inp.cpus >= 16:
        settings["autovacuum_max_workers"] = "5" if inp.cpus >= 32 else "4"
    if maintenance >= 2 * _KB_PER_GB:  # each autovacuum worker would take all of it
        settings["autovacuum_work_mem"] = _format_kb(2 * _KB_PER_GB)
    if inp.pg_version >= 18:
        settings["io_method"] = "io_uring"  # on Linux; io_workers is then left alone
    settings["min_wal_size"] = _format_kb(min_wal_mb * _KB_PER_MB)
    settings["max_wal_size"] = _format_kb(max_wal_mb * _KB_PER_MB)
    settings.update({name: str(value) for name, value in parallel.items()})
    if kind == "desktop":
        settings["wal_level"] = "minimal"
        settings["max_wal_senders"] = "0"  # must be 0 with wal_level = minimal
    return settings


def pgtune_warnings(inp: PgtuneInput) -> list[str]:
    """The warnings pgtune prints above its settings, one sentence each."""
    out = []
    if inp.memory_bytes > 100 * 1024**3:
        out.append("pgtune warns that it is not optimal for very high memory systems (>100GB)")
    if inp.pg_version >= 15:
        out.append("pgtune warns that wal_compression = lz4 needs a PostgreSQL built --with-lz4")
    if inp.pg_version >= 18:
        out.append(
            "pgtune warns that io_method = io_uring needs a PostgreSQL built --with-liburing"
        )
    if inp.db_type == "dw" and inp.storage != "hdd" and inp.db_size != "less_ram":
        out.append(
            "pgtune warns that it leaves random_page_cost at the default 4 for a data warehouse "
            "larger than RAM, to avoid bad index scans; watch the plans"
        )
    return out


def _native(knob: Knob, text: str, notes: list[str]) -> Value:
    """``text`` in the knob's native unit, rounded to whole units and clipped into bounds."""
    if not knob.numeric:
        return knob.validate(text)
    number = parse_quantity(text, knob.unit)
    if knob.type == "integer" and number.denominator != 1:
        rounded = round(number)  # half to even, like PostgreSQL's rint()
        notes.append(
            f"{knob.name}: pgtune's {text} is not a whole number of {knob.unit.text}; "
            f"rounded to {knob.format(rounded)}"
        )
        number = Fraction(rounded)
    value: int | float = int(number) if knob.type == "integer" else float(number)
    if value in knob.special:
        return value
    assert knob.min is not None and knob.max is not None
    if value < knob.min:
        notes.append(
            f"{knob.name}: pgtune's {text} is below the spec's min {knob.format(knob.lo)}; "
            "clipped to it"
        )
        value = float(knob.min) if knob.type == "real" else int(knob.min)
    elif value > knob.max:
        notes.append(
            f"{knob.name}: pgtune's {text} is above the spec's max {knob.format(knob.hi)}; "
            "clipped to it"
        )
        value = float(knob.max) if knob.type == "real" else int(knob.max)
    return knob.validate(value)


def pgtune_config(spec: Spec, inp: PgtuneInput, knobs: Sequence[str] | None = None) -> PgtuneConfig:
    """pgtune's settings as a complete, valid config of ``spec`` (or of ``knobs`` in it).

    Load ``spec`` on the machine ``inp`` describes, so that machine-relative
    bounds ("25% memory") and constraints agree with pgtune's inputs.
    Raises ValueError for a knob the spec lacks or a constraint the result breaks.
    """
    names = list(spec.knobs) if knobs is None else list(knobs)
    unknown = [name for name in names if name not in spec.knobs]
    if unknown:
        raise ValueError(f"knobs not in spec {spec.system!r}: {', '.join(unknown)}")
    settings = pgtune_settings(inp)
    config: Config = {name: spec.knobs[name].default for name in names}
    notes: list[str] = []
    notes.extend(pgtune_warnings(inp))
    applied: list[str] = []
    missing: list[str] = []
    unchosen: list[str] = []
    for name, text in settings.items():
        if name not in spec.knobs:
            missing.append(f"{name} = {text}")
        elif name not in config:
            unchosen.append(f"{name} = {text}")
        else:
            knob = spec.knobs[name]
            try:
                config[name] = _native(knob, text, notes)
            except ValueError as exc:  # KnobValueError, UnitError: a custom spec's knob
                notes.append(
                    f"{name}: pgtune's {text} does not fit the spec ({exc}); "
                    f"left at the default {knob.format(knob.default)}"
                )
                continue
            applied.append(name)
    if missing:
        notes.append(f"not in spec {spec.system!r}, so not applied: {', '.join(missing)}")
    if unchosen:
        notes.append(f"not among the chosen knobs, so not applied: {', '.join(unchosen)}")
    broken = spec.violated(config, Machine(memory_bytes=inp.memory_bytes, cpus=inp.cpus))
    if broken:
        raise ValueError(
            "pgtune's settings break the spec's constraint"
            f"{'s' if len(broken) > 1 else ''}: {'; '.join(broken)}"
        )
    return PgtuneConfig(config=config, notes=notes, settings=settings, applied=tuple(applied))
