"""The host a spec is resolved on: its memory and CPUs bound machine-relative knobs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Machine:
    memory_bytes: int
    cpus: int

    @classmethod
    def local(cls) -> Machine:
        """This host, respecting a cgroup memory limit and CPU affinity."""
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        limit = Path("/sys/fs/cgroup/memory.max")
        try:
            text = limit.read_text().strip()
            if text.isdigit():
                memory = min(memory, int(text))
        except OSError:
            pass
        cpus = len(os.sched_getaffinity(0)) or os.cpu_count() or 1
        return cls(memory_bytes=memory, cpus=cpus)
