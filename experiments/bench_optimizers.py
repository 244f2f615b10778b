"""The optimiser benchmark: autotune's optimisers against random search, skopt, Optuna and SMAC3.

The same command as ``autotune bench optimizers`` (see experiments/README.md):

    python experiments/bench_optimizers.py --budget 30 --budget 60 --seeds 20 \\
        --out experiments/results/optimizers.csv
"""

from __future__ import annotations

import typer

from autotune.cli.bench import optimizers

if __name__ == "__main__":
    typer.run(optimizers)
