"""Temporary directories that the next autotune process sweeps if their owner was killed.

A ``TemporaryDirectory`` is removed when its ``with`` block ends, which a kill -9
never reaches: pgbench logs and materialised workloads would pile up in /tmp. Each
directory made here holds its owner's pid, and ``sweep`` (run whenever one is made)
removes those whose owner is gone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

OWNER = ".autotune-owner"
PREFIXES = (
    "autotune-workload-",
    "autotune-pgbench-",
    "autotune-cmd-",
    "autotune-verify-",
    "autotune-smac-",  # the optimiser benchmark's SMAC3 output directories
)
UNOWNED_AGE_S = 3600  # a directory without an owner file (being made, or very old)


def pid_alive(pid: int) -> bool:
    """Whether a process exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(root: Path | None = None) -> list[Path]:
    """Remove autotune's temporary directories under ``root`` (the system temp dir)
    whose owning process is gone."""
    base = Path(root or tempfile.gettempdir())
    removed: list[Path] = []
    for prefix in PREFIXES:
        for path in base.glob(prefix + "*"):
            try:
                owner = int((path / OWNER).read_text())
            except (OSError, ValueError):
                try:
                    old = time.time() - path.stat().st_mtime > UNOWNED_AGE_S
                except OSError:
                    continue
                if not old or not path.is_dir():
                    continue
            else:
                if pid_alive(owner):
                    continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


class OwnedTempDir(tempfile.TemporaryDirectory[str]):
    """A ``TemporaryDirectory`` marked with this process's pid; making one sweeps the
    leftovers of killed processes first."""

    def __init__(self, prefix: str) -> None:
        sweep()
        super().__init__(prefix=prefix)
        (Path(self.name) / OWNER).write_text(str(os.getpid()))
