"""Helpers for integration tests: real clusters and the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


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
