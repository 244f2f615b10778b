"""A postgres experiment with synthetic trials whose answer is known.

The loss depends strongly on shared_buffers (log-scaled) and random_page_cost
and not at all on the other tuned knobs; the internal metrics are three groups
of correlated counters (each group driven by one hidden factor, plus noise) and
one constant counter.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from autotune.space import Space
from autotune.store import Experiment, Store, Trial
from autotune.tuner import experiment_space
from tests.unit._support import MACHINE, ROOT, TOY_WORKLOAD

KNOBS = [
    "shared_buffers",
    "random_page_cost",
    "work_mem",
    "effective_io_concurrency",  # special value 0
    "wal_compression",  # enum
    "jit",  # bool
    "checkpoint_timeout",
    "default_statistics_target",
]
TRUE_KNOBS = {"shared_buffers", "random_page_cost"}
GROUPS = {
    "activity": ["pg.database.xact_commit", "pg.wal.bytes", "host.cpu.user_s", "host.ctxt"],
    "reads": ["pg.statio.heap_blks_read", "host.disk.read_bytes", "host.vm.pgpgin"],
    "cleaning": ["pg.bgwriter.buffers_clean", "pg.tables.n_dead_tup", "host.mem.cached_bytes"],
}
CONSTANT = "pg.database.conflicts"
N_TRIALS = 40


def group_of(metric: str) -> str:
    return next(g for g, members in GROUPS.items() if metric in members)


def synthetic_trials(space: Space, n: int = N_TRIALS, seed: int = 1) -> list[Trial]:
    rng = np.random.default_rng(seed)
    configs = [space.default(), *space.sample(rng, n - 1)]
    sb = space.names.index("shared_buffers")
    rpc = space.names.index("random_page_cost")
    factors = rng.normal(size=(n, len(GROUPS)))
    trials = []
    for i, config in enumerate(configs):
        u = space.to_unit(config)
        tps = 1000.0 * (1.0 + 1.5 * u[sb] - 1.0 * u[rpc]) + rng.normal(0.0, 5.0)
        metrics = {"tps": tps, "latency_avg_ms": 1000.0 / tps, CONSTANT: 0.0}
        for g, members in enumerate(GROUPS.values()):
            for j, name in enumerate(members):
                scale = 10.0 ** (j + 1)
                noise = rng.normal(0.0, 0.15)
                metrics[name] = scale * (5.0 + factors[i, g] + noise)
        trials.append(
            Trial(
                number=i + 1,
                config=config,
                status="ok",
                objective=tps,
                started_at=None,
                finished_at=None,
                is_baseline=i == 0,
                metrics=metrics,
            )
        )
    return trials


def create_pg_experiment(store: Store, name: str = "pg", knobs: list[str] = KNOBS) -> Experiment:
    """An empty experiment over the real postgres spec, on the fixed test machine."""
    return store.create_experiment(
        name=name,
        system="postgres",
        spec_content=(ROOT / "knobs" / "postgres.yaml").read_text(),
        spec_hash="pg",
        spec_path="postgres.yaml",
        workload_name="toy-bench",
        workload_content=TOY_WORKLOAD,
        workload_hash="workload-hash",
        workload_path="toy-bench.yaml",
        objective_metric="tps",
        direction="maximize",
        optimizer="gp",
        seed=0,
        settings={"knobs": knobs, "duration_s": 10.0, "machine": asdict(MACHINE)},
    )


def fill(store: Store, experiment: Experiment, n: int = N_TRIALS) -> Experiment:
    for trial in synthetic_trials(experiment_space(experiment), n):
        store.add_trial(experiment, trial)
    return experiment
