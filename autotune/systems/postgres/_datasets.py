"""Loaded data kept between sessions: a copy of a managed sandbox's data directory,
taken right after the workload loaded it, keyed by the workload's load (its name
and a digest of what the load reads) and the PostgreSQL major version.

A session whose workload says ``cache: true`` copies the kept directory into its
fresh sandbox instead of loading again: minutes of ``pgbench -i`` or setup SQL
become seconds of file copying. The copy is taken with the server stopped, so it
is exactly what the load left (the pristine copy and frozen tuples included).
`autotune datasets list|rm` shows and removes them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from autotune._tmp import pid_alive

_SKIP = {"postmaster.pid", "postmaster.opts"}  # a running server's, not the data's


def datasets_root() -> Path:
    """Where datasets live: $AUTOTUNE_WORKDIR/datasets, else ./.autotune/datasets."""
    return Path(os.environ.get("AUTOTUNE_WORKDIR") or ".autotune").resolve() / "datasets"


def dataset_path(key: str, major: str, root: Path | None = None) -> Path:
    return (root or datasets_root()) / f"{key}-pg{major}"


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    size_bytes: int
    created: float  # seconds since the epoch


def _size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += (Path(folder) / name).lstat().st_size
            except OSError:
                continue
    return total


def list_datasets(root: Path | None = None) -> list[Dataset]:
    """The kept datasets, oldest first (a directory being written is not one yet)."""
    base = root or datasets_root()
    if not base.is_dir():
        return []
    found = [
        Dataset(p.name, p, _size(p), p.stat().st_mtime)
        for p in base.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / "PG_VERSION").exists()
    ]
    return sorted(found, key=lambda d: d.created)


def remove_dataset(name: str, root: Path | None = None) -> Dataset:
    """Remove one kept dataset by name; KeyError if there is none of that name."""
    for dataset in list_datasets(root):
        if dataset.name == name:
            shutil.rmtree(dataset.path)
            return dataset
    raise KeyError(name)


def sweep_partial(root: Path) -> None:
    """Remove copies half-written by a session that was killed (``.saving-PID-*``)."""
    if not root.is_dir():
        return
    for path in root.glob(".saving-*"):
        try:
            pid = int(path.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if not pid_alive(pid):
            shutil.rmtree(path, ignore_errors=True)


def save_copy(data_dir: Path, target: Path) -> bool:
    """Copy a stopped server's ``data_dir`` to ``target``, whole or not at all (a
    temporary directory renamed into place); False if ``target`` exists already."""
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_partial(target.parent)
    tmp = target.parent / f".saving-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        shutil.copytree(data_dir, tmp, symlinks=True, ignore=lambda d, names: _SKIP & set(names))
        try:
            os.rename(tmp, target)
        except OSError:
            if target.exists():  # another session kept the same data first
                return False
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os.utime(target, (time.time(), time.time()))
    return True


def copy_into(source: Path, data_dir: Path, owner: tuple[int, int] | None) -> None:
    """Replace ``data_dir`` by a copy of ``source``, owned by ``owner`` (uid, gid)."""
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.copytree(source, data_dir, symlinks=True)
    if owner is not None:
        for folder, dirs, files in os.walk(data_dir):
            for name in [*dirs, *files]:
                os.lchown(Path(folder) / name, *owner)
        os.chown(data_dir, *owner)
    data_dir.chmod(0o700)


__all__ = [
    "Dataset",
    "copy_into",
    "dataset_path",
    "datasets_root",
    "list_datasets",
    "remove_dataset",
    "save_copy",
    "sweep_partial",
]
