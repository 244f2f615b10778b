"""What the Linux system changed, kept where a killed session's successor finds it.

The kernel keeps no record of what it ran with before, so before the first
write the host's values of every file this system may touch (every matched
device) are written to a journal: JSON, written to a temp file, fsynced and
renamed into place. ``restore``/``stop`` put them back and only then remove the
journal. A session that was killed (``kill -9``, a crash, a power loss leaves
no journal worth anything, since the kernel forgot too) leaves its journal
behind; the next ``start`` of any LinuxSystem on that host and root restores it
first and logs that it did.

The journal lives in ``journal_dir`` (``Target.journal_dir``), by default
``/var/lib/autotune/linux-journal`` when running as root (the one user that can
write /proc/sys) and ``~/.autotune/linux-journal`` otherwise: a fixed place per
host, so the next session finds it whatever its working directory, store or
``$HOME`` (sudo may change it). Its name holds a hash of the resolved root, so a
test's fake root and the real one never share a journal. A lock file beside it
(``flock``, released by the kernel when the holder dies) keeps two sessions off
one root: the second would take the first's values for the originals, and
would restore the first's journal under its feet.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from autotune.spec import Spec
from autotune.systems._base import SystemError_

log = logging.getLogger("autotune.systems.linux")

JOURNAL_VERSION = 1
_PART_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:+-]*$")
_MAX_VALUE_LEN = 4096


def default_journal_dir() -> Path:
    """Where journals live unless the target says otherwise (see the module docstring)."""
    if os.geteuid() == 0:
        return Path("/var/lib/autotune/linux-journal")
    return Path.home() / ".autotune" / "linux-journal"


def journal_name(root: Path) -> str:
    """The journal's file name for ``root``: one per root, readable at a glance."""
    resolved = str(root.resolve())
    digest = hashlib.sha256(resolved.encode()).hexdigest()[:16]
    label = "host" if resolved == "/" else "root"
    return f"{label}-{digest}.json"


@dataclass(frozen=True)
class _File:
    """One kernel file a knob drives: ``rel`` is relative to the root."""

    knob: str
    rel: str
    device: str | None = None


def _check_parts(parts: Sequence[str], what: str, allow_device: bool = False) -> list[str]:
    problems = []
    if not parts:
        problems.append(f"{what}: empty path")
    for part in parts:
        if allow_device and part == "{device}":
            continue
        if part in ("", ".", "..") or not _PART_RE.match(part):
            problems.append(f"{what}: refused path part {part!r}")
    return problems


class _Journal:
    """The journal and the lock of a LinuxSystem (see the module docstring)."""

    spec: Spec
    root: Path
    journal_dir: Path
    journal_path: Path
    lock_path: Path
    _tracked: list[_File]
    _original: dict[str, str]
    _journaled: bool
    _lock: IO[bytes] | None

    def _inside(self, path: Path, base: Path) -> bool:
        raise NotImplementedError

    def _read(self, rel: str) -> str:
        raise NotImplementedError

    def _put_back(self, values: dict[str, str], files: Sequence[_File]) -> dict[str, str]:
        raise NotImplementedError

    def _lock_root(self) -> None:
        if self._lock is not None:
            return
        self.journal_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = open(self.lock_path, "a+b")  # noqa: SIM115 - held until stop()
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise SystemError_(
                    f"another autotune session is tuning the kernel parameters of "
                    f"{self.root} (lock {self.lock_path}); wait for it to end"
                ) from None
            raise
        self._lock = handle

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the descriptor releases the flock
            self._lock = None

    def _write_journal(self) -> None:
        """Journal the originals atomically: temp file, fsync, rename, fsync the dir."""
        entries = [
            {"path": f.rel, "knob": f.knob, "value": self._original[f.rel]}
            for f in self._tracked
            if f.rel in self._original
        ]
        doc = {
            "version": JOURNAL_VERSION,
            "root": str(self.root.resolve()),
            "pid": os.getpid(),
            "spec": self.spec.path,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": entries,
        }
        self.journal_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(
            prefix=self.journal_path.name + ".", suffix=".tmp", dir=self.journal_dir
        )
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(doc, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.journal_path)
            self._journaled = True
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.journal_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _remove_journal(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.journal_path.unlink()
        self._journaled = False

    def _load_journal(self) -> tuple[dict[str, Any], list[_File], dict[str, str]]:
        """A journal left behind, with its paths checked as strictly as the spec's."""
        try:
            doc = json.loads(self.journal_path.read_text())
        except (OSError, ValueError) as exc:
            raise SystemError_(
                f"cannot read the journal {self.journal_path} left by an earlier session: {exc}; "
                "restore its values by hand, then remove it"
            ) from None
        problems = []
        if not isinstance(doc, dict) or doc.get("version") != JOURNAL_VERSION:
            problems.append("unknown journal version")
            doc = {}
        if doc and doc.get("root") != str(self.root.resolve()):
            problems.append(f"it is for root {doc.get('root')!r}, not {str(self.root.resolve())!r}")
        files: list[_File] = []
        values: dict[str, str] = {}
        raw_files = doc.get("files", [])
        for entry in raw_files if isinstance(raw_files, list) else []:
            rel = entry.get("path") if isinstance(entry, dict) else None
            value = entry.get("value") if isinstance(entry, dict) else None
            if not isinstance(rel, str) or not isinstance(value, str):
                problems.append(f"bad entry {entry!r}")
                continue
            parts = rel.split("/")
            under = parts[:2] == ["proc", "sys"] or parts[:1] == ["sys"]
            base = self.root / ("proc/sys" if parts[:1] == ["proc"] else "sys")
            bad = _check_parts(parts, rel)
            if not under or bad or not self._inside(self.root / rel, base):
                problems.append(f"refused path {rel!r}")
                continue
            if len(value) > _MAX_VALUE_LEN or any(c in value for c in "\n\r\0"):
                problems.append(f"refused value for {rel!r}")
                continue
            files.append(_File(str(entry.get("knob", "")), rel))
            values[rel] = value
        if problems:
            raise SystemError_(
                f"journal {self.journal_path} left by an earlier session is not usable: "
                + "; ".join(problems)
                + "; restore its values by hand, then remove it"
            )
        return doc, files, values

    def _recover(self) -> None:
        """Put back what a session that never finished left changed, then drop its journal."""
        if not self.journal_path.exists():
            return
        doc, files, values = self._load_journal()
        changed = {rel for rel, value in values.items() if self._peek(rel) != value}
        failed = self._put_back(values, files)
        if failed:
            raise SystemError_(
                f"could not restore the kernel parameters left changed by an earlier session "
                f"(journal {self.journal_path}): "
                + "; ".join(f"/{rel}: {why}" for rel, why in failed.items())
            )
        self._remove_journal()
        log.warning(
            "restored %d kernel parameter(s) (%d changed) left by an autotune session that did "
            "not finish (pid %s, started %s); removed its journal %s",
            len(values),
            len(changed),
            doc.get("pid"),
            doc.get("created"),
            self.journal_path,
        )

    def _peek(self, rel: str) -> str | None:
        try:
            return self._read(rel)
        except (OSError, UnicodeDecodeError):
            return None
