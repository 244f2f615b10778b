"""The Linux system on this very host: one harmless sysctl, changed and put back.

vm.dirty_expire_centisecs only moves when the flusher threads treat dirty data
as old; nudging it by a second for a few seconds changes nothing that matters.
The test proves the value comes back at ``stop``, and after a ``kill -9``, when
the next session starts. Whatever happens, the original value is written back
at the end. Needs root and a writable /proc/sys; skipped otherwise.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotune.spec import load_spec
from autotune.systems.linux import LinuxSystem
from tests.conftest import ROOT

KNOB = "vm.dirty_expire_centisecs"
FILE = Path("/proc/sys/vm/dirty_expire_centisecs")
SPEC = ROOT / "knobs" / "linux.yaml"

pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0, reason="real-sysctl tests need root: run the tests as root"
    ),
    pytest.mark.skipif(
        not os.access(FILE, os.W_OK),
        reason=f"real-sysctl tests need a writable {FILE}: run on a host or a privileged container",
    ),
]


def current() -> str:
    return FILE.read_text().strip()


@pytest.fixture
def original() -> Iterator[str]:
    """The host's value; written back at the end whatever the test did."""
    value = current()
    try:
        yield value
    finally:
        if current() != value:
            FILE.write_text(value + "\n")
        assert current() == value


def other_value(original: str) -> int:
    return 3100 if original != "3100" else 3200


def test_a_real_sysctl_is_restored_at_stop(original: str, tmp_path: Path) -> None:
    system = LinuxSystem(load_spec(SPEC), journal_dir=tmp_path, knobs=[KNOB])
    system.start()
    try:
        report = system.apply({KNOB: other_value(original)})
        assert report.not_applied == {}
        assert current() == str(other_value(original))
        assert system.journal_path.exists()
    finally:
        system.stop()
    assert current() == original
    assert not system.journal_path.exists()


def test_a_killed_session_is_undone_by_the_next_start(original: str, tmp_path: Path) -> None:
    wanted = other_value(original)
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from autotune.spec import load_spec
        from autotune.systems.linux import LinuxSystem
        system = LinuxSystem(
            load_spec({str(SPEC)!r}), journal_dir=Path({str(tmp_path)!r}), knobs=[{KNOB!r}]
        )
        system.start()
        report = system.apply({{{KNOB!r}: {wanted}}})
        print("applied", report.not_applied, flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 15)
        assert ready, "the child did not apply within 15 s"
        assert child.stdout.readline().strip() == "applied {}"
    finally:
        os.kill(child.pid, signal.SIGKILL)  # no restore, no cleanup: as a crash would
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert current() == str(wanted), "the killed session's value should still be in place"
    journals = list(tmp_path.glob("host-*.json"))
    assert len(journals) == 1

    t0 = time.monotonic()
    nxt = LinuxSystem(load_spec(SPEC), journal_dir=tmp_path, knobs=["vm.swappiness"])
    nxt.start()  # what the next agent start does
    try:
        assert current() == original
        assert not journals[0].exists()
        assert time.monotonic() - t0 < 5
    finally:
        nxt.stop()
    assert current() == original
