"""An experiment's report data: one JSON-serialisable dict, read from the store."""

from __future__ import annotations

import math
from typing import Any

from autotune.cli._format import formatted, recorded_spec, render
from autotune.spec import Spec, SpecError
from autotune.store import Experiment, Store, Trial
from autotune.tuner import Summary, describe, summarize, unstable_line

ANALYZE_KIND = "analyze"  # autotune.analysis.KIND, without importing scikit-learn
VERIFY_KIND = "verify"


def clean(value: Any) -> Any:
    """``value`` with every non-finite float as None, so JSON.parse accepts it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def _spec(experiment: Experiment) -> Spec | None:
    try:
        return recorded_spec(experiment)
    except (SpecError, ValueError, TypeError):
        return None


def _config_text(spec: Spec | None, config: dict[str, Any]) -> dict[str, str]:
    """Each value as the system reads it; as plain text when the spec cannot format it."""
    if spec is not None:
        try:
            return formatted(spec, config)
        except (ValueError, TypeError):
            pass
    return {k: str(v) for k, v in config.items()}


def _trial(spec: Spec | None, t: Trial) -> dict[str, Any]:
    return {
        "number": t.number,
        "status": t.status,
        "objective": t.objective,
        "fidelity": t.fidelity,
        "full": t.full,
        "repeat": t.repeat,
        "phase": t.phase,
        "round": t.round,
        "arm": t.arm,
        "baseline": t.is_baseline,
        "agent": t.agent,
        "total_s": t.timings.get("total_s"),
        "config": t.config,
        "config_text": _config_text(spec, t.config),
        # The workload's own metrics; internal ones (pg.*, host.*) are for analyze.
        "metrics": {k: v for k, v in sorted(t.metrics.items()) if "." not in k},
        "error": t.error,
        "log_excerpt": t.log_excerpt,
    }


def _best(experiment: Experiment, spec: Spec | None, s: Summary) -> dict[str, Any] | None:
    """The best as `autotune best` gives it: the verification's, else the search's."""
    rb = s.robust
    if rb is None or s.best is None:
        return None
    metric = experiment.objective_metric
    v = s.verification
    summary = describe(rb, metric) if v is None else v.verdict
    config = s.best.config
    best: dict[str, Any] = {
        "trial": s.best.number,
        "median": rb.best.median,
        "runs": rb.best.n,
        "confirmed": rb.confirmed,
        "ratio": rb.ratio,
        "verified": None if v is None else v.verified,
        "summary": summary,
        "unstable": unstable_line(rb),
        "config": config,
        "conf": None,
        "sql": None,
        "json": None,
    }
    if spec is None:
        return best
    meta = {
        "experiment": experiment.name,
        **rb.to_json(),
        "objective": {metric: rb.best.median},
        "baseline": None if rb.baseline is None else rb.baseline.median,
        "summary": summary,
    }
    if v is not None:
        meta.update(verification=v.to_json(), verdict=v.verdict, verified=v.verified)
    try:
        for fmt in ("conf", "sql"):
            best[fmt] = render(spec, config, fmt)
        best["json"] = render(spec, config, "json", clean(meta))
    except (ValueError, TypeError):
        pass
    return best


def _importance(store: Store, experiment: Experiment) -> list[dict[str, Any]] | None:
    stored = store.analyses(experiment, ANALYZE_KIND)
    combined = stored[-1].result.get("combined") if stored else None
    if not isinstance(combined, list):
        return None
    return [
        {"name": str(entry.get("name")), "score": entry.get("score")}
        for entry in combined
        if isinstance(entry, dict)
    ]


def _verify(store: Store, experiment: Experiment) -> dict[str, Any] | None:
    stored = store.analyses(experiment, VERIFY_KIND)
    return dict(stored[-1].result) if stored else None


def experiment_data(store: Store, experiment: Experiment) -> dict[str, Any]:
    """Everything the report shows about ``experiment``, JSON-serialisable."""
    trials = store.trials(experiment)
    finished = [t for t in trials if t.finished]
    spec = _spec(experiment)
    summary = summarize(store, experiment)
    best = _best(experiment, spec, summary)
    baseline: float | None = None
    rb = summary.robust
    if rb is not None and rb.baseline is not None:
        baseline = rb.baseline.median
    else:
        first = next((t for t in finished if t.is_baseline and t.ok and t.full), None)
        baseline = None if first is None else first.objective
    data = {
        "name": experiment.name,
        "system": experiment.system,
        "workload": experiment.workload_name,
        "objective": {
            "metric": experiment.objective_metric,
            "direction": experiment.direction,
        },
        "status": experiment.status,
        "created_at": experiment.created_at.isoformat(),
        "knobs": [str(k) for k in experiment.settings.get("knobs", [])],
        "baseline": baseline,
        "trials": [_trial(spec, t) for t in trials],
        "best": best,
        "importance": _importance(store, experiment),
        "verify": _verify(store, experiment),
        "verification": None
        if summary.verification is None
        else clean(summary.verification.to_json()),
    }
    return dict(clean(data))
