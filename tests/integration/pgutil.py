"""Helpers for integration tests: real clusters and the real CLI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def processes_under(path: Path) -> list[str]:
    """Command lines of live processes that mention ``path`` (postmasters show -D)."""
    found = []
    needle = str(path).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def postmasters_in(root: Path) -> list[str]:
    """Postmasters whose data directory lies under ``root`` (their cmdline may not name it)."""
    found = []
    for pid_file in root.glob("**/postmaster.pid"):
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            continue
        found.append(f"pid {pid} ({pid_file.parent})")
    return found


def cli_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["AUTOTUNE_WORKDIR"] = str(workdir)
    env["AUTOTUNE_STORE"] = f"sqlite:///{workdir / 'store.db'}"
    env["COLUMNS"] = "200"
    return env


def run_cli(
    workdir: Path, *args: str, check: bool = True, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run the real ``autotune`` command line in a child process."""
    result = subprocess.run(
        [sys.executable, "-m", "autotune", *args],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=cli_env(workdir),
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"autotune {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def store_url(params: dict[str, str]) -> str:
    """A SQLAlchemy URL for a sandbox's database, over its unix socket."""
    return (
        f"postgresql+psycopg2://{params['user']}@/{params['dbname']}"
        f"?host={params['host']}&port={params['port']}"
    )


ADMIN_TOKEN = "integration-admin-token-42"


class Service:
    """A real `autotune server` and real `autotune agent` processes, for one test."""

    def __init__(self, workdir: Path, store: str, admin_token: str = ADMIN_TOKEN) -> None:
        self.workdir = workdir
        self.store = store
        self.admin_token = admin_token
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: subprocess.Popen[str] | None = None
        self.agents: dict[str, subprocess.Popen[str]] = {}
        self.logs: list[Path] = []

    def _spawn(self, log_name: str, *args: str) -> subprocess.Popen[str]:
        log = self.workdir / f"{log_name}.log"
        self.logs.append(log)
        return subprocess.Popen(
            [sys.executable, "-m", "autotune", *args],
            stdout=open(log, "a"),
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.workdir,
            # Temp files inside the workdir, which the fixture removes: an agent the
            # test SIGKILLs mid-trial cannot remove its pgbench log directory itself.
            env={**cli_env(self.workdir), "TMPDIR": str(self._tmp())},
            start_new_session=True,
        )

    def _tmp(self) -> Path:
        tmp = self.workdir / "tmp"
        tmp.mkdir(exist_ok=True)
        return tmp

    def start_server(self, lease_s: float = 60) -> None:
        self.server = self._spawn(
            "server", "server", "--store", self.store, "--port", str(self.port),
            "--admin-token", self.admin_token, "--lease-s", str(lease_s),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.server.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"server did not come up:\n{self.dump()}")

    def add_agent(self, name: str) -> str:
        lines = run_cli(self.workdir, "agents", "add", name, "--store", self.store).stdout
        lines_list = lines.splitlines()
        at = next(i for i, line in enumerate(lines_list) if "shown only now" in line)
        return lines_list[at + 1].strip()

    def start_agent(self, name: str, *extra: str, own_host: bool = True) -> subprocess.Popen[str]:
        """An agent standing for one on a machine of its own (``--host-id sim-NAME``), so
        that the server runs trials side by side; ``own_host=False``: this host's real id."""
        token = self.add_agent(name)
        host = ["--host-id", f"sim-{name}"] if own_host else []
        proc = self._spawn(
            f"agent-{name}", "agent", "--server", self.url, "--token", token,
            "--poll-s", "0.5", *host, *extra,
        )  # fmt: skip
        self.agents[name] = proc
        return proc

    def admin(self, path: str) -> object:
        response = httpx.get(
            f"{self.url}{path}",
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()

    def dump(self) -> str:
        return "\n".join(
            f"== {log.name}\n{log.read_text()[-4000:]}" for log in self.logs if log.exists()
        )

    def stop(self) -> None:
        for proc in [*self.agents.values(), self.server]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.agents.values(), self.server]:
            if proc is None:
                continue
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
