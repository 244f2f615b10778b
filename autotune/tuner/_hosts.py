"""How many trials can really run at once: agents that are active, one trial per host.

Two trials on one host measure each other's load, so the store leases one
trial per host at a time unless the experiment allows colocated trials (see
``Store.lease_next``). This says what that leaves of ``--parallel K``, so that
a follow can tell the user instead of running serially in silence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from autotune.store import SEEN_EVERY_S, AgentInfo

# An agent asks for work every few seconds, and its last call is written at most
# once a minute: one silent for longer than this is not running.
ACTIVE_S = 2.5 * SEEN_EVERY_S


@dataclass(frozen=True)
class Capacity:
    """Trials that can run at once, and why fewer than asked for (None: as asked)."""

    slots: int
    note: str | None


def capacity(
    parallelism: int, allow_colocated: bool, agents: Sequence[AgentInfo], at: datetime
) -> Capacity:
    """What ``parallelism`` comes to with these agents, as of ``at``."""
    active = [
        a
        for a in agents
        if a.last_seen_at is not None and at - a.last_seen_at <= timedelta(seconds=ACTIVE_S)
    ]
    by_host: dict[str, list[str]] = {}
    for a in active:
        by_host.setdefault(a.host or f"agent {a.name}", []).append(a.name)
    slots = len(active) if allow_colocated else len(by_host)
    if slots >= parallelism:
        return Capacity(slots, None)
    asked = f"up to {parallelism} trials at a time were asked for"
    if not active:
        return Capacity(0, f"{asked}, but no agent has called the server in the last "
                        f"{ACTIVE_S:.0f}s: trials wait for one")  # fmt: skip
    if slots == len(active):
        names = ", ".join(a.name for a in active)
        return Capacity(
            slots,
            f"{asked}, but only {_count(slots, 'agent')} {'is' if slots == 1 else 'are'} "
            f"active ({names}): at most {slots} at once",
        )
    shared = "; ".join(
        f"{', '.join(names)} on host {host}" for host, names in by_host.items() if len(names) > 1
    )
    return Capacity(
        slots,
        f"{asked}, but agents share hosts ({shared}) and a host runs one trial at a time, "
        f"so at most {slots} at once (--allow-colocated runs them side by side, measuring "
        "each other's load)",
    )


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


__all__ = ["ACTIVE_S", "Capacity", "capacity"]
