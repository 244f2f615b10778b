"""What ``autotune tune`` reads from the store before a session: the experiment a
resume continues, and the knobs ``--knobs top:K --from`` picks."""

from __future__ import annotations

from autotune.cli._common import console, fail, open_store
from autotune.spec import Spec
from autotune.store import Experiment


def recorded_experiment(name: str | None, store: str | None) -> Experiment | None:
    """The stored experiment a resume by name continues, if there is one."""
    if name is None:
        return None
    with open_store(store) as st:
        return st.experiment(name)


def top_knobs_option(
    knobs: str, source: str | None, spec: Spec, store: str | None, allow_unsafe: bool
) -> str:
    """``top:K`` as a comma list: the K best-ranked knobs of ``source`` that this spec
    has and may tune (unsafe ones only with --allow-unsafe)."""
    from autotune.analysis import top_knobs

    text = knobs.removeprefix("top:")
    if not text.isdigit() or int(text) < 1:
        fail(f"--knobs {knobs}: K must be a whole number of at least 1")
    if source is None:
        fail(f"--knobs {knobs} needs --from EXPERIMENT: the experiment whose analysis ranks them")
    assert source is not None
    with open_store(store) as st:
        ranked = top_knobs(st, source, len(spec.knobs) + 1000)
    eligible = [
        n
        for n in ranked
        if n in spec.knobs
        and spec.knobs[n].tunable
        and (allow_unsafe or spec.knobs[n].safety != "unsafe")
    ]
    picked = eligible[: int(text)]
    if not picked:
        fail(f"--knobs {knobs}: none of {source}'s ranked knobs can be tuned with {spec.path}")
    console.print(f"note: --knobs {knobs} --from {source}: {', '.join(picked)}")
    return ",".join(picked)
