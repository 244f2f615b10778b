"""Benchmarks of autotune's optimisers against random search and other libraries.

``problems`` defines deterministic test problems over real knob specs,
``competitors`` runs each optimiser against one, ``runner`` runs the grid and
writes the CSV, ``report`` turns it into the ranked table and ``latency``
times suggestions against the size of the history.
"""

from __future__ import annotations

from autotune.bench.problems import PROBLEMS, Problem, get_problem

__all__ = ["PROBLEMS", "Problem", "get_problem"]
