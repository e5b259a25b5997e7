"""Scaling charts: samples/s against batch size or threads, GPU-over-CPU speedup, utilisation.

Input is any runs (a sweep's, or picked ones) as `RunSeries`; each run gives one
point, its steady-state samples/s (`training.analysis.comparison`), and runs with the same
workload (model and data), device, backend and x are summarised as a median with a
min-max error bar: a line never mixes two models. A run with the default threads (all
cores) is placed at its machine's core count from its start record. The efficiency view
puts each run's utilisation (achieved FLOP/s over its measured peak,
`training.analysis.flops`) against batch size. The model-size view puts the GPU-over-CPU
speedup of each workload against its forward FLOPs per image, so a sweep over models
(`sweep --model mnist-cnn,keras:mobilenet_v2,keras:resnet50 --device cpu,gpu`) shows the
model size where the GPU starts to win. Pure figure builders: no Streamlit.
"""

from __future__ import annotations

import math
import statistics

import plotly.graph_objects as go

from training.analysis import comparison, flops
from training.analysis.display import MUTED
from training.analysis.figures import layout
from training.analysis.series import PALETTE, RunSeries
from training.config import DEFAULT_DATA, DEFAULT_MODEL, workload_of

X_TITLES = {"batch_size": "Batch size (images per step)", "threads": "CPU threads",
            "flops": "Forward FLOPs per image (model size)"}
DEFAULT_WORKLOAD = DEFAULT_MODEL  # the published CNN on MNIST: lines of it keep their plain names


def workload_label(config: dict | None) -> str:
    """The model, and the data when it is not MNIST: what tells two workloads apart in a legend."""
    model, data = workload_of(config)
    return model if data == DEFAULT_DATA else f"{model} on {data}"


def forward_flops_of(run: RunSeries) -> float | None:
    """The run's forward FLOPs per image (its backend's count, else its layers'), or None."""
    try:
        counted = flops.model_flops(run.start)
    except flops.FlopsError:
        return None
    return counted["forward"] if counted and counted["forward"] else None


def line_name(device: str | None, backend: str, workload: str) -> str:
    name = f"{(device or '?').upper()} · {backend}"
    return name if workload == DEFAULT_WORKLOAD else f"{name} · {workload}"


def scaling_points(series: list[RunSeries]) -> list[dict]:
    """One point per run with a steady state: workload, device, backend, batch size, threads,
    samples/s, forward FLOPs per image and utilisation (None without a FLOP count or a measured
    peak in its log)."""
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
                       "samples_per_s": value, "utilisation": used["utilisation"], "run": run.id,
                       "workload": workload_label(config), "flops_per_image": forward_flops_of(run)})
    return points


