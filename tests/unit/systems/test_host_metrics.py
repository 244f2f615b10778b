"""Host metrics from fake /proc trees: parsing, deltas, gauges, what is skipped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autotune.spec import Config
from autotune.systems import ApplyReport, System
from autotune.systems._host import HOST_GAUGES, host_snapshot, metric_deltas, whole_disks

TICKS = os.sysconf("SC_CLK_TCK")


def diskstats_line(name: str, reads: int, sectors_read: int, writes: int, written: int) -> str:
    # major minor name, then the 11 classic fields, then discard and flush fields (4.18+).
    fields = [reads, 0, sectors_read, 7, writes, 0, written, 9, 0, 11, 0]
    return f" 8 0 {name} " + " ".join(map(str, [*fields, 0, 0, 0, 0, 0, 0]))


def fake_proc(
    root: Path,
    *,
    cpu_user: int,
    ctxt: int,
    processes: int,
    pgfault: int,
    disk: dict[str, tuple[int, int, int, int]],
    available_kb: int,
    dirty_kb: int,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "stat").write_text(
        f"cpu  {cpu_user} 20 300 4000 50 6 7 8 0 0\n"
        f"cpu0 {cpu_user} 20 300 4000 50 6 7 8 0 0\n"
        "intr 12345 1 2 3\n"
        f"ctxt {ctxt}\n"
        "btime 1700000000\n"
        f"processes {processes}\n"
        "procs_running 2\n"
    )
    (root / "vmstat").write_text(
        "nr_free_pages 1000\npgpgin 10\npgpgout 20\npswpin 0\npswpout 0\n"
        f"pgfault {pgfault}\npgmajfault 3\n"
    )
    (root / "diskstats").write_text(
        "\n".join(diskstats_line(name, *values) for name, values in disk.items()) + "\n"
    )
    (root / "meminfo").write_text(
        "MemTotal:       16000000 kB\n"
        f"MemAvailable:   {available_kb} kB\n"
        "Cached:          2000000 kB\n"
        f"Dirty:           {dirty_kb} kB\n"
        "Writeback:             0 kB\n"
        "HugePages_Total:       0\n"
    )
    return root


def test_snapshot_reads_every_file_in_its_units(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path / "proc", cpu_user=1000, ctxt=500, processes=70, pgfault=900,
        disk={"sda": (10, 80, 20, 160)}, available_kb=8000, dirty_kb=4,
    )  # fmt: skip
    snap = host_snapshot(proc)
    assert snap["host.cpu.user_s"] == pytest.approx(1000 / TICKS)
    assert snap["host.cpu.steal_s"] == pytest.approx(8 / TICKS)
    assert {k for k in snap if k.startswith("host.cpu.")} == {
        f"host.cpu.{f}_s"
        for f in ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    }
    assert snap["host.ctxt"] == 500 and snap["host.processes"] == 70
    assert snap["host.vm.pgfault"] == 900 and snap["host.vm.pgmajfault"] == 3
    assert "host.vm.nr_free_pages" not in snap
    assert snap["host.disk.reads_completed"] == 10
    assert snap["host.disk.read_bytes"] == 80 * 512
    assert snap["host.disk.written_bytes"] == 160 * 512
    assert snap["host.disk.read_ms"] == 7 and snap["host.disk.write_ms"] == 9
    assert snap["host.disk.io_ms"] == 11
    assert snap["host.mem.available_bytes"] == 8000 * 1024
    assert snap["host.mem.dirty_bytes"] == 4096
    assert "host.mem.total_bytes" not in snap


def test_deltas_over_a_phase_and_gauges_at_its_end(tmp_path: Path) -> None:
    before = host_snapshot(fake_proc(
        tmp_path / "a", cpu_user=1000, ctxt=500, processes=70, pgfault=900,
        disk={"sda": (10, 80, 20, 160)}, available_kb=8000, dirty_kb=4,
    ))  # fmt: skip
    after = host_snapshot(fake_proc(
        tmp_path / "b", cpu_user=1250, ctxt=800, processes=75, pgfault=1000,
        disk={"sda": (15, 100, 60, 560)}, available_kb=6000, dirty_kb=100,
    ))  # fmt: skip
    deltas = metric_deltas(before, after, HOST_GAUGES)
    assert deltas["host.cpu.user_s"] == pytest.approx(250 / TICKS)
    assert deltas["host.cpu.idle_s"] == 0  # unchanged counters are 0, not left out
    assert deltas["host.ctxt"] == 300 and deltas["host.processes"] == 5
    assert deltas["host.vm.pgfault"] == 100
    assert deltas["host.disk.reads_completed"] == 5
    assert deltas["host.disk.written_bytes"] == 400 * 512
    # Gauges are the end value, not a difference.
    assert deltas["host.mem.available_bytes"] == 6000 * 1024
    assert deltas["host.mem.dirty_bytes"] == 100 * 1024
    assert set(deltas) == set(after)


def test_partitions_and_virtual_devices_are_not_counted(tmp_path: Path) -> None:
    disks = {
        "sda": (1, 1, 1, 1),
        "sda1": (100, 100, 100, 100),  # a partition: its I/O is already in sda
        "sda15": (100, 100, 100, 100),
        "nvme0n1": (2, 2, 2, 2),
        "nvme0n1p1": (100, 100, 100, 100),
        "mmcblk0": (4, 4, 4, 4),
        "mmcblk0p2": (100, 100, 100, 100),
        "loop0": (100, 100, 100, 100),
        "ram0": (100, 100, 100, 100),
        "zram0": (100, 100, 100, 100),
        "dm-0": (100, 100, 100, 100),  # LVM on sda: counted in sda already
        "vda": (8, 8, 8, 8),
    }
    snap = host_snapshot(fake_proc(
        tmp_path / "proc", cpu_user=1, ctxt=1, processes=1, pgfault=1, disk=disks,
        available_kb=1, dirty_kb=1,
    ))  # fmt: skip
    assert snap["host.disk.reads_completed"] == 1 + 2 + 4 + 8
    assert snap["host.disk.read_bytes"] == (1 + 2 + 4 + 8) * 512


def test_whole_disks_follow_the_kernels_partition_naming() -> None:
    names = ["sda", "sda1", "sdaa", "sdaa3", "nvme0n1", "nvme0n10", "nvme0n1p3", "xvda", "xvda1"]
    # sdaa is the 27th disk, not a partition of sda; nvme0n10 is namespace 10.
    assert whole_disks(names) == {"sda", "sdaa", "nvme0n1", "nvme0n10", "xvda"}


def test_missing_or_unreadable_files_are_skipped(tmp_path: Path) -> None:
    assert host_snapshot(tmp_path / "nothing-here") == {}
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "stat").write_text("ctxt 42\ncpu  garbage\n")
    (proc / "diskstats").mkdir()  # unreadable as a file
    (proc / "meminfo").write_bytes(b"\xff\xfe not text")
    assert host_snapshot(proc) == {"host.ctxt": 42.0}


def test_counters_that_went_backwards_or_appeared_are_left_out() -> None:
    before = {"pg.database.xact_commit": 500.0, "host.ctxt": 10.0}
    after = {"pg.database.xact_commit": 20.0, "host.ctxt": 15.0, "pg.wal.wal_bytes": 9.0}
    # A stats reset in between: the difference would be meaningless.
    assert metric_deltas(before, after, frozenset()) == {"host.ctxt": 5.0}


class BareSystem(System):
    """A system that adds no metrics of its own."""

    def start(self) -> None: ...
    def apply(self, config: Config) -> ApplyReport:
        return ApplyReport()

    def mark_good(self) -> None: ...
    def healthy(self) -> bool:
        return True

    def rollback(self) -> None: ...
    def restore(self, config: Config | None = None) -> None: ...
    def stop(self) -> None: ...


def test_every_system_reports_this_hosts_metrics() -> None:
    assert BareSystem.metric_gauges == HOST_GAUGES
    snap = BareSystem().metrics_snapshot()
    assert snap["host.cpu.user_s"] > 0 and snap["host.ctxt"] > 0
    assert all(k.startswith("host.") for k in snap)
