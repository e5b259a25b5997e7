"""Statistics over a group of repeated runs: median, spread, the olympic mean.

Follows MLPerf Training's rules: time several runs, drop the fastest and the
slowest, average the rest (the "olympic" mean, defined for n >= 3), and count a
run that never reaches the target as infinitely slow. Medians with their min-max
range are what W&B's run groups show. Pure functions over `comparison.measure()`
dicts: no I/O. `math.inf` stands for "not reached" inside; `public()` turns it
into None for JSON, beside a count of the runs that did not reach the target.
"""

from __future__ import annotations

import math
import statistics

from training.analysis import comparison, contention, energy, uncertainty
from training.analysis.comparison import ratio

# The measures a group summarises, and whether a larger value is better.
MEASURES = {"steady_epoch_s": False, "steady_samples_per_s": True, "time_to_target_s": False,
            "total_s": False, "cores_busy": None, "train_images_per_s": True, "epoch_images_per_s": True,
            "achieved_flops_per_s": True, "achieved_train_flops_per_s": True,
            "achieved_epoch_flops_per_s": True, "peak_flops_per_s": None, "utilisation": True,
            "epoch_utilisation": True}
SPREAD_KEYS = ("median", "min", "max", "olympic_mean")
MIN_OLYMPIC = 3  # with fewer runs, dropping both extremes leaves nothing fair to average


def olympic_mean(values: list[float]) -> float | None:
    """Drop one smallest and one largest value, mean the rest; None for fewer than 3.

    An infinite value (a run that never reached the target) may be dropped as the
    slowest; if one is kept, the mean is infinite too, as MLPerf scores it.
    """
    if len(values) < MIN_OLYMPIC:
        return None
    kept = sorted(values)[1:-1]
    if any(math.isinf(v) for v in kept):
        return math.inf
    return sum(kept) / len(kept)


def spread(values: list[float]) -> dict:
    """Median, min, max and olympic mean of the known values (all None if there are none)."""
    if not values:
        return dict.fromkeys(SPREAD_KEYS)
    return {"median": float(statistics.median(values)), "min": float(min(values)),
            "max": float(max(values)), "olympic_mean": olympic_mean(values)}


def summarize(measures: list[dict]) -> dict:
    """One group's statistics from its runs' `comparison.measure()` dicts.

    A run with no steady state (one epoch, or no timings) is left out of the
    timing measures; every run counts for time to target, unreached ones as inf.
    """
    summary: dict = {"n": len(measures)}
    for key in MEASURES:
        if key == "time_to_target_s":
            values = [math.inf if m.get(key) is None else m[key] for m in measures]
        else:
            values = [m[key] for m in measures if m.get(key) is not None]
        summary[key] = spread(values)
    summary["not_reached"] = sum(1 for m in measures if m.get("time_to_target_s") is None)
    # Each run's steady images/s: the samples a group speedup's interval is bootstrapped from.
    summary["run_rates"] = {basis: [m[key] for m in measures if m.get(key) is not None]
                            for basis, key in comparison.RATE_BASES.items()}
    return summary


def rate_basis(summaries: list[dict]) -> str:
    """"training" when every group's median training images/s is known, else "epoch"."""
    known = all(s["train_images_per_s"]["median"] is not None for s in summaries)
    return "training" if known else "epoch"


def rate_speedup(a: dict, b: dict, basis: str | None = None, names: tuple[str, str] = ("A", "B")) -> dict:
    """How much more work per second group B does than A: B / A of the median images/s.

    On training images/s where both groups time training alone, else on epoch images/s
    (`comparison.rate_basis`); `low` is B's slowest over A's fastest, `high` B's fastest
    over A's slowest. `basis` makes one table use one basis (`rate_basis` of all its groups).
    `ci_low`, `ci_high`, `verdict`, `more_needed` (in runs) and `n`: the bootstrap 95%
    interval over the runs (each run's steady images/s is one sample), `group_verdict`.
    """
    basis = basis or rate_basis([a, b])
    key = comparison.RATE_BASES[basis]
    sa, sb = a[key], b[key]
    return {"median": ratio(sb["median"], sa["median"]), "low": ratio(sb["min"], sa["max"]),
            "high": ratio(sb["max"], sa["min"]), "basis": basis,
            **comparison.interval_fields(group_verdict(a, b, basis, names))}


def group_verdict(a: dict, b: dict, basis: str,
                  names: tuple[str, str] = ("A", "B")) -> uncertainty.SpeedupVerdict:
    """The speedup of cell B over cell A with its bootstrap 95% interval over their runs."""
    def rates(summary: dict) -> list[float]:
        return (summary.get("run_rates") or {}).get(basis) or []

    return uncertainty.verdict(rates(a), rates(b), basis, "runs", names)


def speedup(a: dict, b: dict, key: str = "steady_epoch_s") -> dict:
    """How much faster group B is than group A on a time measure: A / B of the medians.

    The range beside it comes from the extremes: A's fastest over B's slowest
    (`low`) to A's slowest over B's fastest (`high`). Unreached targets give None.
    """
    def finite(value):
        return None if value is None or math.isinf(value) else value

    sa, sb = a[key], b[key]
    return {"median": ratio(finite(sa["median"]), finite(sb["median"])),
            "low": ratio(finite(sa["min"]), finite(sb["max"])),
            "high": ratio(finite(sa["max"]), finite(sb["min"]))}


def public(value):
    """A summary with every infinity as None, for JSON (which has no infinity)."""
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items()}
    if isinstance(value, list):
        return [public(v) for v in value]
    if isinstance(value, float) and math.isinf(value):
        return None
    return value


def summarize_runs(logs: list[tuple[list[dict], list[dict]]], target: float,
                   contexts: list[tuple[dict, dict | None]] | None = None) -> dict:
    """`summarize` from each run's (epoch records, system samples), plus energy.

    With `contexts`, each run's (config.json, start record), the summary also has the
    efficiency measures (`comparison.describe`) and the cell's `protocol` (its first run's).

    `energy` holds the spread of the joules per steady epoch and to the target over the
    runs where power was measured, and which sources were (`measured`: [] = not measured).
    """
    if contexts:
        measures = [comparison.describe(epochs, meta, start, target)
                    for (epochs, _), (meta, start) in zip(logs, contexts)]
    else:
        measures = [comparison.measure(epochs, target) for epochs, _ in logs]
    summary = summarize(measures)
    summary["contention"] = contention.group_summary([epochs for epochs, _ in logs])
    if contexts:
        summary["protocol"] = measures[0]["protocol"]
    used = [energy.run_energy(epochs, system, target) for epochs, system in logs]
    measured = [u for u in used if u["measured"]]
    summary["energy"] = {
        "measured": sorted({source for u in measured for source in u["measured"]}),
        "joules_per_epoch": spread([u["total_joules_per_epoch"] for u in measured
                                    if u["total_joules_per_epoch"] is not None]),
        "joules_to_target": spread([u["total_joules_to_target"] for u in measured
                                    if u["total_joules_to_target"] is not None]),
    }
    return summary
