"""Signals for long commands: SIGTERM as an interrupt, and a Ctrl-C that cannot break
off the cleanup the first one started, nor be lost.

Python drops an exception raised inside a finalizer or a weakref callback (it prints
"Exception ignored in ..." and goes on). A Ctrl-C that lands there would be lost, and
since the first one turns SIGINT off, the session would run to its end regardless.
Such an interrupt is kept here instead, and ``raise_if_lost`` raises it again at the
next safe point: the progress hooks call it between a trial's phases.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any


class _Interrupted(KeyboardInterrupt):
    """A SIGTERM, handled as a Ctrl-C: the system is restored on the way out."""


_lost: list[KeyboardInterrupt] = []
_previous_hook: list[Any] = []  # the hook ours went in front of


def _unraisable(info: Any) -> None:
    """Keep an interrupt Python could not raise; anything else goes to the usual hook."""
    if isinstance(info.exc_value, KeyboardInterrupt):
        _lost.append(info.exc_value)
        return
    (_previous_hook[0] if _previous_hook else sys.__unraisablehook__)(info)


def _raise(exc: KeyboardInterrupt) -> None:
    if sys.unraisablehook is not _unraisable:
        _previous_hook[:] = [sys.unraisablehook]
        sys.unraisablehook = _unraisable
    raise exc


def raise_if_lost() -> None:
    """Raise an interrupt that arrived in a finalizer and was dropped, once."""
    if _lost:
        exc = _lost[0]
        _lost.clear()
        raise exc


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _raise(_Interrupted())


def interrupt_once(signum: int, frame: FrameType | None) -> None:
    """SIGINT: a KeyboardInterrupt the first time; every later one is ignored, so a
    second Ctrl-C cannot break off the cleanup the first one started."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _raise(KeyboardInterrupt())
