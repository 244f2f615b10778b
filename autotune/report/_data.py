"""An experiment's report data: one JSON-serialisable dict, read from the store."""

from __future__ import annotations

import math
from typing import Any

from autotune.spec import Spec, SpecError
from autotune.store import Experiment, Store, Trial
from autotune.systems import formats_of, formatted, render
from autotune.tuner import Summary, describe, experiment_spec, summarize, unstable_line

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
        return experiment_spec(experiment)
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
    unavailable: dict[str, str] = {}
    declared = formats_of(spec)
    for fmt in ("conf", "sql", "json"):
        # Each on its own: a Linux or Redis config has a conf but no sql. A format the
        # system has but that cannot be made says why, beside its disabled download.
        if fmt not in declared:
            continue
        try:
            best[fmt] = render(spec, config, fmt, clean(meta) if fmt == "json" else None)
        except (ValueError, TypeError) as exc:
            unavailable[fmt] = str(exc)
    best["unavailable"] = unavailable
    return best


def _importance(store: Store, experiment: Experiment) -> list[dict[str, Any]] | None:
    stored = store.analyses(experiment, ANALYZE_KIND)
    combined = stored[-1].result.get("combined") if stored else None
    if not isinstance(combined, list):
        return None
    return [
        {"name": str(entry.get("name")), "rank": entry.get("rank"), "score": entry.get("score")}
        for entry in combined
        if isinstance(entry, dict)
    ]


def _verify(store: Store, experiment: Experiment) -> dict[str, Any] | None:
    stored = store.analyses(experiment, VERIFY_KIND)
    return dict(stored[-1].result) if stored else None


def _legacy_arms(result: dict[str, Any]) -> list[dict[str, Any]]:
    """An early `autotune verify` result's per-arm lines, in today's shape."""
    arms = []
    for line in result.get("summary") or []:
        if not isinstance(line, dict):
            continue
        lo, hi = line.get("ci_low"), line.get("ci_high")
        arms.append(
            {
                "label": line.get("label"),
                "runs": line.get("runs"),
                "median": line.get("median"),
                "values": line.get("values") or [],
                "ratio": line.get("ratio"),
                "ci": None if lo is None or hi is None else [lo, hi],
                "significant": line.get("significant"),
            }
        )
    return arms


def verdict_of(summary: Summary, verify: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the report leads with: the session's paired verification, else the latest
    `autotune verify`, as one shape (verdict words, rounds, each arm's ratio and CI)."""
    if summary.verification is not None:
        v = summary.verification
        return {"source": "this session's verification", **clean(v.to_json())}
    if not verify:
        return None
    if isinstance(verify.get("verification"), dict):
        return {"source": "autotune verify", **clean(verify["verification"])}
    arms = _legacy_arms(verify)
    contenders = [
        a for a in arms if a["label"] not in ("default", "pgtune", "spec defaults") and a["ratio"]
    ]
    if not contenders:
        return None
    best = max(contenders, key=lambda a: a["ratio"])
    lo, hi = best["ci"] or [None, None]
    rounds = int(verify.get("rounds") or 0)
    ci = "" if lo is None else f"95% CI {lo:.3f}–{hi:.3f}, {rounds} paired rounds"
    verified = lo is not None and lo > 1
    words = (
        f"verified gain: {best['label']} is {best['ratio']:.3f}× the default ({ci})"
        if verified
        else f"no verified gain: keep the default ({best['label']} is {best['ratio']:.3f}×, {ci})"
    )
    return {
        "source": "autotune verify",
        "verdict": words,
        "verified": verified,
        "best": best["label"],
        "rounds": rounds,
        "arms": arms,
    }


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
    verify = _verify(store, experiment)
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
        "verify": verify,
        "verification": None
        if summary.verification is None
        else clean(summary.verification.to_json()),
    }
    data["verdict"] = verdict_of(summary, verify)
    return dict(clean(data))
