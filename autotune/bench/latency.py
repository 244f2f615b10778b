"""Suggestion latency against history size, and the tuner's peak memory.

For a 20-knob space, an optimiser is told N observations of a cheap
function and asked once, untimed (imports and the first model fit, which a
running tuner has already paid); then, 20 times, it is told one more and
``ask(1)`` is timed. Each N runs in a fresh subprocess, so its peak RSS
(``VmHWM``) is that of a tuner holding N observations and nothing else.
On a shared host one child's p95 swings with the neighbours' load, so each
N runs in several rounds, the sizes interleaved, and the report gives the
median p95 over the rounds and its range.

Run as a module for one child: ``python -m autotune.bench.latency --n 5000``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autotune.space import Space
from autotune.spec import Config, parse_spec

LATENCY_SPEC = "\n".join(
    [
        "system: bench_latency",
        "description: 20 knobs of every kind, for timing suggestions.",
        "knobs:",
        *(f"  r{i}: {{type: real, min: 0, max: 1, default: 0.5}}" for i in range(8)),
        *(f"  l{i}: {{type: real, min: 0.01, max: 100, default: 1, scale: log}}" for i in range(4)),
        *(f"  i{i}: {{type: integer, min: 0, max: 100, default: 50}}" for i in range(4)),
        *(
            f"  k{i}: {{type: integer, min: 1, max: 65536, default: 64, scale: log}}"
            for i in range(2)
        ),
        "  e0: {type: enum, values: [a, b, c, d], default: a}",
        "  b0: {type: bool, default: false}",
        "",
    ]
)
SIZES = (100, 1000, 5000)
TARGET_P95_S = {100: 0.05, 1000: 0.2, 5000: 2.0}
TARGET_RSS_MB = 1024.0


def latency_space() -> Space:
    from autotune.bench.problems import SYNTHETIC_MACHINE

    spec = parse_spec(LATENCY_SPEC, "<bench:latency>", SYNTHETIC_MACHINE)
    return Space(spec, list(spec.knobs), SYNTHETIC_MACHINE)


def cheap_loss(space: Space, config: Config) -> float:
    """A smooth bowl in unit coordinates: the cost of measuring must not count."""
    u = space.to_unit(config)
    return float(np.sum((u - 0.3) ** 2))


def _rss_mb() -> float:
    """This process's peak RSS. ``ru_maxrss`` would also count the parent's RSS at
    fork (Linux carries it across exec), so the high-water mark of the
    process's own memory map comes first."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(optimizer: str, n: int, repeats: int = 20, seed: int = 0) -> dict[str, Any]:
    """Tell ``n`` observations, then time ``repeats`` rounds of tell-one-more + ``ask(1)``."""
    from autotune.optimizers import make_optimizer

    space = latency_space()
    opt = make_optimizer(optimizer, space, seed)
    # Another stream than the optimiser's own (seeded with ``seed``), or its random
    # candidates would be exactly the configs it has been told.
    rng = np.random.default_rng([seed, 1])
    configs = space.sample(rng, n + repeats)
    rss_start = _rss_mb()
    started = time.perf_counter()
    for config in configs[:n]:
        opt.tell(config, cheap_loss(space, config))
    tell_s = time.perf_counter() - started
    # A tuner is a long-running process: its imports and its first fit on the
    # history are paid once, so the first ask is reported but not in the percentiles.
    started = time.perf_counter()
    opt.ask(1)
    first_ask_s = time.perf_counter() - started
    times = []
    for config in configs[n:]:
        opt.tell(config, cheap_loss(space, config))
        t0 = time.perf_counter()
        opt.ask(1)
        times.append(time.perf_counter() - t0)
    return {
        "optimizer": optimizer,
        "n": n,
        "repeats": repeats,
        "tell_s": tell_s,
        "first_ask_s": first_ask_s,
        "ask_s": times,
        "rss_start_mb": rss_start,
        "peak_rss_mb": _rss_mb(),
    }


@dataclass
class LatencyResult:
    optimizer: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    load: float = field(default_factory=lambda: os.getloadavg()[0])


