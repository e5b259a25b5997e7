"""Where the time goes: a run's steady-state epoch split into its parts, and their stacked bar.

The worker records the split in every epoch record (log format 3; the fields
are defined in docs/log-format.md): training steps, the first step's wait,
evaluation, and the worker's own time outside the steps; they sum to
epoch_time_s. A run whose log has no split (a published or imported run, a log
written before format 3) is "not recorded", never zero. Pure: records in,
numbers and a Plotly figure out.
"""

from __future__ import annotations

import statistics

import plotly.graph_objects as go

from training.analysis import comparison
from training.analysis.display import MUTED
from training.analysis.figures import PLAIN, legend_below
from training.analysis.series import RunSeries

# (field, legend label, colour), in stacking order.
PARTS = (
    ("steps_s", "Training steps", "#2563eb"),
    ("first_step_wait_s", "First step's wait (input pipeline, copy to device)", "#f59e0b"),
    ("eval_s", "Evaluation", "#10b981"),
    ("outside_s", "Outside the steps (progress records, profiler)", "#9ca3af"),
)
NOT_RECORDED = "not recorded"
NOT_YET = "no steady epoch yet"  # recorded, but only epoch 1 (or a profiled one) so far


def recorded(epoch: dict) -> bool:
    """Whether an epoch record carries the whole split (log format 3, written by the worker)."""
    return all(epoch.get(key) is not None for key, _, _ in PARTS) and epoch.get("epoch_time_s") is not None


def missing_reason(epochs: list[dict]) -> str:
    """What a run without a steady split shows instead of a bar."""
    return NOT_YET if any(recorded(e) for e in epochs) else NOT_RECORDED


def steady_split(epochs: list[dict]) -> dict | None:
    """Each part's median over the steady epochs that recorded the split, or None.

    Steady as everywhere else (`comparison.steady_epochs`: not epoch 1, not a
    profiled epoch). Also returns `epoch_time_s`, the median epoch time of the
    same epochs, and `epochs`, how many there were. Medians of the parts need
    not add up to the median of their sums; with one steady epoch they do.
    """
    steady = [e for e in comparison.steady_epochs(epochs) if recorded(e)]
    if not steady:
        return None
    split = {key: float(statistics.median(e[key] for e in steady)) for key, _, _ in PARTS}
    split["epoch_time_s"] = float(statistics.median(e["epoch_time_s"] for e in steady))
    split["epochs"] = len(steady)
    return split


def any_split(runs: list[RunSeries]) -> bool:
    """Whether at least one run has a steady split to draw; else the page says why in words."""
    return any(steady_split(run.epochs) for run in runs)


def empty_reason(runs: list[RunSeries]) -> str:
    """Why there is no bar to draw: no steady epoch yet, or no log that records the split."""
    if any(missing_reason(run.epochs) == NOT_YET for run in runs):
        return "Where the time goes: no steady epoch yet (epoch 1 is warm-up)."
    return ("Where the time goes: not recorded for these runs (published and imported logs time whole "
            "epochs only; runs trained here record it).")


def row_labels(runs: list[RunSeries]) -> list[str]:
    """Each run's legend label; one that two runs share gets its run id, so no bars merge."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.label] = counts.get(run.label, 0) + 1
    return [run.label if counts[run.label] == 1 else f"{run.label} · {run.id}" for run in runs]


def make_time_split_figure(runs: list[RunSeries]) -> go.Figure:
    """One horizontal stacked bar per run: its steady-state parts, in seconds.

    A diamond marks each run's median epoch time. A run without the split gets
    a row that says "not recorded" (or "no steady epoch yet" while only epoch 1
    is in), so its absence is not read as zero time.
    """
    splits = [(run, steady_split(run.epochs)) for run in runs]
    labels = row_labels(runs)
    figure = go.Figure()
    for key, label, color in PARTS:
        figure.add_trace(go.Bar(
            y=labels, x=[split[key] if split else None for _, split in splits], name=label,
            orientation="h", marker={"color": color}, meta=key,
            hovertemplate="%{y}<br>" + label + ": %{x:.3f} s<extra></extra>"))
    recorded = [(label, split) for label, (_, split) in zip(labels, splits) if split]
    figure.add_trace(go.Scatter(
        y=[label for label, _ in recorded], x=[split["epoch_time_s"] for _, split in recorded],
        name="Median epoch time", mode="markers", meta="epoch_time_s",
        marker={"symbol": "diamond", "color": "#111827", "size": 9},
        hovertemplate="%{y}<br>median epoch: %{x:.3f} s<extra></extra>"))
    for label, (run, split) in zip(labels, splits):
        if split is None:
            figure.add_annotation(y=label, x=0, xanchor="left", showarrow=False,
                                  text=missing_reason(run.epochs), font={"color": MUTED})
    figure.update_layout(
        title="Where the time goes: steady-state epoch, median of each part",
        xaxis_title="Seconds per epoch", barmode="stack", template=PLAIN,
        yaxis={"autorange": "reversed", "type": "category", "automargin": True})
    legend_below(figure, [label for _, label, _ in PARTS] + ["Median epoch time"],
                 height=max(220, 100 + 40 * len(runs)))
    return figure
