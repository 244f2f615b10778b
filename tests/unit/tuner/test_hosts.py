"""What --parallel K comes to with the agents there are: one trial per host at a time."""

from __future__ import annotations

from datetime import timedelta

from autotune.store import AgentInfo
from autotune.tuner import capacity
from tests.unit._support import T0


def _agent(name: str, host: str | None, seen_s_ago: float | None = 5.0) -> AgentInfo:
    seen = None if seen_s_ago is None else T0 - timedelta(seconds=seen_s_ago)
    return AgentInfo(name, T0 - timedelta(days=1), seen, host)


def test_enough_agents_on_their_own_hosts_say_nothing() -> None:
    agents = [_agent("a1", "h1"), _agent("a2", "h2"), _agent("a3", None)]
    room = capacity(3, False, agents, T0)
    assert room.slots == 3 and room.note is None


def test_agents_sharing_a_host_count_once_unless_colocated_is_allowed() -> None:
    agents = [_agent("a1", "h1"), _agent("a2", "h1"), _agent("a3", "h2")]
    room = capacity(3, False, agents, T0)
    assert room.slots == 2
    assert room.note is not None
    assert "agents share hosts (a1, a2 on host h1)" in room.note
    assert "at most 2 at once" in room.note and "--allow-colocated" in room.note
    assert capacity(3, True, agents, T0) == type(room)(3, None)
    assert capacity(2, False, agents, T0).note is None


def test_fewer_active_agents_than_asked_for_are_named() -> None:
    agents = [_agent("a1", "h1"), _agent("old", "h2", seen_s_ago=3600), _agent("new", "h3", None)]
    room = capacity(2, False, agents, T0)
    assert room.slots == 1
    assert room.note == (
        "up to 2 trials at a time were asked for, but only 1 agent is active (a1): "
        "at most 1 at once"
    )
    idle = capacity(2, False, agents[1:], T0)
    assert idle.slots == 0 and idle.note is not None and "no agent has called" in idle.note
