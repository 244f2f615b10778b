"""Signals for long commands: SIGTERM as an interrupt, and a Ctrl-C that cannot break
off the cleanup the first one started."""

from __future__ import annotations

import signal
from types import FrameType


class _Interrupted(KeyboardInterrupt):
    """A SIGTERM, handled as a Ctrl-C: the system is restored on the way out."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted()


def interrupt_once(signum: int, frame: FrameType | None) -> None:
    """SIGINT: a KeyboardInterrupt the first time; every later one is ignored, so a
    second Ctrl-C cannot break off the cleanup the first one started."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt
