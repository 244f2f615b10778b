"""A Ctrl-C during the runner's cleanup waits for the cleanup to finish."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from autotune.agent import AgentRunner


class Halting:
    """An agent whose restore is interrupted half-way by a Ctrl-C."""

    def __init__(self) -> None:
        self.steps: list[str] = []

    def stop(self, keep: Any = None) -> None:
        self.steps.append("restore")
        os.kill(os.getpid(), signal.SIGINT)  # the user's second Ctrl-C
        self.steps.append("destroy sandbox")  # must still happen


def _runner() -> AgentRunner:
    """A runner that never reaches a server or a system: only close() is exercised."""
    return AgentRunner(client=None, make_system=lambda spec: None)  # type: ignore[arg-type,return-value]


@pytest.fixture
def default_sigint() -> Iterator[None]:
    """Python's own Ctrl-C handler, whatever the shell that started pytest left behind
    (a backgrounded job inherits SIGINT ignored)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.usefixtures("default_sigint")
def test_a_ctrl_c_during_close_is_held_until_the_cleanup_is_done() -> None:
    runner = _runner()
    agent = Halting()
    runner.agent = agent  # type: ignore[assignment]
    with pytest.raises(KeyboardInterrupt):
        runner.close()
    assert agent.steps == ["restore", "destroy sandbox"]
    assert runner.agent is None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_an_ignored_ctrl_c_stays_ignored_through_close() -> None:
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        runner = _runner()
        agent = Halting()
        runner.agent = agent  # type: ignore[assignment]
        runner.close()  # no KeyboardInterrupt: the owner had asked for none
        assert agent.steps == ["restore", "destroy sandbox"]
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
