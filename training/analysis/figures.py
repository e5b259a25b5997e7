"""Figure builders: run data in, Plotly figure out. Pure, tested without Streamlit.

Every builder takes the same list of `RunSeries`, so a run keeps one colour
and one legend label on every chart. Published reference runs are dashed.
"""

from __future__ import annotations

import plotly.graph_objects as go

from training.analysis.display import MUTED
from training.analysis.series import RunSeries

X_AXES = {"epoch": "Epoch", "elapsed_s": "Elapsed wall-clock seconds"}
LABELS = {
    "val_accuracy": "Validation accuracy", "val_loss": "Validation loss",
    "accuracy": "Training accuracy", "loss": "Training loss",
    "epoch_time_s": "Seconds per epoch", "samples_per_s": "Training samples / s",
}
SYSTEM_LABELS = {
    "process_cpu_percent": "Training process CPU % (100 = one core)",
    "system_cpu_percent": "Machine CPU % (100 = all cores)",
    "rss_mb": "Process memory RSS (MiB)",
    "gpu_util_percent": "GPU utilisation %", "gpu_memory_used_mb": "GPU memory used (MiB)",
    "gpu_power_w": "GPU power (W)", "gpu_temperature_c": "GPU temperature (°C)",
}


def layout(figure: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    figure.update_layout(
        title=title, xaxis_title=x_title, yaxis_title=y_title, template="plotly_white",
        legend={"orientation": "h", "y": -0.25}, margin={"l": 60, "r": 20, "t": 50, "b": 40},
        hovermode="closest", height=380)
    return figure


def _line(run: RunSeries, xs: list, ys: list, mode: str = "lines+markers") -> go.Scatter:
    return go.Scatter(
        x=xs, y=ys, name=run.label, mode=mode, legendgroup=run.id,
        line={"color": run.color, "dash": "dash" if run.reference else "solid", "width": 2},
        marker={"color": run.color, "size": 5}, meta=run.id)


def make_metric_figure(runs: list[RunSeries], metric: str, x: str = "epoch",
                       log_y: bool = False, log_x: bool = False,
                       target: float | None = None) -> go.Figure:
    """One metric per epoch (x="epoch") or against elapsed seconds (x="elapsed_s").

    `target` draws the target validation accuracy as a dotted line.
    """
    figure = go.Figure()
    for run in runs:
        points = [(e.get(x), e.get(metric)) for e in run.epochs
                  if e.get(x) is not None and e.get(metric) is not None]
        figure.add_trace(_line(run, [p[0] for p in points], [p[1] for p in points]))
    title = f"{LABELS.get(metric, metric)} by {X_AXES[x].split()[0].lower()}"
    if x == "elapsed_s":
        title = f"{LABELS.get(metric, metric)} against wall-clock time"
    layout(figure, title, X_AXES[x], LABELS.get(metric, metric))
    if log_y:
        figure.update_yaxes(type="log")
    if log_x:
        figure.update_xaxes(type="log")
    if target is not None:
        figure.add_hline(y=target, line={"dash": "dot", "color": MUTED, "width": 1},
                         annotation_text=f"target {target:.2%}", annotation_position="bottom right")
    return figure


def make_epoch_time_figure(runs: list[RunSeries]) -> go.Figure:
    return make_metric_figure(runs, "epoch_time_s")


def make_throughput_figure(runs: list[RunSeries]) -> go.Figure:
    return make_metric_figure(runs, "samples_per_s")


def _system_value(sample: dict, key: str) -> float | None:
    if not key.startswith("gpu_"):
        return sample.get(key)
    values = [g.get(key.removeprefix("gpu_")) for g in sample.get("gpus", [])]
    values = [v for v in values if v is not None]
    return sum(values) if values else None  # summed over the run's GPUs


def make_system_figure(runs: list[RunSeries], key: str) -> go.Figure:
    """A live system metric (CPU %, RSS, GPU fields) against the run's own seconds."""
    figure = go.Figure()
    for run in runs:
        points = [(s.get("elapsed_s"), _system_value(s, key)) for s in run.system]
        points = [p for p in points if p[1] is not None]
        if points:
            figure.add_trace(_line(run, [p[0] for p in points], [p[1] for p in points], mode="lines"))
    return layout(figure, SYSTEM_LABELS.get(key, key), "Seconds since the run started",
                   SYSTEM_LABELS.get(key, key))


def system_keys(runs: list[RunSeries]) -> list[str]:
    """The system metrics at least one of the runs has samples of, in display order."""
    return [key for key in SYSTEM_LABELS
            if any(_system_value(sample, key) is not None for run in runs for sample in run.system)]


def system_peaks(samples: list[dict]) -> dict[str, float]:
    """The largest value of each system metric over a run."""
    peaks = {}
    for key in SYSTEM_LABELS:
        values = [v for v in (_system_value(s, key) for s in samples) if v is not None]
        if values:
            peaks[key] = max(values)
    return peaks
