"""A server process in its own process group, in a private work directory.

The server runs in a new session, so a Ctrl-C in the terminal is autotune's to
handle and the whole tree (the server and anything it forks) can be signalled
at once. Its output goes to ``server.log`` in the work directory. The work
directory records autotune's pid, so a later run can stop a server that a
killed autotune left behind: every process working in that directory
(``sweep_stale``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from pathlib import Path

from autotune.systems._proc import pid_alive

PREFIX = "autotune-gen-"
LOG_NAME = "server.log"
_OWNER = "owner.pid"


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``, from /proc: a killed
    child that its new parent has not reaped yet still counts for killpg, not here."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # state, ppid, pgrp, …
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class ServerProcess:
    """One work directory and, at most one at a time, the server running in it."""

    def __init__(self, root: Path | None = None, label: str = "server") -> None:
        self.root = Path(root) if root is not None else Path(tempfile.gettempdir())
        self.label = label
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_offset = 0  # where the current run's output starts in the log

    # -- work directory ---------------------------------------------------------------
    def create(self) -> Path:
        sweep_stale(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=PREFIX, dir=self.root))
        (self.dir / _OWNER).write_text(str(os.getpid()))
        _LIVE.add(self)
        return self.dir

    @property
    def log_path(self) -> Path:
        assert self.dir is not None, "work directory not created"
        return self.dir / LOG_NAME

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except (OSError, AssertionError):
            return 0

    def log_tail(self, lines: int = 25, since: int | None = None) -> str:
        """The last ``lines`` lines of the server's output, from ``since`` (default: the
        current run's start; the whole log when that run printed nothing)."""
        offset = self.log_offset if since is None else since
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
                if not text.strip() and offset:
                    f.seek(0)
                    text = f.read().decode(errors="replace")
        except (OSError, AssertionError):
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def note(self, text: str) -> None:
        """Append a line of autotune's own to the log (commands it ran, and how they ended)."""
        if self.dir is None:
            return
        with contextlib.suppress(OSError), open(self.log_path, "a") as log:
            log.write(f"[autotune] {text.rstrip()}\n")

    # -- the server -------------------------------------------------------------------
    def launch(self, argv: list[str], env: dict[str, str]) -> None:
        """Start ``argv`` in the work directory; FileNotFoundError when the program is missing."""
        assert self.dir is not None, "work directory not created"
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        self.log_offset = self.log_size()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                env=env,
                start_new_session=True,  # its own process group: the whole tree stops together
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def terminate(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
        """Signal the process group, wait up to ``timeout_s``, then SIGKILL what is left."""
        proc = self.proc
        if proc is None:
            return
        pgid = proc.pid
        if proc.poll() is None:
            _signal_group(pgid, sig)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _signal_group(pgid, signal.SIGKILL)
                proc.wait()
        # The leader is gone; anything it forked into the group goes too.
        deadline = time.monotonic() + min(timeout_s, 5.0)
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if group_members(pgid):
            _signal_group(pgid, signal.SIGKILL)
        self.proc = None

    def destroy(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
        """Stop the server and remove the work directory; safe to call twice."""
        try:
            self.terminate(sig, timeout_s)
        finally:
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None
            _LIVE.discard(self)


_LIVE: weakref.WeakSet[ServerProcess] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """Last resort when the interpreter exits with a server still up: no strays."""
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.destroy(signal.SIGKILL, 2.0)


def _processes_in(path: Path) -> list[int]:
    """Pids of live processes whose working directory is ``path`` (the server's tree);
    a pid recorded long ago may have been reused, a working directory is not."""
    found = []
    target = path.resolve()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if Path(os.readlink(entry / "cwd")) == target:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def sweep_stale(root: Path) -> list[Path]:
    """Stop the servers of work directories whose autotune is gone, and remove them."""
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for path in root.glob(PREFIX + "*"):
        try:
            owner = int((path / _OWNER).read_text())
        except (OSError, ValueError):
            continue
        if pid_alive(owner):
            continue
        for pid in _processes_in(path):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
