"""Figure builders: run data in, Plotly figure out. Pure, tested without Streamlit.

Every builder takes the same list of `RunSeries`, so a run keeps one colour
(a hash of its id: `series.assign_colors`) and one legend label on every chart.
Published reference runs are dashed. Legends sit below the axes, in the figure's
own margin, so they never cover a tick or an axis title. Two rules pick the
default view: `wants_log_time` (durations more than 10x apart) and
`accuracy_range` (the axis starts at the lowest accuracy after each run's first
epoch, so one small run's early 0.68 does not squash the rest into a line).
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


LOG_TIME_RATIO = 10.0  # durations further apart than this get a log time axis by default
ACCURACY_METRICS = ("val_accuracy", "accuracy")
LEGEND_ROW_PX = 22  # one row of a horizontal legend
LEGEND_ROW_CHARS = 70  # about how many legend characters fit on one row of a half-width chart


def legend_below(figure: go.Figure, names: list[str], height: int) -> None:
    """A horizontal legend under the x-axis title, in a bottom margin made tall enough for it.

    The legend is placed in container coordinates (0 = the figure's bottom edge), and the
    margin grows by one row per `LEGEND_ROW_CHARS` of labels, so it never overlaps the axis.
    """
    rows = max(1, -(-sum(len(name) + 6 for name in names) // LEGEND_ROW_CHARS)) if names else 0
    extra = rows * LEGEND_ROW_PX
    figure.update_layout(
        legend={"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom", "x": 0},
        margin={"l": 60, "r": 20, "t": 50, "b": 60 + extra}, height=height + extra)


_AXIS = {"gridcolor": "#EBF0F8", "linecolor": "#EBF0F8", "zerolinecolor": "#EBF0F8", "ticks": "",
         "automargin": True, "title": {"standoff": 15}}
# The look of Plotly's "plotly_white", its layout only: the full template (7 KB of every trace
# type's defaults) is deep-copied into each figure by Plotly and parsed again by the browser on
# every redraw, a cost a live page pays once per epoch (issue 23).
PLAIN = go.layout.Template(layout={
    "paper_bgcolor": "white", "plot_bgcolor": "white", "font": {"color": "#2a3f5f"},
    "colorway": ["#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692", "#B6E880"],
    "hoverlabel": {"align": "left"}, "title": {"x": 0.05}, "xaxis": _AXIS, "yaxis": _AXIS})


def layout(figure: go.Figure, title: str, x_title: str, y_title: str, height: int = 380) -> go.Figure:
    figure.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, template=PLAIN,
                         hovermode="closest")
    legend_below(figure, [t.name for t in figure.data if t.showlegend is not False and t.name], height)
    return figure


def has_points(figure: go.Figure) -> bool:
    """Whether any trace has a point to draw: an empty figure is said in words instead."""
    return any(x is not None for trace in figure.data for x in (trace.x or ()))


def duration(run: RunSeries) -> float | None:
    """Seconds from the start of training to the end of the run's last epoch."""
    times = [e["elapsed_s"] for e in run.epochs if e.get("elapsed_s")]
    return max(times) if times else None


def wants_log_time(runs: list[RunSeries]) -> bool:
    """A log time axis by default: the runs' durations differ by more than `LOG_TIME_RATIO`.

    A 30 s run beside a 3,318 s one is otherwise a vertical line at x = 0.
    """
    durations = [d for d in map(duration, runs) if d]
    return len(durations) > 1 and max(durations) / min(durations) > LOG_TIME_RATIO


def accuracy_range(runs: list[RunSeries], metric: str, target: float | None = None) -> list[float] | None:
    """[low, high] for an accuracy axis that starts where the curves are interesting, or None.

    Low is the lowest value after each run's first epoch (a one-epoch run's only value),
    less a tenth of the span; so the first epochs of a small run fall below the axis
    (the "Whole accuracy range" toggle shows them) instead of squashing every other
    curve into a line. None when that would hide nothing (autorange does as well).
    """
    values, steady = [], []
    for run in runs:
        ys = [e[metric] for e in sorted(run.epochs, key=lambda e: e.get("epoch") or 0)
              if e.get(metric) is not None]
        values += ys
        steady += ys[1:] or ys
    if not steady:
        return None
    low, high = min(steady), max(values + ([target] if target is not None else []))
    if target is not None:
        low = min(low, target)
    if low <= min(values):
        return None
    pad = max((high - low) * 0.1, 0.001)
    return [low - pad, min(high + pad, 1.0 + pad)]


def _line(run: RunSeries, xs: list, ys: list, mode: str = "lines+markers",
          epochs: list | None = None) -> go.Scatter:
    """One run's trace; `epochs` (each point's epoch number) goes to hover and `customdata`."""
    return go.Scatter(
        x=xs, y=ys, name=run.label, mode=mode, legendgroup=run.id,
        line={"color": run.color, "dash": "dash" if run.reference else "solid", "width": 2},
        marker={"color": run.color, "size": 5}, meta=run.id, customdata=epochs,
        hovertemplate=None if epochs is None else "epoch %{customdata}: %{y}<br>x = %{x}")


def make_metric_figure(runs: list[RunSeries], metric: str, x: str = "epoch",
                       log_y: bool = False, log_x: bool = False,
                       target: float | None = None, focus: bool = False) -> go.Figure:
    """One metric per epoch (x="epoch") or against elapsed seconds (x="elapsed_s").

    `target` draws the target validation accuracy as a dotted line; `focus` starts an
    accuracy axis at `accuracy_range` (the early epochs stay in the data, for hover and zoom).
    """
    figure = go.Figure()
    for run in runs:
        points = [(e.get(x), e.get(metric), e.get("epoch")) for e in run.epochs
                  if e.get(x) is not None and e.get(metric) is not None]
        figure.add_trace(_line(run, [p[0] for p in points], [p[1] for p in points],
                               epochs=[p[2] for p in points]))
    title = f"{LABELS.get(metric, metric)} by {X_AXES[x].split()[0].lower()}"
    if x == "elapsed_s":
        title = f"{LABELS.get(metric, metric)} against wall-clock time"
    layout(figure, title, X_AXES[x], LABELS.get(metric, metric))
    if log_y:
        figure.update_yaxes(type="log")
    if log_x:
        figure.update_xaxes(type="log")
    if focus and metric in ACCURACY_METRICS and (span := accuracy_range(runs, metric, target)):
        figure.update_yaxes(range=span)
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
