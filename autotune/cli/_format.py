"""Rendering configs for people and for the systems: each system's own formats, and json."""

from __future__ import annotations

from rich import box
from rich.table import Table

from autotune.systems import formats_of, formatted, render
from autotune.systems.postgres import quote_literal
from autotune.tuner import ArmResult, Verification, experiment_spec

recorded_spec = experiment_spec  # the experiment's spec, on the machine it was tuned on


def _arm_verdict(arm: ArmResult) -> str:
    if arm.versus is None:
        return "reference" if arm.label == "default" else "no comparison"
    if arm.versus.low > 1:
        return "better"
    if arm.versus.high < 1:
        return "worse"
    return "NOT significant"


def verification_table(v: Verification, title: str) -> Table:
    """A verification's arms: runs, median, paired ratio to the default with its 95% CI,
    and whether that is better, worse or not significant; it fits 80 columns."""
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("arm", "runs", "median", "× default", "95% CI", "verdict"):
        table.add_column(column, justify="right" if column in ("runs", "median") else "left")
    for arm in v.arms:
        pr = arm.versus
        table.add_row(
            arm.label + (" ◀ best" if v.best is arm else ""),
            f"{arm.runs}" + (f" ({arm.failed} failed)" if arm.failed else ""),
            "—" if arm.median is None else f"{arm.median:.6g}",
            "1" if arm.label == "default" else ("—" if pr is None else f"{pr.ratio:.3f}"),
            "" if pr is None else f"{pr.low:.3f}–{pr.high:.3f}",
            _arm_verdict(arm),
        )
    return table


__all__ = [
    "formats_of",
    "formatted",
    "quote_literal",
    "recorded_spec",
    "render",
    "verification_table",
]
