"""The answer first: for each compared run, how much faster than the baseline, and how soon at target.

The Compare page opens on these items (big numbers and one sentence each), before any
table or chart. Pure: `RunSeries` in, plain dicts out. The numbers are
`training.analysis.comparison`'s, on one basis for all runs (`comparison.rate_basis`), as
in the comparison table, so the verdict and the table never disagree.

The interval of a speedup is passed in as `interval`: a function (baseline series, run
series, basis) -> (low, high) or None; by default `bootstrap_interval`, the bootstrap 95% CI
of `comparison.speedup_verdict`, so every sentence and big number carries it. Runs of two
workloads get no speedup at all (`workload.blocker`): "not comparable: different model".
"""

from __future__ import annotations

from collections.abc import Callable

from training.analysis import comparison, workload
from training.analysis.display import number
from training.analysis.series import RunSeries

Interval = Callable[[RunSeries, RunSeries, str], "tuple[float, float] | None"]
BASIS_WORDS = {"training": "training images per second",
               "epoch": "images per epoch second, evaluation included"}


def speedup_text(value: float | None) -> str:
    return number(value, ",.2f", "×")


def interval_text(interval: tuple[float, float] | None) -> str:
    return "" if interval is None else f"95% CI {interval[0]:,.2f}–{interval[1]:,.2f}×"


def bootstrap_interval(base: RunSeries, run: RunSeries, basis: str) -> tuple[float, float] | None:
    """The 95% bootstrap interval of run's speedup over base (None with too few steady epochs)."""
    found = comparison.speedup_verdict(base.epochs, run.epochs, basis)
    return None if found.ci_low is None or found.ci_high is None else (found.ci_low, found.ci_high)


def verdict_items(runs: list[RunSeries], baseline_id: str | None, target: float,
                  interval: Interval | None = bootstrap_interval) -> list[dict]:
    """One item per run, the baseline first: speedup on the table's basis, and time to target.

    Each item: id, label, baseline (bool), speedup (B's rate over the baseline's, >1 =
    faster; None without two steady states), interval ((low, high) or None), basis
    ("training" or "epoch"), time_to_target_s / _epoch (None when not reached),
    epochs_done, `claim` (the item in words, after the run's name) and `sentence` (name + claim).
    """
    measures = {run.id: comparison.describe(run.epochs, run.meta, run.start, target) for run in runs}
    if baseline_id not in measures:
        baseline_id = runs[0].id if runs else None
    basis = comparison.rate_basis(list(measures.values()))
    key = comparison.RATE_BASES[basis]
    base_run = next((run for run in runs if run.id == baseline_id), None)
    base = measures.get(baseline_id)
    items = []
    for run in sorted(runs, key=lambda r: r.id != baseline_id):
        m = measures[run.id]
        is_base = run.id == baseline_id
        different = None if base is None or is_base else workload.blocker(base["protocol"], m["protocol"])
        speed = None if base is None or different else comparison.ratio(m[key], base[key])
        span = interval(base_run, run, basis) if interval and speed is not None and not is_base else None
        items.append({
            "id": run.id, "label": run.label, "baseline": is_base, "speedup": speed, "interval": span,
            "basis": basis, "time_to_target_s": m["time_to_target_s"],
            "time_to_target_epoch": m["time_to_target_epoch"], "epochs_done": m["epochs_done"],
            "claim": f"{different}." if different else
            _claim(is_base, speed, span, base_run.name or base_run.label if base_run else "", m, target)})
        items[-1]["sentence"] = f"{run.label} {items[-1]['claim']}"
    return items


def _claim(is_base: bool, speed: float | None, span, base_label: str, m: dict, target: float) -> str:
    if m["time_to_target_s"] is not None:
        reached = (f"reached {target:.2%} in {m['time_to_target_s']:,.1f} s "
                   f"(epoch {m['time_to_target_epoch']})")
    else:
        reached = f"did not reach {target:.2%} in {m['epochs_done']} epoch{'s' * (m['epochs_done'] != 1)}"
    if is_base:
        return f"is the baseline; it {reached}."
    if speed is None:
        return f"has no speedup yet (it needs two finished epochs: epoch 1 is warm-up); it {reached}."
    within = f" ({interval_text(span)})" if span else ""
    if speed >= 1:
        how = f"{speedup_text(speed)} faster than {base_label}{within}"
    else:
        how = f"{speedup_text(1 / speed)} slower than {base_label} (speedup {speedup_text(speed)}{within})"
    return f"is {how}; it {reached}."


def basis_sentence(items: list[dict]) -> str:
    """What every speedup on the page is a ratio of, said once."""
    basis = items[0]["basis"] if items else "training"
    return (f"Speedup: a run's steady-state {BASIS_WORDS[basis]} over the baseline's (epoch 1 left out; "
            "more than 1× is faster).")


def group_items(cells: list, baseline: int, target: float) -> list[dict]:
    """One item per cell of repeats (`grouping.group_series`), the baseline cell first.

    As `verdict_items`, with the speedup the ratio of the cells' median images/s and, as
    `interval`, its bootstrap 95% CI over the runs (each run's steady images/s one sample:
    `stats.rate_speedup`'s ci_low/ci_high; None with fewer than two runs a side). `range`
    keeps the extremes (B's slowest over A's fastest to B's fastest over A's slowest), said
    in the sentence only when there is no interval. Time to target is the cell's median
    (None when most runs missed it).
    """
    from training.analysis import grouping, stats  # grouping draws figures; only the group view needs it

    found = grouping.summaries(cells, target)
    if not found:
        return []
    baseline = baseline if 0 <= baseline < len(found) else 0
    basis = stats.rate_basis(found)
    base_name = cells[baseline].label
    items = []
    for index in sorted(range(len(cells)), key=lambda i: i != baseline):
        cell, summary = cells[index], found[index]
        is_base = index == baseline
        speed = stats.rate_speedup(found[baseline], summary, basis)
        span = None if is_base or speed["low"] is None else (speed["low"], speed["high"])
        known = not is_base and speed["ci_low"] is not None and speed["ci_high"] is not None
        interval = (speed["ci_low"], speed["ci_high"]) if known else None
        reached = stats.public(summary["time_to_target_s"]["median"])
        m = {"time_to_target_s": reached, "time_to_target_epoch": None,
             "epochs_done": max((len(run.epochs) for run in cell.runs), default=0)}
        claim = _claim(is_base, speed["median"], interval, base_name, m, target).replace(" (epoch None)", "")
        claim = claim.replace("; it ", f"{_range_words(span, interval)}; its median run ", 1)
        items.append({"id": cell.key, "label": cell.label, "baseline": is_base, "speedup": speed["median"],
                      "interval": interval, "range": span, "basis": basis, "n": summary["n"],
                      "time_to_target_s": reached, "time_to_target_epoch": None,
                      "epochs_done": m["epochs_done"], "claim": claim, "sentence": f"{cell.label} {claim}"})
    return items


def _range_words(span: tuple[float, float] | None, interval: tuple[float, float] | None) -> str:
    """The repeats' extremes, in words only where no interval could be bootstrapped."""
    if span is None or interval is not None:
        return ""
    return f" (range {span[0]:,.2f}–{span[1]:,.2f}× over the repeats; too few runs for an interval)"
