"""An agent's host id: one per kernel, so containers on one machine share it."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from autotune.agent import HOST_PATTERN, host_id


def test_the_host_is_the_kernels_boot_id(tmp_path: Path) -> None:
    boot = tmp_path / "boot_id"
    boot.write_text("E75860B5-7924-4d69-bb41-17dcaf98eb01\n")
    assert host_id(boot) == "boot-e75860b57924"
    assert re.match(HOST_PATTERN, host_id(boot))


def test_this_machines_host_id_is_stable_and_valid() -> None:
    assert host_id() == host_id()
    assert re.match(HOST_PATTERN, host_id())
    if Path("/proc/sys/kernel/random/boot_id").exists():
        assert host_id().startswith("boot-")


@pytest.mark.parametrize("text", [None, "", "not-a-uuid"])
def test_without_a_boot_id_the_host_name_stands_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str | None
) -> None:
    boot = tmp_path / "boot_id"
    if text is not None:
        boot.write_text(text)
    monkeypatch.setattr(socket, "gethostname", lambda: "db 1/eu")
    assert host_id(boot) == "db-1-eu"
    monkeypatch.setattr(socket, "gethostname", lambda: "")
    assert host_id(boot) == "localhost"
