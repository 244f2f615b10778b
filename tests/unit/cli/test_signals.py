"""A Ctrl-C that lands in a finalizer is not lost (CI saw one swallowed by a weakref
callback, and the session ran to its end)."""

from __future__ import annotations

import gc
import signal
import sys
from collections.abc import Iterator

import pytest

from autotune.cli._signals import _Interrupted, _on_sigterm, interrupt_once, raise_if_lost


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    sigint = signal.getsignal(signal.SIGINT)
    sigterm = signal.getsignal(signal.SIGTERM)
    hook = sys.unraisablehook
    yield
    signal.signal(signal.SIGINT, sigint)
    signal.signal(signal.SIGTERM, sigterm)
    sys.unraisablehook = hook


class _SignalsInFinalizer:
    def __init__(self, signum: int) -> None:
        self.signum = signum

    def __del__(self) -> None:
        signal.raise_signal(self.signum)
        for _ in range(1000):  # the handler runs here, between bytecodes
            pass


def _collect(signum: int) -> None:
    obj = _SignalsInFinalizer(signum)
    del obj
    gc.collect()


def test_a_ctrl_c_dropped_in_a_finalizer_is_raised_at_the_next_safe_point() -> None:
    signal.signal(signal.SIGINT, interrupt_once)
    _collect(signal.SIGINT)  # Python drops it: nothing raised here
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # the first one was taken
    with pytest.raises(KeyboardInterrupt):
        raise_if_lost()
    raise_if_lost()  # once only


def test_a_sigterm_dropped_in_a_finalizer_is_kept_as_itself() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    _collect(signal.SIGTERM)
    with pytest.raises(_Interrupted):
        raise_if_lost()


def test_other_unraisable_errors_still_reach_the_usual_hook() -> None:
    seen: list[BaseException | None] = []
    sys.unraisablehook = lambda info: seen.append(info.exc_value)
    signal.signal(signal.SIGINT, interrupt_once)
    _collect(signal.SIGINT)  # installs the interrupt hook in front of ours

    class Broken:
        def __del__(self) -> None:
            raise ValueError("boom")

    Broken()
    gc.collect()
    assert [type(e) for e in seen] == [ValueError]
    with pytest.raises(KeyboardInterrupt):
        raise_if_lost()


def test_nothing_lost_nothing_raised() -> None:
    raise_if_lost()
