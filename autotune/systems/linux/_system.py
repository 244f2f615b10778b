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

What it changes is journaled first: see ``_journal``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

from autotune.spec import Config, Knob, KnobValueError, Spec, Value
from autotune.systems._base import ApplyReport, System, SystemError_
from autotune.systems.linux._journal import (
    _PART_RE,
    _check_parts,
    _File,
    _Journal,
    default_journal_dir,
    journal_name,
)

log = logging.getLogger("autotune.systems.linux")

DEFAULT_DEVICES = ("sd*", "vd*", "nvme*n*", "xvd*")
_DEVICE_GLOB_RE = re.compile(r"^[A-Za-z0-9_*?\[\]!:+-][A-Za-z0-9_.*?\[\]!:+-]*$")
_BRACKETED = re.compile(r"\[([^\]\s]+)\]")
# Writing one of a pair zeroes the other (vm.rst): the pair is journaled together,
# partner first, so a host that used dirty_bytes gets it back without an instant
# at dirty_ratio 0.
_PARTNERS = {
    "vm.dirty_ratio": "vm.dirty_bytes",
    "vm.dirty_bytes": "vm.dirty_ratio",
    "vm.dirty_background_ratio": "vm.dirty_background_bytes",
    "vm.dirty_background_bytes": "vm.dirty_background_ratio",
}


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


class LinuxSystem(_Journal, System):
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
