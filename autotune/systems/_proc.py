"""Small process and port helpers shared by the systems that start servers."""

from __future__ import annotations

import socket

from autotune._tmp import pid_alive  # one definition, shared with the temp-dir sweep


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


__all__ = ["free_port", "pid_alive"]
