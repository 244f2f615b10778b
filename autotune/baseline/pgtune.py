"""pgtune's rule-based settings, as a baseline that tuned configs must beat.

The formulas are le0pard's pgtune (https://pgtune.leopard.in.ua), read from
github.com/le0pard/pgtune: the selectors in
``src/features/configuration/configurationSlice.js`` at commit
7d204bdb87a83b9bbbafb354df1838b2be7870d9, with the output order and the value
formatting (``formatValue``) of ``src/common/components/configurationView/index.jsx``
of the same era (huge_pages after work_mem, wal_level last). The OS is Linux, so
the Windows caps never apply. Later upstream versions add inputs (NVMe, database
size) and settings (jit, wal_compression, autovacuum_*, io_*) and raise the
maintenance_work_mem cap from 2GB to 8GB; those are not followed here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from autotune.spec import Config, Knob, Machine, Spec, Value
from autotune.spec._units import parse_quantity

DB_TYPES = ("web", "oltp", "dw", "desktop", "mixed")
STORAGES = ("ssd", "hdd", "san")
PG_VERSIONS = tuple(range(10, 18))  # pgtune's DB_VERSIONS: 10 to 17
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

    def __post_init__(self) -> None:
        if self.db_type not in DB_TYPES:
            raise ValueError(f"db_type {self.db_type!r} is not one of: {', '.join(DB_TYPES)}")
        if self.storage not in STORAGES:
            raise ValueError(f"storage {self.storage!r} is not one of: {', '.join(STORAGES)}")
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
    ``Math.floor`` does, so the numbers match the web tool's output.
    """
    mem_kb = Fraction(inp.memory_bytes, 1024)
    kind = inp.db_type
    shared = math.floor(mem_kb / (16 if kind == "desktop" else 4))
    cache = math.floor(mem_kb / 4 if kind == "desktop" else mem_kb * 3 / 4)
    maintenance = min(math.floor(mem_kb / (8 if kind == "dw" else 16)), 2 * _KB_PER_GB)
    wal_buffers = min(3 * shared // 100, 16 * _KB_PER_MB)  # 3% of shared_buffers, <= 16MB
    if 14 * _KB_PER_MB < wal_buffers < 16 * _KB_PER_MB:
        wal_buffers = 16 * _KB_PER_MB  # near 16MB: round up to it
    wal_buffers = max(wal_buffers, 32)
    parallel = _parallel(inp)
    workers = parallel.get("max_worker_processes", DEFAULT_WORKERS)
    per_connection = (mem_kb - shared) / ((inp.max_connections + workers) * 3)
    divisor = {"dw": 2, "mixed": 2, "desktop": 6}.get(kind, 1)
    work_mem = max(math.floor(per_connection / divisor), 64)
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
        "random_page_cost": "4" if inp.storage == "hdd" else "1.1",
        "effective_io_concurrency": {"hdd": "2", "ssd": "200", "san": "300"}[inp.storage],
        "work_mem": _format_kb(work_mem),
        "huge_pages": "try" if mem_kb >= 32 * _KB_PER_GB else "off",
        "min_wal_size": _format_kb(min_wal_mb * _KB_PER_MB),
        "max_wal_size": _format_kb(max_wal_mb * _KB_PER_MB),
        **{name: str(value) for name, value in parallel.items()},
    }
    if kind == "desktop":
        settings["wal_level"] = "minimal"
        settings["max_wal_senders"] = "0"  # must be 0 with wal_level = minimal
    return settings


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
    if inp.memory_bytes > 100 * 1024**3:
        notes.append("pgtune warns that it is not optimal for very high memory systems (>100GB)")
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
