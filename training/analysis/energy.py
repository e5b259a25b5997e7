"""Energy and cost of a run: joules per epoch and to the target, money per hour.

DAWNBench ranks by time to accuracy and by its cost; this adds energy. Inputs
are a run's system samples (docs/log-format.md):
  GPU   `gpus[].power_w` (NVML, instantaneous watts): summed over the run's GPUs and
        integrated with the trapezoid rule, holding the first and last value beyond them;
  CPU   `cpu_energy_j` (Linux RAPL, cumulative joules of the packages): the difference
        between two instants, linear between samples (constant power within an interval).
Samples and epochs are aligned on their Unix `time`: an epoch ends at its record's
`time` and lasts `epoch_time_s`; training starts at the first epoch's `time -
elapsed_s`. Where a source has no samples its energy is None and is shown as
NOT_MEASURED: nothing is estimated. Pure functions: no I/O.
"""

from __future__ import annotations

import statistics

from training.analysis.comparison import time_to_target

NOT_MEASURED = "not measured"
SOURCES = ("gpu", "cpu")


def gpu_power_points(system: list[dict]) -> list[tuple[float, float]]:
    """(Unix time, watts summed over the run's GPUs) for samples that have GPU power."""
    points = []
    for sample in system:
        watts = [g["power_w"] for g in sample.get("gpus", []) if g.get("power_w") is not None]
        if watts and sample.get("time") is not None:
            points.append((float(sample["time"]), float(sum(watts))))
    return sorted(points)


def cpu_energy_points(system: list[dict]) -> list[tuple[float, float]]:
    """(Unix time, cumulative CPU package joules) for samples that have RAPL energy."""
    return sorted((float(s["time"]), float(s["cpu_energy_j"])) for s in system
                  if s.get("cpu_energy_j") is not None and s.get("time") is not None)


def _value_at(points: list[tuple[float, float]], t: float, extrapolate: bool) -> float:
    """Piecewise-linear value at t; beyond the ends, held flat or continued along the end slope."""
    if len(points) == 1:
        return points[0][1]
    if t <= points[0][0] or t >= points[-1][0]:
        (t0, v0), (t1, v1) = points[:2] if t <= points[0][0] else points[-2:]
        if not extrapolate:
            return v0 if t <= points[0][0] else v1
    else:
        index = next(i for i in range(1, len(points)) if points[i][0] >= t)
        (t0, v0), (t1, v1) = points[index - 1], points[index]
    return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def integrate_power(points: list[tuple[float, float]], start: float, end: float) -> float | None:
    """Joules from watt samples over [start, end] (trapezoid, exact for piecewise-linear power)."""
    if not points or end <= start:
        return None
    times = [start, *(t for t, _ in points if start < t < end), end]
    values = [_value_at(points, t, extrapolate=False) for t in times]
    return sum((t1 - t0) * (v0 + v1) / 2 for t0, t1, v0, v1 in zip(times, times[1:], values, values[1:]))


def energy_between(points: list[tuple[float, float]], start: float, end: float) -> float | None:
    """Joules between two instants from a cumulative counter's samples (needs two samples)."""
    if len(points) < 2 or end <= start:
        return None
    return _value_at(points, end, extrapolate=True) - _value_at(points, start, extrapolate=True)


def _joules(source: str, points, start: float, end: float) -> float | None:
    return integrate_power(points, start, end) if source == "gpu" else energy_between(points, start, end)


def run_energy(epochs: list[dict], system: list[dict], target: float) -> dict:
    """Per source (gpu, cpu): steady joules per epoch, joules to target and in all, or None.

    `measured` lists the sources that had readings; the `total_*` keys add them up and are
    None when none was measured.
    """
    timed = [e for e in epochs if e.get("time") is not None and e.get("epoch_time_s") is not None]
    reached = time_to_target(epochs, target)
    found: dict = {"measured": []}
    for source in SOURCES:
        points = gpu_power_points(system) if source == "gpu" else cpu_energy_points(system)
        per_epoch = to_target = total = None
        if points and timed:
            first = timed[0]
            start = first["time"] - first.get("elapsed_s", first["epoch_time_s"])  # training began
            steady = [_joules(source, points, e["time"] - e["epoch_time_s"], e["time"])
                      for e in timed if e["epoch"] > 1 and not e.get("profiled")]  # as steady_epochs
            steady = [j for j in steady if j is not None]
            per_epoch = statistics.median(steady) if steady else None
            total = _joules(source, points, start, timed[-1]["time"])
            if reached:
                end = next(e["time"] for e in timed if e["epoch"] == reached[1])
                to_target = _joules(source, points, start, end)
            if total is not None:
                found["measured"].append(source)
        found[source] = {"joules_per_epoch": per_epoch, "joules_to_target": to_target, "joules": total}
    for key in ("joules_per_epoch", "joules_to_target", "joules"):
        values = [found[s][key] for s in found["measured"]]
        found[f"total_{key}"] = sum(values) if values and None not in values else None
    return found


def cost(seconds: float | None, price_per_hour: float | None) -> float | None:
    """Money for `seconds` of a device rented at `price_per_hour`; None if either is unknown."""
    if seconds is None or price_per_hour is None:
        return None
    return seconds * price_per_hour / 3600.0


def format_joules(joules: float | None) -> str:
    """'1.23 kJ', '456 J', or NOT_MEASURED: never a silent estimate."""
    if joules is None:
        return NOT_MEASURED
    return f"{joules / 1000:,.2f} kJ" if joules >= 1000 else f"{joules:,.1f} J"
