"""A private, throwaway PostgreSQL cluster: initdb, start, stop, remove.

PostgreSQL refuses to run as root, so when we are root every server-side
command runs as the ``postgres`` OS user. The cluster listens on a free
loopback port and a private socket directory, and its directory carries the
owner's pid so that a later run can sweep clusters left by a killed process.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from autotune.systems._base import SystemError_
from autotune.systems._proc import free_port, pid_alive

PREFIX = "autotune-pg-"
SERVER_USER = "postgres"


def find_bindir() -> Path:
    """PostgreSQL's server binaries: $AUTOTUNE_PG_BINDIR, then PATH, then Debian's layout."""
    env = os.environ.get("AUTOTUNE_PG_BINDIR")
    if env:
        return Path(env)
    found = shutil.which("pg_ctl")
    if found and (Path(found).resolve().parent / "initdb").exists():
        return Path(found).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
    )
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise SystemError_(
        "PostgreSQL server binaries not found: install postgresql-15 "
        "(apt-get install postgresql-15) or set AUTOTUNE_PG_BINDIR"
    )


def find_program(name: str) -> str:
    """A client program such as pgbench, from PATH or beside the server binaries."""
    found = shutil.which(name)
    if found:
        return found
    candidate = find_bindir() / name
    if candidate.exists():
        return str(candidate)
    raise SystemError_(f"{name} not found: install postgresql-15 / postgresql-client-15")


def _as_root() -> bool:
    return os.geteuid() == 0


def _reachable_by_others(path: Path) -> bool:
    """Whether a non-root user can traverse every directory down to ``path``."""
    for part in [path, *path.parents]:
        if part.exists() and not os.stat(part).st_mode & 0o001:
            return False
    return True


def default_root() -> Path:
    """Where sandboxes live: $AUTOTUNE_WORKDIR or ./.autotune, else the temp dir.

    As root the postgres user must reach the directory, and a unix socket
    path must stay under 107 bytes, so fall back to the temp dir when not.
    """
    root = Path(os.environ.get("AUTOTUNE_WORKDIR") or ".autotune").resolve() / "sandboxes"
    if len(str(root)) > 60 or (_as_root() and not _reachable_by_others(root.parent)):
        return Path(tempfile.gettempdir())
    return root


CONF_MARK = "\n# autotune sandbox\n"


class Sandbox:
    """One private cluster. ``create`` then ``start``; ``destroy`` always cleans up."""

    def __init__(self, root: Path | None = None, bindir: Path | None = None) -> None:
        self.root = root or default_root()
        self.bindir = bindir or find_bindir()
        self.dir: Path | None = None
        self.port = 0

    # -- paths ------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        assert self.dir is not None, "sandbox not created"
        return self.dir / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.dir is not None, "sandbox not created"
        return self.dir

    @property
    def log_path(self) -> Path:
        assert self.dir is not None, "sandbox not created"
        return self.dir / "server.log"

    def conn_params(self) -> dict[str, str]:
        return {
            "host": str(self.socket_dir),
            "port": str(self.port),
            "user": SERVER_USER,
            "dbname": "postgres",
        }

    # -- running commands ---------------------------------------------------------
    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a server binary, as the postgres user when we are root."""
        kwargs: dict[str, object] = {}
        if _as_root():
            entry = pwd.getpwnam(SERVER_USER)
            kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
        proc = subprocess.Popen(  # type: ignore[call-overload]
            [str(self.bindir / args[0]), *args[1:]],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.dir,
            env=env,
            start_new_session=True,  # a Ctrl-C in the terminal is ours to handle
            **kwargs,
        )
        # A Ctrl-C must not kill pg_ctl halfway through a start or stop: that leaves a
        # server nobody waits for. Let it finish, then pass the interrupt on.
        interrupted: BaseException | None = None
        deadline = time.monotonic() + timeout
        while True:
            try:
                out, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
                break
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                raise
            except KeyboardInterrupt as exc:
                interrupted = exc
        if interrupted is not None:
            raise interrupted
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    # -- lifecycle ----------------------------------------------------------------
    def create(self) -> None:
        sweep_stale(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=PREFIX, dir=self.root))
        (self.dir / "owner.pid").write_text(str(os.getpid()))
        if _as_root():
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self.dir.chmod(0o755)
        result = self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            SERVER_USER,
            "--auth=trust",
            "--no-sync",
            "--encoding=UTF8",
            "--locale=C",
        )
        if result.returncode != 0:
            raise SystemError_(f"initdb failed: {result.stderr.strip()}")
        self.port = free_port()
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(self._own_conf())

    def _own_conf(self) -> str:
        """The sandbox's own lines at the end of postgresql.conf: its port and socket."""
        return (
            f"{CONF_MARK}"
            f"port = {self.port}\n"
            "listen_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
        )

    def replace_data(self, source: Path, timeout_s: float = 60) -> None:
        """Stop, replace the data directory by a copy of ``source`` (a kept dataset, see
        ``_datasets``), give it this sandbox's port and socket, and start again."""
        from autotune.systems.postgres._datasets import copy_into

        self.stop()
        owner = None
        if _as_root():
            entry = pwd.getpwnam(SERVER_USER)
            owner = (entry.pw_uid, entry.pw_gid)
        copy_into(source, self.data_dir, owner)
        conf = self.data_dir / "postgresql.conf"
        text = conf.read_text()
        conf.write_text(text.split(CONF_MARK)[0] + self._own_conf())
        self.start(timeout_s)

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int, lines: int = 25) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def start(self, timeout_s: float = 60) -> None:
        offset = self.log_size()
        result = self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_path),
            "-w",
            "-t",
            str(int(timeout_s)),
            "start",
            timeout=timeout_s + 30,
        )
        if result.returncode != 0:
            excerpt = self.log_since(offset) or result.stderr.strip()
            self.stop(mode="immediate")
            raise SystemError_("PostgreSQL did not start", excerpt)

    def running(self) -> bool:
        if self.dir is None or not self.data_dir.exists():
            return False
        return self._run("pg_ctl", "-D", str(self.data_dir), "status").returncode == 0

    def stop(self, mode: str = "fast", timeout_s: float = 60) -> None:
        if self.dir is None or not (self.data_dir / "postmaster.pid").exists():
            return
        result = self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-m",
            mode,
            "-w",
            "-t",
            str(int(timeout_s)),
            "stop",
            timeout=timeout_s + 30,
        )
        if result.returncode != 0 and mode != "immediate" and self.running():
            self.stop(mode="immediate", timeout_s=timeout_s)

    def restart(self, timeout_s: float = 60) -> None:
        self.stop()
        self.start(timeout_s)

    def destroy(self) -> None:
        """Stop the server and remove every file; safe to call twice."""
        if self.dir is None:
            return
        try:
            self.stop()
        finally:
            _stop_postmaster(self.data_dir)
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def _stop_postmaster(data_dir: Path) -> None:
    """Last resort when pg_ctl could not stop it: signal the postmaster directly."""
    pid_file = data_dir / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, 3)  # SIGQUIT: immediate shutdown
    for _ in range(50):
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, 9)


def sweep_stale(root: Path) -> list[Path]:
    """Remove sandboxes whose owning autotune process is gone (it was killed)."""
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for path in root.glob(PREFIX + "*"):
        try:
            owner = int((path / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if pid_alive(owner):
            continue
        box = Sandbox(root=root)
        box.dir = path
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            box.stop(mode="immediate")
        _stop_postmaster(path / "data")
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
