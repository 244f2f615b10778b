"""Which host an agent runs on, as the server compares hosts: one kernel, one host."""

from __future__ import annotations

import re
import socket
from pathlib import Path

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
HOST_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"


def host_id(boot_id: Path = BOOT_ID) -> str:
    """A name shared by every agent on this host and by no agent elsewhere.

    The kernel's boot id is the same in every container on one machine (they
    share its CPUs and disks, so their trials interfere) and differs between
    machines and VMs; a host name is the fallback where it cannot be read.
    """
    try:
        text = boot_id.read_text().strip().replace("-", "").lower()
    except OSError:
        text = ""
    if re.fullmatch(r"[0-9a-f]{32}", text):
        return f"boot-{text[:12]}"
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:64].strip("-.")
    return name or "localhost"


__all__ = ["HOST_PATTERN", "host_id"]
