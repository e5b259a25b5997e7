"""Scaling charts: samples/s against batch size or threads, GPU-over-CPU speedup, utilisation.

Input is any runs (a sweep's, or picked ones) as `RunSeries`; each run gives one
point, its steady-state samples/s (`training.analysis.comparison`), and runs with the same
device, backend and x are summarised as a median with a min-max error bar. A run
with the default threads (all cores) is placed at its machine's core count from
its start record. The efficiency view puts each run's utilisation (achieved FLOP/s over
its measured peak, `training.analysis.flops`) against batch size. Pure figure builders:
no Streamlit.
"""

from __future__ import annotations

import math
import statistics

import plotly.graph_objects as go

from training.analysis import comparison, flops
from training.analysis.display import MUTED
from training.analysis.figures import layout
from training.analysis.series import PALETTE, RunSeries

X_TITLES = {"batch_size": "Batch size (images per step)", "threads": "CPU threads"}


def scaling_points(series: list[RunSeries]) -> list[dict]:
    """One point per run with a steady state: device, backend, batch size, threads, samples/s,
    and utilisation (None without layers or a measured peak in its log)."""
    points = []
    for run in series:
        value = comparison.steady_samples_per_s(run.epochs)
        config = run.meta.get("config") or {}
        if value is None or not config:
            continue
        cores = ((run.start or {}).get("hardware") or {}).get("cpu_logical_cores")
        used = flops.efficiency(run.epochs, run.start, (run.start or {}).get("test_samples"),
                                config.get("precision"), run.meta.get("device"))
        points.append({"device": run.meta.get("device"), "backend": run.meta.get("backend"),
                       "batch_size": config.get("batch_size"), "threads": config.get("threads") or cores,
                       "samples_per_s": value, "utilisation": used["utilisation"], "run": run.id})
    return points


def aggregate(points: list[dict], x: str, y: str = "samples_per_s"
              ) -> dict[tuple[str, str], list[tuple[float, float, float, float]]]:
    """(device, backend) -> [(x, median, min, max) of y], sorted by x; points without y are left out."""
    cells: dict[tuple, list[float]] = {}
    for point in points:
        if point.get(x) is not None and point.get(y) is not None:
            cells.setdefault((point["device"], point["backend"], point[x]), []).append(point[y])
    lines: dict[tuple[str, str], list] = {}
    for (device, backend, value), rates in sorted(cells.items(), key=lambda item: item[0][2]):
        lines.setdefault((device, backend), []).append(
            (value, statistics.median(rates), min(rates), max(rates)))
    return lines


def make_scaling_figure(points: list[dict], x: str = "batch_size") -> go.Figure:
    """Steady-state samples/s against batch size (or threads, CPU runs only), log axes.

    Args:
        points: from `scaling_points`.
        x: "batch_size", or "threads" for CPU runs.
    """
    if x == "threads":
        points = [p for p in points if p["device"] == "cpu"]
    lines = aggregate(points, x)
    figure = median_lines(lines)
    what = "batch size" if x == "batch_size" else "CPU threads"
    layout(figure, f"Steady-state samples/s against {what} (median, min-max)", X_TITLES[x],
            "Training samples / s")
    ticks_at(figure, [p[0] for line in lines.values() for p in line])
    figure.update_yaxes(type="log")
    return figure


def median_lines(lines: dict[tuple[str, str], list[tuple]]) -> go.Figure:
    """One line per (device, backend) through its medians, with min-max error bars (`aggregate`'s)."""
    figure = go.Figure()
    for index, ((device, backend), line) in enumerate(sorted(lines.items())):
        color = PALETTE[index % len(PALETTE)]
        figure.add_trace(go.Scatter(
            x=[p[0] for p in line], y=[p[1] for p in line], mode="lines+markers",
            name=f"{(device or '?').upper()} · {backend}", line={"color": color, "width": 2},
            error_y={"type": "data", "symmetric": False, "array": [p[3] - p[1] for p in line],
                     "arrayminus": [p[1] - p[2] for p in line], "color": color}))
    return figure


def ticks_at(figure: go.Figure, values: list[float]) -> None:
    """A log x axis with its ticks at the batch sizes or thread counts actually used, not at 10^k."""
    used = sorted(set(values))
    figure.update_xaxes(type="log", tickvals=used, ticktext=[f"{v:,g}" for v in used])


def crossovers(xs: list[float], speedups: list[float]) -> list[float]:
    """Where the speedup crosses 1, interpolated linearly against log(x); [] if it never does."""
    found = []
    for (x0, s0), (x1, s1) in zip(zip(xs, speedups), zip(xs[1:], speedups[1:])):
        if s0 == 1:
            found.append(x0)
        elif (s0 - 1) * (s1 - 1) < 0:
            fraction = (1 - s0) / (s1 - s0)
            found.append(math.exp(math.log(x0) + fraction * (math.log(x1) - math.log(x0))))
    if xs and speedups[-1] == 1:
        found.append(xs[-1])
    return found


def speedup_lines(points: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """backend -> [(batch size, GPU median samples/s / CPU median)] where both devices ran."""
    lines = aggregate(points, "batch_size")
    result = {}
    for backend in sorted({b for _, b in lines}):
        cpu = {p[0]: p[1] for p in lines.get(("cpu", backend), [])}
        gpu = {p[0]: p[1] for p in lines.get(("gpu", backend), [])}
        common = sorted(set(cpu) & set(gpu))
        if common:
            result[backend] = [(batch, gpu[batch] / cpu[batch]) for batch in common]
    return result


def make_speedup_figure(points: list[dict]) -> go.Figure:
    """GPU-over-CPU speedup (ratio of median samples/s) against batch size; crossovers marked."""
    figure = go.Figure()
    for index, (backend, line) in enumerate(speedup_lines(points).items()):
        color = PALETTE[index % len(PALETTE)]
        xs, ys = [p[0] for p in line], [p[1] for p in line]
        figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=f"GPU / CPU · {backend}",
                                    line={"color": color, "width": 2}))
        for where in crossovers(xs, ys):
            figure.add_trace(go.Scatter(x=[where], y=[1.0], mode="markers+text", showlegend=False,
                                        marker={"symbol": "star", "size": 14, "color": color},
                                        text=[f"crossover ≈ {where:,.0f}"], textposition="top center",
                                        name=f"crossover {backend}"))
    figure.add_hline(y=1.0, line={"dash": "dot", "color": MUTED, "width": 1},
                     annotation_text="GPU = CPU", annotation_position="bottom right")
    layout(figure, "GPU-over-CPU speedup against batch size", X_TITLES["batch_size"],
            "Speedup (GPU samples/s / CPU samples/s)")
    ticks_at(figure, [p[0] for line in speedup_lines(points).values() for p in line])
    return figure


def has_utilisation(points: list[dict]) -> bool:
    return any(p.get("utilisation") is not None for p in points)


def make_efficiency_figure(points: list[dict]) -> go.Figure:
    """Utilisation (achieved FLOP/s / measured peak) against batch size, per device and backend."""
    lines = aggregate(points, "batch_size", "utilisation")
    figure = median_lines(lines)
    layout(figure, "Utilisation against batch size: achieved FLOP/s over the measured peak (median, min-max)",
           X_TITLES["batch_size"], "Utilisation (of measured peak)")
    ticks_at(figure, [p[0] for line in lines.values() for p in line])
    figure.update_yaxes(tickformat=".0%", rangemode="tozero")
    return figure
