"""The Linux kernel as a tunable system: sysctls under /proc/sys, files under /sys.

Paths come only from the spec: a sysctl knob's name with dots as slashes under
``proc/sys``, or the ``applier.sysfs`` path of a sysfs knob under ``sys``,
where ``{device}`` stands for each entry of the directory above it (``/sys/block``)
whose name matches one of the ``applier.device`` globs. Names and paths with
empty, ``.`` or ``..`` parts, absolute paths, or paths that resolve outside
``proc/sys`` or ``sys`` are refused, so nothing a user or an optimiser produces
is ever pasted into a path; values pass ``Knob.validate`` before they are
written.

Each value is read first (an unchanged file is not written), written as the
kernel reads it (integers and booleans as integers, enums as the string), then
read back; files such as ``scheduler`` (``mq-deadline kyber [none]``) report the
bracketed word. What the kernel refused or silently did not take goes to
``ApplyReport.not_applied`` with what the file holds.

The journal
-----------
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
import fnmatch
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from autotune.spec import Config, Knob, KnobValueError, Spec, Value
from autotune.systems._base import ApplyReport, System, SystemError_

log = logging.getLogger("autotune.systems.linux")

DEFAULT_DEVICES = ("sd*", "vd*", "nvme*n*", "xvd*")
JOURNAL_VERSION = 1
_PART_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:+-]*$")
_DEVICE_GLOB_RE = re.compile(r"^[A-Za-z0-9_*?\[\]!:+-][A-Za-z0-9_.*?\[\]!:+-]*$")
_BRACKETED = re.compile(r"\[([^\]\s]+)\]")
_MAX_VALUE_LEN = 4096
# Writing one of a pair zeroes the other (vm.rst): the pair is journaled together,
# partner first, so a host that used dirty_bytes gets it back without an instant
# at dirty_ratio 0.
_PARTNERS = {
    "vm.dirty_ratio": "vm.dirty_bytes",
    "vm.dirty_bytes": "vm.dirty_ratio",
    "vm.dirty_background_ratio": "vm.dirty_background_bytes",
    "vm.dirty_background_bytes": "vm.dirty_background_ratio",
}


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


def _current(text: str) -> str:
    """A file's value: the bracketed word of ``a [b] c`` files, else the stripped text."""
    match = _BRACKETED.search(text)
    return match.group(1) if match else text.strip()


def render(knob: Knob, value: Value) -> str:
    """``value`` (already validated) as the kernel reads it."""
    if knob.type == "bool":
        return "1" if value else "0"
    if knob.type == "enum":
        return str(value)
    if knob.type == "integer":
        return str(int(value))
    return f"{float(value):.10g}"


def _same(knob: Knob, text: str, wanted: Value) -> bool:
    try:
        return knob.validate(text) == wanted
    except KnobValueError:
        return text == render(knob, wanted)


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