def run_child(optimizer: str, n: int, repeats: int, timeout_s: float) -> dict[str, Any]:
    """One size in a fresh interpreter, so its peak memory is its own."""
    cmd = [
        sys.executable,
        "-m",
        "autotune.bench.latency",
        "--optimizer",
        optimizer,
        "--n",
        str(n),
        "--repeats",
        str(repeats),
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"optimizer": optimizer, "n": n, "error": f"timed out after {timeout_s:.0f} s"}
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"optimizer": optimizer, "n": n, "error": f"exit {done.returncode}: {tail[0]}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def pick_optimizer(wanted: str) -> tuple[str, list[str]]:
    """``wanted`` if registered, else ``gp`` with a note saying so."""
    from autotune.optimizers import OPTIMIZERS

    if wanted in OPTIMIZERS:
        return wanted, []
    if wanted == "auto" and "gp" in OPTIMIZERS:
        return "gp", ["`auto` is not registered in this build; timed `gp` instead."]
    raise ValueError(f"unknown optimizer {wanted!r}; choose from {', '.join(sorted(OPTIMIZERS))}")


def run_latency(
    optimizer: str = "auto",
    sizes: Sequence[int] = SIZES,
    repeats: int = 20,
    timeout_s: float = 3600.0,
    rounds: int = 5,
) -> LatencyResult:
    """Every size once per round, in fresh children; rows in the order they ran."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, not {rounds}")
    name, notes = pick_optimizer(optimizer)
    result = LatencyResult(name, notes=notes)
    for _ in range(rounds):
        for n in sizes:
            result.rows.append(run_child(name, n, repeats, timeout_s))
    return result


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def latency_markdown(result: LatencyResult, command: str = "") -> str:
    lines = [
        "# Suggestion latency",
        "",
        f"`{result.optimizer}` on a 20-knob space (8 real, 4 log-real, 4 integer, "
        "2 log-integer, 1 enum, 1 bool): told N observations of a cheap function, then "
        "one untimed `ask(1)` (imports, first fit: a running tuner has paid them) and "
        "20 times one more `tell` and a timed `ask(1)`. Each N runs in a fresh "
        "subprocess; peak RSS is its high-water mark (`VmHWM`). Each N runs once per "
        "round, the sizes interleaved; p50 and p95 are medians over the rounds, and the "
        "range is the lowest and highest round's p95.",
        "",
        f"Host: {platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}, "
        f"load average {result.load:.1f} when it started (other work on the host slows it)."
        + (f" Command: `{command}`." if command else ""),
        *(["", *result.notes] if result.notes else []),
        "",
        "| observations | rounds | ask p50 s | ask p95 s | p95 range s | target p95 s | "
        "meets | tell N s | first ask s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    sizes = list(dict.fromkeys(int(r["n"]) for r in result.rows))
    peaks: dict[int, float] = {}
    for n in sizes:
        target = TARGET_P95_S.get(n)
        rows = [r for r in result.rows if int(r["n"]) == n]
        ok = [r for r in rows if "error" not in r]
        if not ok:
            lines.append(
                f"| {n} | {len(rows)} | {rows[0]['error']} | | | {target or '–'} | no | | | |"
            )
            continue
        p95s = [_pct(r["ask_s"], 95) for r in ok]
        p95 = float(np.median(p95s))
        meets = "–" if target is None else ("yes" if p95 < target else "no")
        if target is not None:
            meets += f" ({sum(v < target for v in p95s)} of {len(p95s)} rounds)"
        failed = (
            f", {len(rows) - len(ok)} failed: {rows[0].get('error', '')}"
            if len(ok) < len(rows)
            else ""
        )
        peaks[n] = max(float(r["peak_rss_mb"]) for r in ok)
        lines.append(
            f"| {n} | {len(ok)}{failed} | {np.median([_pct(r['ask_s'], 50) for r in ok]):.4f} | "
            f"{p95:.4f} | {min(p95s):.4f}–{max(p95s):.4f} | "
            f"{target if target is not None else '–'} | {meets} | "
            f"{np.median([r['tell_s'] for r in ok]):.2f} | "
            f"{np.median([r['first_ask_s'] for r in ok]):.2f} | {peaks[n]:.0f} |"
        )
    if peaks:
        biggest = max(peaks)
        rss = peaks[biggest]
        lines += [
            "",
            f"Peak memory at {biggest} observations: {rss:.0f} MB "
            f"(goal under {TARGET_RSS_MB:.0f} MB: {'met' if rss < TARGET_RSS_MB else 'not met'}).",
        ]
    return "\n".join(lines) + "\n"


def write(result: LatencyResult, path: Path, command: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(latency_markdown(result, command))


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def main(argv: Sequence[str] | None = None) -> None:
    """The child: measure one size and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--optimizer", default="auto")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.optimizer, args.n, args.repeats, args.seed)))


if __name__ == "__main__":
    main()