def aggregate(points: list[dict], x: str, y: str = "samples_per_s"
              ) -> dict[tuple[str, str, str], list[tuple[float, float, float, float]]]:
    """(device, backend, workload) -> [(x, median, min, max) of y], sorted by x; points without y left out."""
    cells: dict[tuple, list[float]] = {}
    for point in points:
        if point.get(x) is not None and point.get(y) is not None:
            key = (point["device"], point["backend"], point.get("workload", DEFAULT_WORKLOAD), point[x])
            cells.setdefault(key, []).append(point[y])
    lines: dict[tuple[str, str, str], list] = {}
    for (device, backend, workload, value), rates in sorted(cells.items(), key=lambda item: item[0][3]):
        lines.setdefault((device, backend, workload), []).append(
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


def median_lines(lines: dict[tuple[str, str, str], list[tuple]]) -> go.Figure:
    """One line per (device, backend, workload) through its medians, min-max error bars (`aggregate`'s)."""
    figure = go.Figure()
    for index, ((device, backend, workload), line) in enumerate(sorted(lines.items())):
        color = PALETTE[index % len(PALETTE)]
        figure.add_trace(go.Scatter(
            x=[p[0] for p in line], y=[p[1] for p in line], mode="lines+markers",
            name=line_name(device, backend, workload), line={"color": color, "width": 2},
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
    """backend (· workload) -> [(batch size, GPU median samples/s / CPU median)] where both devices ran."""
    lines = aggregate(points, "batch_size")
    result = {}
    for backend, workload in sorted({(b, w) for _, b, w in lines}):
        cpu = {p[0]: p[1] for p in lines.get(("cpu", backend, workload), [])}
        gpu = {p[0]: p[1] for p in lines.get(("gpu", backend, workload), [])}
        common = sorted(set(cpu) & set(gpu))
        if common:
            name = backend if workload == DEFAULT_WORKLOAD else f"{backend} · {workload}"
            result[name] = [(batch, gpu[batch] / cpu[batch]) for batch in common]
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


# -- the GPU-over-CPU speedup against the model's size -----------------------------------------------------

def flops_speedup_lines(points: list[dict]) -> dict[str, list[dict]]:
    """"backend · batch N" -> one entry per workload run on both devices, sorted by FLOPs per image.

    Each entry: the workload, its forward FLOPs per image (the median of its runs' counts),
    the speedup (GPU median samples/s over CPU median) and its range (GPU's slowest over
    CPU's fastest to GPU's fastest over CPU's slowest), and the run counts. A workload
    without a FLOP count is left out. Only lines with two or more workloads: one model
    alone shows no trend (the batch-size view has it).
    """
    cells: dict[tuple, dict[str, list[dict]]] = {}
    for point in points:
        if point.get("device") in ("cpu", "gpu") and point.get("flops_per_image"):
            key = (point["backend"], point["batch_size"], point.get("workload", DEFAULT_WORKLOAD))
            cells.setdefault(key, {"cpu": [], "gpu": []})[point["device"]].append(point)
    lines: dict[str, list[dict]] = {}
    for (backend, batch, workload), by_device in sorted(cells.items(), key=lambda item: str(item[0])):
        cpu, gpu = ([p["samples_per_s"] for p in by_device[d]] for d in ("cpu", "gpu"))
        if not cpu or not gpu:
            continue
        counts = [p["flops_per_image"] for p in by_device["cpu"] + by_device["gpu"]]
        lines.setdefault(f"{backend} · batch {batch}", []).append({
            "workload": workload, "flops_per_image": statistics.median(counts),
            "speedup": statistics.median(gpu) / statistics.median(cpu),
            "low": min(gpu) / max(cpu), "high": max(gpu) / min(cpu), "runs": (len(cpu), len(gpu))})
    return {name: sorted(line, key=lambda e: e["flops_per_image"]) for name, line in lines.items()
            if len(line) > 1}


def make_flops_speedup_figure(points: list[dict]) -> go.Figure:
    """GPU-over-CPU speedup against forward FLOPs per image, one point per model, crossovers marked.

    Below 1 the CPU is enough for that model; above it the GPU wins. Each point is named by
    its model; the bar is the speedup's range over the repeats.
    """
    figure = go.Figure()
    lines = flops_speedup_lines(points)
    for index, (name, line) in enumerate(lines.items()):
        color = PALETTE[index % len(PALETTE)]
        xs, ys = [e["flops_per_image"] for e in line], [e["speedup"] for e in line]
        figure.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines+markers+text", name=f"GPU / CPU · {name}",
            line={"color": color, "width": 2},
            text=[e["workload"] for e in line], textposition="top left",
            customdata=[[e["runs"][0], e["runs"][1]] for e in line],
            hovertemplate="%{text}<br>%{x:.3s} FLOPs/image<br>speedup %{y:.2f}×"
                          "<br>%{customdata[0]} CPU · %{customdata[1]} GPU runs<extra></extra>",
            error_y={"type": "data", "symmetric": False, "array": [e["high"] - e["speedup"] for e in line],
                     "arrayminus": [e["speedup"] - e["low"] for e in line], "color": color}))
        for where in crossovers(xs, ys):
            figure.add_trace(go.Scatter(x=[where], y=[1.0], mode="markers+text", showlegend=False,
                                        marker={"symbol": "star", "size": 14, "color": color},
                                        text=[f"crossover ≈ {where / 1e6:,.3g} MFLOP/image"],
                                        textposition="bottom center", name=f"crossover {name}"))
    figure.add_hline(y=1.0, line={"dash": "dot", "color": MUTED, "width": 1},
                     annotation_text="GPU = CPU: below, the CPU is enough",
                     annotation_position="bottom right")
    layout(figure, "GPU-over-CPU speedup against model size (median, min-max)", X_TITLES["flops"],
           "Speedup (GPU samples/s / CPU samples/s)")
    figure.update_xaxes(type="log", exponentformat="SI")
    figure.update_yaxes(type="log")
    return figure
