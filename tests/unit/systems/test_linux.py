"""The Linux system on a fake root: a scratch copy of /proc/sys and /sys under tmp_path.

``FakeKernel`` writes the way the kernel answers: choice files keep their list and
move the brackets, an unknown choice is EINVAL, a scheduler switch resets
nr_requests, one device silently caps nr_requests, and the dirty ratio/bytes
pairs zero each other.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from autotune.spec import Knob, KnobValueError, Spec, load_spec
from autotune.systems import SystemError_
from autotune.systems._registry import Target, applier_kind, make_system
from autotune.systems.linux import LinuxSystem, journal_name
from autotune.systems.linux._system import render
from tests.unit._support import MACHINE, ROOT

SPEC_PATH = ROOT / "knobs" / "linux.yaml"

SYSCTLS = {
    "vm/dirty_ratio": "20",
    "vm/dirty_background_ratio": "10",
    "vm/dirty_bytes": "0",
    "vm/dirty_background_bytes": "0",
    "vm/dirty_expire_centisecs": "3000",
    "vm/dirty_writeback_centisecs": "500",
    "vm/swappiness": "60",
    "vm/vfs_cache_pressure": "100",
    "vm/watermark_scale_factor": "10",
    "vm/overcommit_memory": "0",
    "kernel/sched_autogroup_enabled": "1",
    "net/core/somaxconn": "4096",
    "net/core/netdev_max_backlog": "1000",
    "net/ipv4/tcp_fin_timeout": "60",
    "net/ipv4/tcp_tw_reuse": "2",
    "net/ipv4/tcp_slow_start_after_idle": "1",
    "net/ipv4/tcp_rmem": "4096\t131072\t6291456",  # not a knob: must stay untouched
}
THP = {
    "enabled": "always [madvise] never",
    "defrag": "always defer defer+madvise [madvise] never",
    "shmem_enabled": "always within_size advise [never] deny force",
}
DISKS = {
    "vda": ("none [mq-deadline] kyber", "256", "128"),
    "vdb": ("[none] mq-deadline kyber", "128", "4096"),
    "loop0": ("[none] mq-deadline kyber", "128", "128"),  # not matched by the globs
}


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def fake_root(root: Path) -> Path:
    """/proc/sys and /sys as the kernel lays them out, /sys/block entries as symlinks."""
    for rel, value in SYSCTLS.items():
        write(root / "proc" / "sys" / rel, value)
    for name, value in THP.items():
        write(root / "sys" / "kernel" / "mm" / "transparent_hugepage" / name, value)
    (root / "sys" / "block").mkdir(parents=True)
    for disk, (scheduler, nr_requests, read_ahead) in DISKS.items():
        device = root / "sys" / "devices" / "virtual" / "block" / disk
        write(device / "queue" / "scheduler", scheduler)
        write(device / "queue" / "nr_requests", nr_requests)
        write(device / "queue" / "read_ahead_kb", read_ahead)
        (root / "sys" / "block" / disk).symlink_to(Path("..") / "devices/virtual/block" / disk)
    # A partition matches "vd*" but is no device: it must never be written.
    part = root / "sys" / "block" / "vda1"
    write(part / "partition", "1")
    write(part / "queue" / "scheduler", "none [mq-deadline] kyber")
    write(part / "queue" / "read_ahead_kb", "128")
    write(part / "queue" / "nr_requests", "256")
    return root


def snapshot(root: Path) -> dict[str, str]:
    """Every file under the fake root with its content."""
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


class FakeKernel(LinuxSystem):
    """A LinuxSystem whose writes land as the kernel would take them."""

    refuse: frozenset[str] = frozenset()  # relative paths whose writes fail with EIO

    def _write(self, rel: str, text: str) -> None:
        path = self.root / rel
        if rel in self.refuse:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
        old = path.read_text()
        if "[" in old:
            options = old.replace("[", "").replace("]", "").split()
            if text not in options:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), str(path))
            path.write_text(" ".join(f"[{o}]" if o == text else o for o in options) + "\n")
            if path.name == "scheduler" and text != old:
                (path.parent / "nr_requests").write_text("256\n")
            return
        if rel.endswith("vdb/queue/nr_requests") and int(text) > 128:
            text = "128"  # the device's tag depth: taken without an error, but capped
        vm = self.root / "proc" / "sys" / "vm"
        pairs = {
            "dirty_ratio": "dirty_bytes",
            "dirty_bytes": "dirty_ratio",
            "dirty_background_ratio": "dirty_background_bytes",
            "dirty_background_bytes": "dirty_background_ratio",
        }
        if path.parent == vm and path.name in pairs and text != "0":
            (vm / pairs[path.name]).write_text("0\n")
        super()._write(rel, text)


@pytest.fixture
def spec(make_spec: Callable[..., Spec]) -> Spec:
    return make_spec(SPEC_PATH.read_text(), str(SPEC_PATH))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return fake_root(tmp_path / "root")


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    return tmp_path / "journal"


@pytest.fixture
def system(spec: Spec, root: Path, journal_dir: Path) -> FakeKernel:
    return FakeKernel(spec, root=root, journal_dir=journal_dir)


def journal_of(system: LinuxSystem) -> Path:
    return system.journal_path


def read(root: Path, rel: str) -> str:
    return (root / rel).read_text().strip()


# -- the spec and the registry ----------------------------------------------------------------


def test_spec_is_built_by_the_linux_applier(spec: Spec, root: Path, journal_dir: Path) -> None:
    assert applier_kind(spec) == "linux"
    built = make_system(spec, Target(root=root, journal_dir=journal_dir))
    assert isinstance(built, LinuxSystem)
    assert built.root == root and built.journal_dir == journal_dir
    assert built.placeholders() == {}
    assert spec.knobs["vm.overcommit_memory"].safety == "unsafe"
    assert spec.violated({"vm.dirty_background_ratio": 30, "vm.dirty_ratio": 20}, MACHINE)


def test_values_render_as_the_kernel_reads_them(spec: Spec) -> None:
    assert render(spec.knobs["kernel.sched_autogroup_enabled"], True) == "1"
    assert render(spec.knobs["block.scheduler"], "mq-deadline") == "mq-deadline"
    expire = spec.knobs["vm.dirty_expire_centisecs"]
    assert render(expire, expire.validate("30s")) == "3000"
    assert spec.knobs["block.read_ahead_kb"].validate("4MB") == 4096


# -- which files -------------------------------------------------------------------------------


def test_device_glob_meets_real_entries_only(system: FakeKernel, root: Path) -> None:
    system.start()
    files = system.files()
    queue = {d: str(root / "sys" / "block" / d / "queue") for d in ("vda", "vdb")}
    assert files["block.scheduler"] == [f"{queue['vda']}/scheduler", f"{queue['vdb']}/scheduler"]
    assert files["block.read_ahead_kb"][1] == f"{queue['vdb']}/read_ahead_kb"
    assert files["vm.dirty_ratio"] == [str(root / "proc/sys/vm/dirty_ratio")]
    every = [p for paths in files.values() for p in paths]
    assert not any("vda1" in p or "loop0" in p for p in every)
    system.stop()


def test_device_list_from_the_applier(
    make_spec: Callable[..., Spec], root: Path, journal_dir: Path
) -> None:
    text = SPEC_PATH.read_text().replace(
        'device: ["sd*", "vd*", "nvme*n*", "xvd*"]', 'device: "vdb"'
    )
    assert 'device: "vdb"' in text
    system = LinuxSystem(make_spec(text), root=root, journal_dir=journal_dir)
    system.start()
    assert [Path(p).parent.parent.name for p in system.files()["block.nr_requests"]] == ["vdb"]
    system.stop()


# -- apply ---------------------------------------------------------------------------------------


def test_apply_writes_native_forms_and_reads_back(system: FakeKernel, root: Path) -> None:
    system.start()
    report = system.apply(
        {
            "vm.dirty_ratio": 30,
            "vm.dirty_expire_centisecs": "45s",
            "kernel.sched_autogroup_enabled": False,
            "net.ipv4.tcp_tw_reuse": "1",
            "block.read_ahead_kb": "1MB",
            "transparent_hugepage.enabled": "never",
        }
    )
    assert report.not_applied == {}
    assert report.action == "online"
    assert read(root, "proc/sys/vm/dirty_ratio") == "30"
    assert read(root, "proc/sys/vm/dirty_expire_centisecs") == "4500"
    assert read(root, "proc/sys/kernel/sched_autogroup_enabled") == "0"
    assert read(root, "proc/sys/net/ipv4/tcp_tw_reuse") == "1"
    assert read(root, "sys/block/vda/queue/read_ahead_kb") == "1024"
    assert read(root, "sys/block/vdb/queue/read_ahead_kb") == "1024"
    assert read(root, "sys/block/vda1/queue/read_ahead_kb") == "128"  # the partition
    assert read(root, "sys/block/loop0/queue/read_ahead_kb") == "128"
    assert read(root, "sys/kernel/mm/transparent_hugepage/enabled") == "always madvise [never]"
    system.stop()


def test_unchanged_values_are_not_written(
    spec: Spec, root: Path, journal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = FakeKernel(spec, root=root, journal_dir=journal_dir)
    written: list[str] = []
    real = FakeKernel._write
    monkeypatch.setattr(
        FakeKernel, "_write", lambda self, rel, text: (written.append(rel), real(self, rel, text))
    )
    system.start()
    report = system.apply({"vm.swappiness": 60, "transparent_hugepage.defrag": "madvise"})
    assert report.not_applied == {}
    assert written == []
    assert not journal_of(system).exists()  # nothing written, nothing journaled
    system.apply({"block.scheduler": "mq-deadline"})
    assert written == ["sys/block/vdb/queue/scheduler"]  # vda already runs it
    system.stop()


def test_what_the_kernel_did_not_take_is_reported(system: FakeKernel, root: Path) -> None:
    system.start()
    report = system.apply({"block.scheduler": "bfq", "block.nr_requests": 512, "vm.swappiness": 1})
    assert set(report.not_applied) == {"block.scheduler", "block.nr_requests"}
    scheduler = report.not_applied["block.scheduler"]
    assert "refused bfq" in scheduler and "Invalid argument" in scheduler
    assert "vda has mq-deadline" in scheduler and "vdb has none" in scheduler
    assert report.not_applied["block.nr_requests"] == "wanted 512; vdb has 128"
    assert read(root, "sys/block/vda/queue/nr_requests") == "512"
    assert read(root, "proc/sys/vm/swappiness") == "1"
    system.stop()


def test_scheduler_is_switched_before_nr_requests(system: FakeKernel, root: Path) -> None:
    # A scheduler switch resets nr_requests: written in the other order, it would be lost.
    system.start()
    report = system.apply({"block.nr_requests": 64, "block.scheduler": "kyber"})
    assert report.not_applied == {}
    assert read(root, "sys/block/vda/queue/scheduler") == "none mq-deadline [kyber]"
    assert read(root, "sys/block/vda/queue/nr_requests") == "64"
    assert read(root, "sys/block/vdb/queue/nr_requests") == "64"
    system.stop()
    assert read(root, "sys/block/vda/queue/scheduler") == "none [mq-deadline] kyber"
    assert read(root, "sys/block/vda/queue/nr_requests") == "256"
    assert read(root, "sys/block/vdb/queue/nr_requests") == "128"


def test_invalid_values_and_unknown_knobs_write_nothing(system: FakeKernel, root: Path) -> None:
    before = snapshot(root)
    system.start()
    with pytest.raises(KnobValueError):
        system.apply({"vm.dirty_ratio": 30, "vm.swappiness": 500})
    with pytest.raises(KnobValueError):
        system.apply({"block.scheduler": "cfq; reboot"})
    with pytest.raises(SystemError_, match="not driven"):
        system.apply({"vm.dirty_ratio": 30, "vm.drop_caches": 3})
    assert snapshot(root) == before
    assert not journal_of(system).exists()
    system.stop()


def test_a_knob_missing_on_this_host_is_reported(
    spec: Spec, root: Path, journal_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (root / "proc/sys/kernel/sched_autogroup_enabled").unlink()
    system = FakeKernel(spec, root=root, journal_dir=journal_dir)
    with caplog.at_level(logging.WARNING, logger="autotune.systems.linux"):
        system.start()
    assert "kernel.sched_autogroup_enabled" in caplog.text
    report = system.apply({"kernel.sched_autogroup_enabled": False, "vm.swappiness": 10})
    assert list(report.not_applied) == ["kernel.sched_autogroup_enabled"]
    assert "not on this host" in report.not_applied["kernel.sched_autogroup_enabled"]
    assert not (root / "proc/sys/kernel/sched_autogroup_enabled").exists()  # never created
    system.stop()


def test_the_plain_writer_replaces_file_contents(spec: Spec, root: Path, journal_dir: Path) -> None:
    # The real writer (no FakeKernel): O_TRUNC, no O_CREAT, a trailing newline like echo.
    system = LinuxSystem(spec, root=root, journal_dir=journal_dir)
    system.start()
    assert system.apply({"vm.dirty_ratio": 7, "block.scheduler": "kyber"}).not_applied == {}
    assert (root / "proc/sys/vm/dirty_ratio").read_text() == "7\n"
    assert (root / "sys/block/vda/queue/scheduler").read_text() == "kyber\n"
    system.stop()
    assert (root / "proc/sys/vm/dirty_ratio").read_text() == "20\n"
    assert (root / "sys/block/vda/queue/scheduler").read_text() == "mq-deadline\n"


# -- the journal ----------------------------------------------------------------------------------


def test_journal_is_written_before_the_first_write(
    system: FakeKernel, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, object]] = []
    real = FakeKernel._write

    def spy(self: FakeKernel, rel: str, text: str) -> None:
        assert self.journal_path.exists(), "a write before the journal"
        seen.append(json.loads(self.journal_path.read_text()))
        real(self, rel, text)

    monkeypatch.setattr(FakeKernel, "_write", spy)
    system.start()
    assert not journal_of(system).exists()
    system.apply({"vm.dirty_ratio": 30, "block.read_ahead_kb": 256})
    doc = seen[0]
    assert doc["version"] == 1 and doc["root"] == str(root.resolve()) and doc["pid"] == os.getpid()
    entries = {e["path"]: e["value"] for e in doc["files"]}  # type: ignore[union-attr]
    assert entries["proc/sys/vm/dirty_ratio"] == "20"
    assert entries["proc/sys/vm/dirty_bytes"] == "0"  # the partner comes along
    assert entries["sys/block/vda/queue/scheduler"] == "mq-deadline"  # the bracketed word
    assert entries["sys/block/vdb/queue/read_ahead_kb"] == "4096"
    assert entries["sys/kernel/mm/transparent_hugepage/shmem_enabled"] == "never"
    assert not any("vda1" in p or "loop0" in p or "tcp_rmem" in p for p in entries)
    assert len(entries) == 25  # 20 knobs, vdb's 3 block files, 2 partners
    paths = [e["path"] for e in doc["files"]]  # type: ignore[union-attr]
    assert paths.index("proc/sys/vm/dirty_bytes") < paths.index("proc/sys/vm/dirty_ratio")
    assert all(len(s) == len(seen[0]) for s in seen)
    assert [p.name for p in system.journal_dir.iterdir() if p.suffix == ".tmp"] == []
    system.stop()


def test_stop_restores_everything_and_removes_the_journal(system: FakeKernel, root: Path) -> None:
    before = snapshot(root)
    system.start()
    system.apply(
        {
            "vm.dirty_ratio": 40,
            "vm.dirty_background_ratio": 5,
            "block.scheduler": "kyber",
            "block.nr_requests": 32,
            "transparent_hugepage.defrag": "never",
            "net.core.somaxconn": 1024,
        }
    )
    assert journal_of(system).exists()
    assert snapshot(root) != before
    system.stop()
    assert snapshot(root) == before
    assert not journal_of(system).exists()


def test_restore_is_idempotent(system: FakeKernel, root: Path) -> None:
    before = snapshot(root)
    system.start()
    system.apply({"vm.swappiness": 5})
    system.restore()
    assert snapshot(root) == before
    (root / "proc/sys/vm/swappiness").write_text("33\n")  # someone else's change, after us
    system.restore()  # a second restore (SIGTERM during the first, or stop after restore)
    system.stop()
    system.stop()
    assert read(root, "proc/sys/vm/swappiness") == "33"
    assert not journal_of(system).exists()


def test_a_second_start_does_not_undo_the_first(system: FakeKernel, root: Path) -> None:
    system.start()
    system.apply({"vm.swappiness": 5})
    system.start()  # our own journal is no killed session's
    assert read(root, "proc/sys/vm/swappiness") == "5"
    assert journal_of(system).exists()
    system.stop()
    assert read(root, "proc/sys/vm/swappiness") == "60"


def test_restore_with_a_config_leaves_it_applied(system: FakeKernel, root: Path) -> None:
    system.start()
    system.apply({"vm.swappiness": 5})
    system.restore({"vm.swappiness": 10})
    assert not journal_of(system).exists()
    system.stop()
    assert read(root, "proc/sys/vm/swappiness") == "10"


def test_a_journal_left_by_a_killed_session_is_restored_on_start(
    spec: Spec, root: Path, journal_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = snapshot(root)
    first = FakeKernel(spec, root=root, journal_dir=journal_dir)
    first.start()
    first.apply({"vm.dirty_ratio": 50, "block.scheduler": "kyber", "block.read_ahead_kb": 0})
    first._unlock()  # killed: no restore; the kernel drops its lock
    del first
    assert snapshot(root) != before
    nxt = LinuxSystem(spec, root=root, journal_dir=journal_dir, knobs=["vm.swappiness"])
    with caplog.at_level(logging.WARNING, logger="autotune.systems.linux"):
        nxt.start()
    assert "did not finish" in caplog.text and "restored 25" in caplog.text
    assert not nxt.journal_path.exists()
    # The journal holds the bracketed word; the plain writer puts back that word, which the
    # kernel turns into its bracketed list: compare values, not file bytes.
    assert read(root, "sys/block/vda/queue/read_ahead_kb") == "128"
    assert read(root, "proc/sys/vm/dirty_ratio") == "20"
    assert read(root, "sys/block/vda/queue/scheduler") == "mq-deadline"
    assert read(root, "sys/block/vdb/queue/scheduler") == "none"
    nxt.stop()


def test_kill_9_leaves_a_journal_that_the_next_start_restores(
    root: Path, journal_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A real process, really killed: its flock goes with it, its journal stays.
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from autotune.spec import load_spec
        from autotune.systems.linux import LinuxSystem
        spec = load_spec({str(SPEC_PATH)!r})
        system = LinuxSystem(spec, root=Path({str(root)!r}), journal_dir=Path({str(journal_dir)!r}))
        system.start()
        system.apply({{"vm.swappiness": 7, "block.scheduler": "kyber"}})
        print("applied", flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "applied"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    assert read(root, "proc/sys/vm/swappiness") == "7"
    nxt = LinuxSystem(load_spec(SPEC_PATH), root=root, journal_dir=journal_dir)
    with caplog.at_level(logging.WARNING, logger="autotune.systems.linux"):
        nxt.start()
    assert f"pid {child.pid}" in caplog.text
    assert read(root, "proc/sys/vm/swappiness") == "60"
    assert read(root, "sys/block/vdb/queue/scheduler") == "none"
    assert not nxt.journal_path.exists()
    nxt.stop()


def test_a_second_session_on_the_same_root_is_refused(
    spec: Spec, root: Path, journal_dir: Path
) -> None:
    first = FakeKernel(spec, root=root, journal_dir=journal_dir)
    first.start()
    first.apply({"vm.swappiness": 5})
    second = FakeKernel(spec, root=root, journal_dir=journal_dir)
    with pytest.raises(SystemError_, match="another autotune session"):
        second.start()
    assert read(root, "proc/sys/vm/swappiness") == "5"  # the first session's journal untouched
    assert first.journal_path.exists()
    second.stop()  # never started: nothing to do
    first.stop()
    assert read(root, "proc/sys/vm/swappiness") == "60"


def test_journals_are_per_root(spec: Spec, tmp_path: Path, journal_dir: Path) -> None:
    a, b = fake_root(tmp_path / "a"), fake_root(tmp_path / "b")
    assert journal_name(a) != journal_name(b)
    assert journal_name(Path("/")).startswith("host-")
    first = FakeKernel(spec, root=a, journal_dir=journal_dir)
    first.start()
    first.apply({"vm.swappiness": 5})
    first._unlock()
    other = FakeKernel(spec, root=b, journal_dir=journal_dir)
    other.start()  # b's start leaves a's journal alone
    other.stop()
    assert read(a, "proc/sys/vm/swappiness") == "5"
    assert first.journal_path.exists()


def test_a_failed_restore_keeps_the_journal(system: FakeKernel, root: Path) -> None:
    system.start()
    system.apply({"vm.swappiness": 5, "vm.dirty_ratio": 30})
    system.refuse = frozenset({"proc/sys/vm/swappiness"})
    with pytest.raises(SystemError_, match="swappiness") as exc:
        system.restore()
    assert "journal kept" in str(exc.value)
    assert read(root, "proc/sys/vm/dirty_ratio") == "20"  # the others are put back regardless
    assert journal_of(system).exists()
    system.refuse = frozenset()
    system.stop()
    assert read(root, "proc/sys/vm/swappiness") == "60"
    assert not journal_of(system).exists()


def test_a_tampered_journal_is_refused(spec: Spec, root: Path, journal_dir: Path) -> None:
    system = FakeKernel(spec, root=root, journal_dir=journal_dir)
    journal_dir.mkdir()
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0\n")
    for rel in ("proc/sys/../../etc/passwd", "/etc/passwd", "etc/passwd", "sys/../etc/passwd"):
        doc = {"version": 1, "root": str(root.resolve()), "files": [{"path": rel, "value": "x"}]}
        system.journal_path.write_text(json.dumps(doc))
        with pytest.raises(SystemError_, match="refused path"):
            system.start()
    assert (root / "etc" / "passwd").read_text() == "root:x:0:0\n"
    assert system.journal_path.exists()  # kept for a human to look at


# -- rollback and health ------------------------------------------------------------------------


def test_rollback_returns_to_the_last_good_values(system: FakeKernel, root: Path) -> None:
    system.start()
    system.apply({"vm.swappiness": 10, "block.scheduler": "kyber"})
    system.mark_good()
    system.apply({"vm.swappiness": 90, "block.scheduler": "none", "block.nr_requests": 16})
    system.rollback()
    assert read(root, "proc/sys/vm/swappiness") == "10"
    assert read(root, "sys/block/vda/queue/scheduler") == "none mq-deadline [kyber]"
    assert read(root, "sys/block/vda/queue/nr_requests") == "256"
    system.stop()
    assert read(root, "proc/sys/vm/swappiness") == "60"


def test_healthy_means_readable(system: FakeKernel, root: Path) -> None:
    system.start()
    assert system.healthy()
    (root / "proc/sys/vm/swappiness").unlink()
    assert not system.healthy()
    (root / "proc/sys/vm/swappiness").write_text("60\n")
    system.stop()


def test_dirty_bytes_hosts_get_dirty_bytes_back(system: FakeKernel, root: Path) -> None:
    # A host that set dirty_bytes reads dirty_ratio 0; writing dirty_ratio zeroes dirty_bytes.
    (root / "proc/sys/vm/dirty_bytes").write_text("268435456\n")
    (root / "proc/sys/vm/dirty_ratio").write_text("0\n")
    system.start()
    assert system.apply({"vm.dirty_ratio": 30}).not_applied == {}
    assert read(root, "proc/sys/vm/dirty_bytes") == "0"
    system.stop()
    assert read(root, "proc/sys/vm/dirty_bytes") == "268435456"
    assert read(root, "proc/sys/vm/dirty_ratio") == "0"


# -- refused names and paths --------------------------------------------------------------------


def _bad_spec(spec: Spec, *, name: str | None = None, applier: object = None) -> Spec:
    knobs = dict(spec.knobs)
    if name is not None:
        knobs[name] = Knob(name=name, type="integer", default=1, min=0, max=10)
    return Spec(system="linux", knobs=knobs, applier=applier or spec.applier, path="bad.yaml")


@pytest.mark.parametrize(
    "name", ["vm..dirty_ratio", "../../etc/passwd", "vm/../../etc", "vm.", ".vm", "vm.a b"]
)
def test_knob_names_that_are_no_sysctl_path_are_refused(
    spec: Spec, root: Path, journal_dir: Path, name: str
) -> None:
    with pytest.raises(SystemError_, match="refused path part"):
        LinuxSystem(_bad_spec(spec, name=name), root=root, journal_dir=journal_dir)


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "../etc/passwd",
        "block/{device}/../../../etc/passwd",
        "block/./{device}/queue/scheduler",
        "{device}/queue/scheduler",
        "block/{device}/{device}",
        "block/{device}x/queue",
        "block//queue",
    ],
)
def test_sysfs_paths_that_leave_sys_are_refused(
    spec: Spec, root: Path, journal_dir: Path, path: str
) -> None:
    applier = {**spec.applier, "sysfs": {**spec.applier["sysfs"], "block.scheduler": path}}
    with pytest.raises(SystemError_, match=r"applier\.sysfs\.block\.scheduler"):
        LinuxSystem(_bad_spec(spec, applier=applier), root=root, journal_dir=journal_dir)


@pytest.mark.parametrize("device", ["../*", "a/b", ".*", "", ["vd*", "../x"], 3])
def test_device_globs_that_are_no_names_are_refused(
    spec: Spec, root: Path, journal_dir: Path, device: object
) -> None:
    applier = {**spec.applier, "device": device}
    with pytest.raises(SystemError_, match=r"applier\.device"):
        LinuxSystem(_bad_spec(spec, applier=applier), root=root, journal_dir=journal_dir)


def test_a_sysfs_knob_not_in_the_spec_is_refused(spec: Spec, root: Path, journal_dir: Path) -> None:
    applier = {**spec.applier, "sysfs": {"block.elevator": "block/{device}/queue/scheduler"}}
    with pytest.raises(SystemError_, match="not a knob"):
        LinuxSystem(_bad_spec(spec, applier=applier), root=root, journal_dir=journal_dir)
    with pytest.raises(SystemError_, match="not in the spec"):
        LinuxSystem(spec, root=root, journal_dir=journal_dir, knobs=["vm.nope"])


def test_a_symlink_out_of_sys_is_not_followed(
    spec: Spec, root: Path, journal_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "enabled").write_text("always [madvise] never\n")
    thp = root / "sys/kernel/mm/transparent_hugepage"
    (thp / "enabled").unlink()
    (thp / "enabled").symlink_to(outside / "enabled")
    system = FakeKernel(spec, root=root, journal_dir=journal_dir)
    system.start()
    report = system.apply({"transparent_hugepage.enabled": "never"})
    assert "not on this host" in report.not_applied["transparent_hugepage.enabled"]
    assert (outside / "enabled").read_text() == "always [madvise] never\n"
    system.stop()


def test_current_is_the_hosts_values_at_start_whatever_is_applied_later(
    system: FakeKernel, root: Path
) -> None:
    system.start()
    try:
        found = system.current()
        assert found["vm.swappiness"] == 60 and found["transparent_hugepage.enabled"] == "madvise"
        assert found["block.scheduler"] == "mq-deadline"  # the first device's (vda)
        assert found["block.read_ahead_kb"] == 128
        assert found["kernel.sched_autogroup_enabled"] is True
        system.apply({"vm.swappiness": 10, "transparent_hugepage.enabled": "never"})
        assert read(root, "proc/sys/vm/swappiness") == "10"
        assert system.current() == found  # what the host ran before the session
    finally:
        system.stop()
