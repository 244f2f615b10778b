"""Host metrics from /proc: what the machine did while a trial was measured.

OtterTune-style internal metrics explain *why* a config is fast or slow
(CPU-bound, I/O-bound, swapping). Any system on this host shares them, so
they live beside the system seam rather than inside one system. Counters are
reported as deltas over the measured phase, gauges as the value at its end.

Only the Linux /proc files are read (proc(5)); a file that is missing or
unreadable (another OS, a locked-down container) is skipped, never fatal.
The proc root is a parameter so tests can point it at fake files.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

SECTOR_BYTES = 512  # /proc/diskstats counts 512-byte sectors whatever the device's own size

# /proc/stat "cpu" line, in order (guest time is already inside user and nice).
_CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
_VM_FIELDS = ("pgpgin", "pgpgout", "pswpin", "pswpout", "pgfault", "pgmajfault")
# /proc/diskstats column (0-based, after major, minor, name) -> metric, and its scale.
_DISK_FIELDS = (
    (0, "reads_completed", 1),
    (2, "read_bytes", SECTOR_BYTES),
    (3, "read_ms", 1),
    (4, "writes_completed", 1),
    (6, "written_bytes", SECTOR_BYTES),
    (7, "write_ms", 1),
    (9, "io_ms", 1),
)
# Virtual block devices: loop and RAM disks do no disk I/O, and device-mapper or
# md devices sit on top of whole disks, so counting them would count I/O twice.
_VIRTUAL_PREFIXES = ("loop", "ram", "zram", "dm-", "md")
_MEM_FIELDS = {
    "MemAvailable": "available",
    "Cached": "cached",
    "Dirty": "dirty",
    "Writeback": "writeback",
}

HOST_GAUGES: frozenset[str] = frozenset(f"host.mem.{name}_bytes" for name in _MEM_FIELDS.values())
"""Host metrics that are levels at an instant, not running totals: kept as end values."""


def _lines(path: Path) -> Iterator[list[str]]:
    """The whitespace-split lines of ``path``; nothing when it cannot be read."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return
    for line in text.splitlines():
        parts = line.split()
        if parts:
            yield parts


def _number(text: str) -> float | None:
    try:
        return float(int(text))
    except ValueError:
        return None


def _clock_ticks() -> int:
    try:
        ticks = os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):
        ticks = -1
    return ticks if ticks > 0 else 100  # USER_HZ is 100 on every Linux build in practice


def _stat(proc: Path, out: dict[str, float]) -> None:
    ticks = _clock_ticks()
    for parts in _lines(proc / "stat"):
        key, values = parts[0], parts[1:]
        if key == "cpu":  # the all-CPU line, summed over cores
            for name, text in zip(_CPU_FIELDS, values, strict=False):
                value = _number(text)
                if value is not None:
                    out[f"host.cpu.{name}_s"] = value / ticks
        elif key in ("ctxt", "processes") and values:
            value = _number(values[0])
            if value is not None:
                out[f"host.{key}"] = value


def _vmstat(proc: Path, out: dict[str, float]) -> None:
    for parts in _lines(proc / "vmstat"):
        if len(parts) >= 2 and parts[0] in _VM_FIELDS:
            value = _number(parts[1])
            if value is not None:
                out[f"host.vm.{parts[0]}"] = value


def whole_disks(names: Collection[str]) -> set[str]:
    """The names that are whole physical disks: no partitions, no virtual devices.

    The kernel names a partition after its disk: ``sda`` -> ``sda1``, and with a
    ``p`` when the disk's name ends in a digit: ``nvme0n1`` -> ``nvme0n1p1``.
    """
    candidates = {n for n in names if not n.startswith(_VIRTUAL_PREFIXES)}

    def is_partition(name: str) -> bool:
        for disk in candidates:
            if disk == name or not name.startswith(disk):
                continue
            rest = name[len(disk) :]
            if disk[-1].isdigit():
                if rest.startswith("p") and rest[1:].isdigit():
                    return True
            elif rest.isdigit():
                return True
        return False

    return {n for n in candidates if not is_partition(n)}


def _diskstats(proc: Path, out: dict[str, float]) -> None:
    rows = {parts[2]: parts[3:] for parts in _lines(proc / "diskstats") if len(parts) >= 14}
    disks = whole_disks(rows)
    if not disks:
        return
    totals = {name: 0.0 for _, name, _ in _DISK_FIELDS}
    for disk in disks:
        for column, name, scale in _DISK_FIELDS:
            value = _number(rows[disk][column])
            if value is not None:
                totals[name] += value * scale
    out.update({f"host.disk.{name}": value for name, value in totals.items()})


def _meminfo(proc: Path, out: dict[str, float]) -> None:
    for parts in _lines(proc / "meminfo"):
        key = parts[0].rstrip(":")
        if key in _MEM_FIELDS and len(parts) >= 2:
            value = _number(parts[1])
            if value is not None:
                scale = 1024 if len(parts) > 2 and parts[2] == "kB" else 1
                out[f"host.mem.{_MEM_FIELDS[key]}_bytes"] = value * scale


def host_snapshot(proc: Path = Path("/proc")) -> dict[str, float]:
    """Host counters and gauges now (names in HOST_GAUGES are gauges); a few small reads."""
    out: dict[str, float] = {}
    _stat(proc, out)
    _vmstat(proc, out)
    _diskstats(proc, out)
    _meminfo(proc, out)
    return out


def metric_deltas(
    before: Mapping[str, float], after: Mapping[str, float], gauges: Collection[str]
) -> dict[str, float]:
    """Counters as ``after - before``, gauges as their ``after`` value.

    A counter missing from either side is left out, and so is one that went
    down: its source was reset (a stats reset, a server restart), so the
    difference would not be what happened in between.
    """
    out: dict[str, float] = {}
    for name, end in after.items():
        if name in gauges:
            out[name] = float(end)
            continue
        start = before.get(name)
        if start is not None and end >= start:
            out[name] = float(end) - float(start)
    return out