class LinuxSystem(System):
    """Kernel parameters of the host at ``root`` (tests point it at a copy)."""

    def __init__(
        self,
        spec: Spec,
        root: Path = Path("/"),
        journal_dir: Path | None = None,
        knobs: Sequence[str] | None = None,
    ) -> None:
        self.spec = spec
        self.root = Path(root)
        self.journal_dir = Path(journal_dir) if journal_dir is not None else default_journal_dir()
        self.journal_path = self.journal_dir / journal_name(self.root)
        self.lock_path = self.journal_path.with_suffix(".lock")
        problems: list[str] = []
        applier = spec.applier if isinstance(spec.applier, dict) else {}
        names = list(spec.knobs) if knobs is None else list(knobs)
        for name in names:
            if name not in spec.knobs:
                problems.append(f"knob {name!r} is not in the spec")
        self.knob_names = [n for n in spec.knobs if n in names]
        self.devices = self._device_globs(applier.get("device", list(DEFAULT_DEVICES)), problems)
        self.sysfs = self._sysfs_templates(applier.get("sysfs") or {}, problems)
        for name in self.knob_names:
            if name not in self.sysfs:
                problems.extend(_check_parts(self._sysctl_parts(name), f"knob {name!r}"))
        if problems:
            raise SystemError_(f"spec {spec.path}: " + "; ".join(problems))
        self._files: dict[str, list[_File]] = {}  # knob -> its files on this host
        self._missing: dict[str, str] = {}  # knob -> why it has no file here
        self._tracked: list[_File] = []  # every file we may touch, in restore order
        self._original: dict[str, str] = {}  # rel -> value at start
        self._good: dict[str, str] = {}
        self._journaled = False
        self._lock: IO[bytes] | None = None

    # -- paths ------------------------------------------------------------------------
    @staticmethod
    def _device_globs(raw: object, problems: list[str]) -> tuple[str, ...]:
        globs = [raw] if isinstance(raw, str) else raw
        if not isinstance(globs, list) or not globs:
            problems.append("applier.device must be a glob or a list of globs")
            return ()
        out = []
        for glob in globs:
            if not isinstance(glob, str) or not _DEVICE_GLOB_RE.match(glob):
                problems.append(f"applier.device: refused glob {glob!r}")
            else:
                out.append(glob)
        return tuple(out)

    def _sysfs_templates(self, raw: object, problems: list[str]) -> dict[str, tuple[str, ...]]:
        if not isinstance(raw, dict):
            problems.append("applier.sysfs must map knob names to paths under /sys")
            return {}
        out = {}
        for name, template in raw.items():
            what = f"applier.sysfs.{name}"
            if name not in self.spec.knobs:
                problems.append(f"{what}: not a knob of the spec")
                continue
            if not isinstance(template, str) or template.startswith("/"):
                problems.append(f"{what}: must be a path relative to /sys")
                continue
            parts = tuple(template.split("/"))
            found = _check_parts(parts, what, allow_device=True)
            if parts.count("{device}") > 1 or parts[:1] == ("{device}",):
                found.append(f"{what}: {{device}} must be one part below a directory")
            problems.extend(found)
            if not found:
                out[str(name)] = parts
        return out

    @staticmethod
    def _sysctl_parts(name: str) -> tuple[str, ...]:
        return tuple(name.split("."))

    def _inside(self, path: Path, base: Path) -> bool:
        try:
            path.resolve().relative_to(base.resolve())
        except (OSError, ValueError):
            return False
        return True

    def _resolve_files(self) -> None:
        """Find every knob's files on this host: the device glob meets real entries."""
        self._files, self._missing = {}, {}
        proc_sys, sys_dir = self.root / "proc" / "sys", self.root / "sys"
        for name in self.knob_names:
            files: list[_File] = []
            if name not in self.sysfs:
                rel = "/".join(("proc", "sys", *self._sysctl_parts(name)))
                files.append(_File(name, rel))
                base = proc_sys
            else:
                parts, base = self.sysfs[name], sys_dir
                if "{device}" not in parts:
                    files.append(_File(name, "/".join(("sys", *parts))))
                else:
                    i = parts.index("{device}")
                    for device in self._match_devices(sys_dir.joinpath(*parts[:i])):
                        rel_parts = (*parts[:i], device, *parts[i + 1 :])
                        files.append(_File(name, "/".join(("sys", *rel_parts)), device))
            present = [
                f
                for f in files
                if (self.root / f.rel).is_file() and self._inside(self.root / f.rel, base)
            ]
            if present:
                self._files[name] = present
            elif files:
                where = " or ".join("/" + f.rel for f in files)
                self._missing[name] = f"not on this host: no {where}"
            else:
                self._missing[name] = f"no block device matches {list(self.devices)}"

    def _match_devices(self, parent: Path) -> list[str]:
        """Entries of ``parent`` matching a device glob; partitions are not devices."""
        try:
            entries = sorted(os.listdir(parent))
        except OSError:
            return []
        out = []
        for entry in entries:
            if entry.startswith(".") or not _PART_RE.match(entry):
                continue
            if not any(fnmatch.fnmatchcase(entry, glob) for glob in self.devices):
                continue
            if not (parent / entry).is_dir() or (parent / entry / "partition").exists():
                continue
            out.append(entry)
        return out

    def _order(self) -> list[_File]:
        """Every file, in the order writes and restores go: the spec's knob order (the
        scheduler before nr_requests, which a scheduler switch resets), a partner
        before its knob."""
        out: list[_File] = []
        seen: set[str] = set()
        proc_sys = self.root / "proc" / "sys"
        for name in self.knob_names:
            partner = _PARTNERS.get(name)
            if partner and name not in self.sysfs and partner not in self.sysfs:
                rel = "/".join(("proc", "sys", *self._sysctl_parts(partner)))
                path = self.root / rel
                if rel not in seen and path.is_file() and self._inside(path, proc_sys):
                    out.append(_File(partner, rel))
                    seen.add(rel)
            for f in self._files.get(name, []):
                if f.rel not in seen:
                    out.append(f)
                    seen.add(f.rel)
        return out

    # -- file access --------------------------------------------------------------------
    def _read(self, rel: str) -> str:
        """The file's current value (bracketed word for choice files)."""
        with open(self.root / rel) as fh:
            return _current(fh.read())

    def _write(self, rel: str, text: str) -> None:
        """Write ``text`` as ``echo text > file`` would; never creates a file."""
        fd = os.open(self.root / rel, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, (text + "\n").encode())
        finally:
            os.close(fd)

    def _read_all(self, files: Iterable[_File]) -> dict[str, str]:
        out = {}
        for f in files:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                out[f.rel] = self._read(f.rel)
        return out

    def _put_back(self, values: dict[str, str], files: Sequence[_File]) -> dict[str, str]:
        """Write ``values`` (rel -> text) in ``files`` order where the file differs;
        return the files that do not hold their value afterwards, with why."""
        failed: dict[str, str] = {}
        for f in files:
            if f.rel not in values:
                continue
            try:
                if self._read(f.rel) != values[f.rel]:
                    self._write(f.rel, values[f.rel])
            except FileNotFoundError:
                log.warning("/%s is gone (device removed?); nothing to put back", f.rel)
            except OSError as exc:
                failed[f.rel] = f"cannot write {values[f.rel]!r}: {exc.strerror}"
        for f in files:
            if f.rel not in values or f.rel in failed:
                continue
            try:
                now = self._read(f.rel)
            except FileNotFoundError:
                continue
            except OSError as exc:
                failed[f.rel] = f"cannot read back: {exc.strerror}"
                continue
            if now != values[f.rel]:
                failed[f.rel] = f"wanted {values[f.rel]!r}, kernel has {now!r}"
        return failed

    # -- the journal ----------------------------------------------------------------------
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

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Lock the root, restore a journal left by a killed session, snapshot the host.
        A second call while started does nothing (it would take our own journal for a
        killed session's)."""
        if self._lock is not None:
            return
        try:
            self._lock_root()
        except OSError as exc:
            raise SystemError_(
                f"cannot use the journal directory {self.journal_dir}: {exc.strerror or exc}"
            ) from None
        try:
            self._recover()
            self._resolve_files()
            for name, why in self._missing.items():
                log.warning("%s: %s; it will be reported as not applied", name, why)
            self._tracked = self._order()
            self._original = self._read_all(self._tracked)
            unreadable = ["/" + f.rel for f in self._tracked if f.rel not in self._original]
            if unreadable:
                raise SystemError_(f"cannot read {', '.join(unreadable)}")
            writable = [f for f in self._tracked if os.access(self.root / f.rel, os.W_OK)]
            if self._tracked and not writable:
                raise SystemError_(
                    f"cannot write any kernel parameter under {self.root}: run as root, "
                    "with /proc/sys and /sys mounted read-write"
                )
            self._good = dict(self._original)
        except BaseException:
            self._unlock()
            raise

    def format_config(self, config: Config) -> dict[str, Value]:
        """Every value checked against the spec (KnobValueError) before anything is written."""
        out: dict[str, Value] = {}
        for name, value in config.items():
            knob = self.spec.knobs.get(name)
            if knob is None or name not in self.knob_names:
                raise SystemError_(f"knob {name!r} is not driven by this system ({self.spec.path})")
            out[name] = knob.validate(value)
        return out

    def apply(self, config: Config) -> ApplyReport:
        wanted = self.format_config(config)
        if self._lock is None:
            raise SystemError_("apply() before start()")
        report = ApplyReport(action="online")
        t0 = time.monotonic()
        refused: dict[str, list[str]] = {}
        for name in self.knob_names:  # spec order: the scheduler before nr_requests
            if name not in wanted or name not in self._files:
                continue
            knob, value = self.spec.knobs[name], wanted[name]
            text = render(knob, value)
            for f in self._files[name]:
                if _same(knob, self._peek(f.rel) or "", value):
                    continue
                if not self._journaled:
                    self._write_journal()  # the originals are safe before the first write
                try:
                    self._write(f.rel, text)
                except OSError as exc:
                    refused.setdefault(name, []).append(
                        f"{f.device + ' ' if f.device else ''}refused {text}: {exc.strerror or exc}"
                    )
        report.apply_s = time.monotonic() - t0
        report.not_applied = self._read_back(wanted, refused)
        return report

    def _read_back(self, wanted: dict[str, Value], refused: dict[str, list[str]]) -> dict[str, str]:
        problems: dict[str, str] = {}
        for name, value in wanted.items():
            if name in self._missing:
                problems[name] = self._missing[name]
                continue
            knob = self.spec.knobs[name]
            off: list[str] = []
            for f in self._files[name]:
                try:
                    now = self._read(f.rel)
                except OSError as exc:
                    off.append(f"{f.device or 'file'} unreadable: {exc.strerror}")
                    continue
                if not _same(knob, now, value):
                    off.append(f"{f.device + ' ' if f.device else ''}has {now}")
            if off or name in refused:
                why = refused.get(name, []) + off
                problems[name] = f"wanted {render(knob, value)}; " + ", ".join(why)
        return problems

    def mark_good(self) -> None:
        self._good = {**self._good, **self._read_all(self._tracked)}

    def healthy(self) -> bool:
        """Whether every file this system drives can still be read."""
        for f in self._tracked:
            try:
                self._read(f.rel)
            except (OSError, UnicodeDecodeError):
                return False
        return True

    def rollback(self) -> None:
        """Back to the values of the last ``mark_good`` (the originals before any)."""
        failed = self._put_back(self._good, self._tracked)
        if failed:
            raise SystemError_(
                "could not roll back kernel parameters: "
                + "; ".join(f"/{rel}: {why}" for rel, why in failed.items())
            )

    def restore(self, config: Config | None = None) -> None:
        """Put the host's values back and drop the journal; idempotent. With ``config``,
        leave it applied instead: the originals are then no longer wanted back."""
        if config is not None:
            self.apply(config)
            self._remove_journal()
            self._good = self._read_all(self._tracked)
            return
        if not self._journaled:
            return  # nothing was written, or it has been restored already
        failed = self._put_back(self._original, self._tracked)
        if failed:
            raise SystemError_(
                f"could not restore kernel parameters (journal kept: {self.journal_path}): "
                + "; ".join(f"/{rel}: {why}" for rel, why in failed.items())
            )
        self._remove_journal()
        self._good = dict(self._original)

    def stop(self) -> None:
        """Restore if that has not happened yet, then release the root's lock."""
        try:
            self.restore()
        finally:
            self._unlock()

    def restartable(self) -> bool:
        return True  # nothing here needs a restart: every knob takes effect online

    def current(self) -> Config:
        """The host's values read at ``start`` (after a killed session's were put back).
        A knob on several devices takes the first device's value; a knob the host has no
        file for, or whose value the spec cannot take, is left out (logged)."""
        out: Config = {}
        for name in self.knob_names:
            files = [f for f in self._files.get(name, []) if f.rel in self._original]
            if not files:
                continue
            knob = self.spec.knobs[name]
            text = self._original[files[0].rel]
            try:
                out[name] = knob.validate(text)
            except KnobValueError as exc:
                log.info("%s: the host's value %r is outside the spec (%s)", name, text, exc)
        return out

    def placeholders(self) -> dict[str, str]:
        return {}

    def files(self) -> dict[str, list[str]]:
        """Each knob's files on this host (absolute paths), for display and tests."""
        return {n: [str(self.root / f.rel) for f in fs] for n, fs in self._files.items()}
