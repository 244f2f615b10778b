"""Constants shared by the unit tests (importable, unlike conftest)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from autotune.spec import Machine

ROOT = Path(__file__).resolve().parents[2]
GiB = 1024**3

MACHINE = Machine(memory_bytes=16 * GiB, cpus=4)

# A small spec with one knob of every flavour the space and the tuner care about.
TOY_SPEC = """\
system: toy
description: a test spec with every kind of knob
applier: postgres
knobs:
  buffers:
    type: integer
    unit: 8kB
    min: 1MB
    max: 1GB
    default: 128MB
    scale: log
    apply: restart
  mem:
    type: integer
    unit: kB
    min: 64kB
    max: 256MB
    default: 4MB
    scale: log
  ratio:
    type: real
    min: 0.1
    max: 1.0
    default: 0.5
  cost:
    type: real
    min: 0.01
    max: 100
    default: 1
    scale: log
  workers:
    type: integer
    min: 0
    max: 2x cpus
    default: 2
  flush:
    type: integer
    unit: 8kB
    min: 8kB
    max: 2MB
    default: 0
    special: [0]
    scale: log
  auto:
    type: integer
    min: 1
    max: 1000
    default: -1
    special: [-1]
    scale: log
  mode:
    type: enum
    values: ["a", "b", "c"]
    default: "a"
  jit:
    type: bool
    default: true
  fixed:
    type: integer
    min: 1
    max: 10
    default: 5
    tunable: false
  risky:
    type: bool
    default: true
    safety: unsafe
constraints:
  - buffers + 10 * mem <= 1GB
  - workers <= 2x cpus
groups:
  small: [mem, ratio]
  withrisk: [mem, risky]
  withrestart: [buffers, mem]
"""

TOY_WORKLOAD = """\
name: toy-bench
system: toy
kind: pgbench
builtin: tpcb-like
scale: 1
clients: 2
threads: 1
duration: 2s
warmup: 1s
objective: {metric: tps, direction: maximize}
"""

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
