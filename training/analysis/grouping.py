"""Repeated runs shown as groups: median lines with min-max bands, and the spread table.

A `GroupSeries` is one cell (`training.analysis.groups.cell_key`): a group's runs with the
same swept settings, or one run alone. Its figure is W&B's run-group view: the
median across runs per epoch as a line, the min-max range as a filled band, and
every single run in the legend, hidden until clicked. Pure: no Streamlit.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import plotly.graph_objects as go
from plotly.colors import hex_to_rgb, unlabel_rgb

from training.analysis import energy, groups, stats, tables, workload
from training.analysis.display import MISSING, number, spread_cells
from training.analysis.figures import ACCURACY_METRICS, LABELS, X_AXES, accuracy_range, layout
from training.analysis.series import RunSeries, assign_colors


@dataclass
class GroupSeries:
    """One cell of runs and how it is drawn."""

    id: str  # the group id, or the run id of a run alone
    label: str
    color: str
    runs: list[RunSeries]

    @property
    def device(self) -> str | None:
        return self.runs[0].meta.get("device")

    @property
    def key(self) -> str:
        """Unique per cell: a sweep's cells share the group id, never their first run."""
        return f"{self.id}:{self.runs[0].id}"


def group_series(series: list[RunSeries]) -> list[GroupSeries]:
    """The runs split into cells, in pick order, each in its own colour.

    A run alone keeps its run's colour; a cell's colour is a hash of its key (the group
    and the swept settings), so it too stays the same whatever else is picked.
    """
    found: dict[tuple, list[RunSeries]] = {}
    for run in series:
        found.setdefault(groups.cell_key(run.meta, run.id), []).append(run)
    colors = assign_colors([key[0] if len(key) == 1 else "·".join(map(str, key)) for key in found])
    result = []
    for color, members in zip(colors.values(), found.values()):
        first = members[0]
        label = first.label if len(members) == 1 else f"{first.label} (n={len(members)})"
        result.append(GroupSeries(id=first.meta.get("group") or first.id, label=label,
                                  color=color, runs=members))
    return result


def rgba(color: str, alpha: float) -> str:
    """A palette colour ("#rrggbb" or "rgb(r,g,b)") at the given opacity, for a band."""
    red, green, blue = hex_to_rgb(color) if color.startswith("#") else unlabel_rgb(color)
    return f"rgba({int(red)},{int(green)},{int(blue)},{alpha})"


def band(group: GroupSeries, metric: str, x: str = "epoch") -> list[tuple[float, float, float, float]]:
    """(x, median, min, max) across the group's runs at each epoch that has the metric.

    Against elapsed seconds the x of an epoch is the median of the runs' elapsed times.
    """
    by_epoch: dict[int, list[tuple]] = {}
    for run in group.runs:
        for record in run.epochs:
            if record.get(metric) is not None and record.get(x) is not None:
                by_epoch.setdefault(record["epoch"], []).append((record[x], record[metric]))
    points = []
    for epoch in sorted(by_epoch):
        xs, ys = zip(*by_epoch[epoch])
        points.append((statistics.median(xs), statistics.median(ys), min(ys), max(ys)))
    return points


def make_band_figure(groups_: list[GroupSeries], metric: str, x: str = "epoch",
                     log_y: bool = False, log_x: bool = False, focus: bool = False) -> go.Figure:
    """Each group's median per epoch as a line inside its min-max band; single runs legend-only.

    Args:
        groups_: the cells to draw, from `group_series`.
        metric: an epoch record field, e.g. "val_accuracy" or "epoch_time_s".
        x: "epoch" or "elapsed_s".
        log_y: a log y axis (losses).
        log_x: a log x axis (wall-clock time of runs far apart in duration).
        focus: an accuracy axis from `figures.accuracy_range` of all the cells' runs.
    """
    figure = go.Figure()
    for group in groups_:
        points = band(group, metric, x)
        xs = [p[0] for p in points]
        if len(group.runs) > 1:  # the band: min trace, then max filled down to it
            figure.add_trace(go.Scatter(x=xs, y=[p[2] for p in points], mode="lines", line={"width": 0},
                                        showlegend=False, legendgroup=group.id, hoverinfo="skip",
                                        name=f"{group.label} min"))
            figure.add_trace(go.Scatter(x=xs, y=[p[3] for p in points], mode="lines", line={"width": 0},
                                        fill="tonexty", fillcolor=rgba(group.color, 0.2), showlegend=False,
                                        legendgroup=group.id, hoverinfo="skip", name=f"{group.label} max"))
        figure.add_trace(go.Scatter(
            x=xs, y=[p[1] for p in points], mode="lines+markers", legendgroup=group.id, meta=group.id,
            name=group.label + (" median" if len(group.runs) > 1 else ""),
            line={"color": group.color, "width": 2, "dash": "dash" if group.runs[0].reference else "solid"},
            marker={"size": 5, "color": group.color}))
        if len(group.runs) > 1:
            for number_, run in enumerate(group.runs, start=1):
                pts = [(e[x], e[metric]) for e in run.epochs
                       if e.get(x) is not None and e.get(metric) is not None]
                figure.add_trace(go.Scatter(
                    x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines", visible="legendonly",
                    name=f"{group.label} · run {number_}", legendgroup=f"{group.id}-{run.id}", meta=run.id,
                    line={"color": group.color, "width": 1, "dash": "dot"}))
    against = "by epoch" if x == "epoch" else "against wall-clock time"
    title = f"{LABELS.get(metric, metric)} {against}: median and min-max of repeats"
    layout(figure, title, X_AXES[x], LABELS.get(metric, metric))
    if log_y:
        figure.update_yaxes(type="log")
    if log_x:
        figure.update_xaxes(type="log")
    if focus and metric in ACCURACY_METRICS and (span := accuracy_range(
            [run for group in groups_ for run in group.runs], metric)):
        figure.update_yaxes(range=span)
    return figure


def summaries(groups_: list[GroupSeries], target: float) -> list[dict]:
    """`stats.summarize_runs` of every group, in order."""
    return [stats.summarize_runs([(run.epochs, run.system) for run in group.runs], target,
                                 [(run.meta, run.start) for run in group.runs])
            for group in groups_]


def _time(values: dict, n: int, not_reached: int) -> tuple[str, str]:
    if not_reached == n:
        return "not reached", MISSING
    median = "not reached" if values["median"] is None else number(values["median"], ",.2f", " s")
    high = "∞" if values["max"] is None else number(values["max"], ",.2f")
    return median, f"{number(values['min'], ',.2f')}–{high} s"


def group_rows(groups_: list[GroupSeries], target: float, baseline: int = 0,
               prices: dict[str, float | None] | None = None) -> list[dict]:
    """One row per group: n, median and range of each measure, speedup, energy and cost.

    Args:
        groups_: the cells, from `group_series`.
        target: the validation accuracy the time to target is measured at.
        baseline: the index of the group the speedups are against (>1 = faster than it).
        prices: price per hour by device ("cpu", "gpu"), or by a cell's `key` for one group
            (which wins over its device's); a cost needs one of the two.
    """
    found = summaries(groups_, target)
    base = found[baseline] if found else None
    basis = stats.rate_basis(found) if found else "training"
    rows = []
    for group, summary in zip(groups_, found):
        n, missing = summary["n"], summary["not_reached"]
        epoch, epoch_range = spread_cells(summary["steady_epoch_s"], ",.2f", " s")
        rate, rate_range = spread_cells(summary["train_images_per_s"], ",.0f")
        whole, _ = spread_cells(summary["epoch_images_per_s"], ",.0f")
        ttt, ttt_range = _time(summary["time_to_target_s"], n, missing)
        if (summary.get("protocol") or {}).get("data") == workload.SYNTHETIC:  # random labels: no accuracy
            ttt, ttt_range = workload.SYNTHETIC_NOTE, MISSING
        different = base and workload.blocker(base.get("protocol") or {}, summary.get("protocol") or {})
        speed = (stats.rate_speedup(base, summary, basis, (groups_[baseline].label, group.label))
                 if base and not different
                 else {"median": None, "low": None, "high": None, "basis": basis, "ci_low": None,
                       "verdict": different or MISSING})
        used_rate = "epoch images/s (eval incl.)" if speed.get("basis") == "epoch" else "training images/s"
        used = summary["energy"]
        price = (prices or {}).get(group.key) or (prices or {}).get(group.device)
        total = summary["total_s"]["median"]
        ttt_median = summary["time_to_target_s"]["median"]
        rows.append({
            "Group": group.label, "n": n,
            "Steady epoch (median)": epoch, "Steady epoch (min–max)": epoch_range,
            "Olympic mean": number(stats.public(summary["steady_epoch_s"]["olympic_mean"]), ",.2f", " s"),
            "Images/s (training, median)": rate, "Images/s (training, min–max)": rate_range,
            "Images/s (epoch, eval incl., median)": whole,
            f"Time to {target:.2%} (median)": ttt, "Time to target (min–max)": ttt_range,
            "Not reached": f"{missing} of {n}",
            "Speedup (median)": different or number(speed["median"], ".2f", "×"), "Speedup from": used_rate,
            "Speedup (range)": MISSING if speed["low"] is None else
            f"{speed['low']:.2f}–{speed['high']:.2f}×",
            "Speedup 95% CI": tables.interval_cell(speed),
            "Speedup verdict": "baseline" if group is groups_[baseline] else speed["verdict"],
            "Contention": summary["contention"]["text"],
            "Cores busy": number(summary["cores_busy"]["median"], ".2f"),
            "GFLOP/s (median)": number(_giga(summary["achieved_flops_per_s"]["median"]), ",.1f"),
            "Utilisation (median)": number(summary["utilisation"]["median"], ".1%"),
            "Energy / epoch": _energy(used, "joules_per_epoch"),
            "Energy to target": _energy(used, "joules_to_target"),
            "Cost to target": _money(energy.cost(stats.public(ttt_median), price), price),
            "Cost of run": _money(energy.cost(total, price), price),
        })
    return rows


def _giga(value: float | None) -> float | None:
    return None if value is None else value / 1e9


def _energy(used: dict, key: str) -> str:
    """Joules as text; "not measured" without any power reading, "—" when measured but undefined."""
    if not used["measured"]:
        return energy.NOT_MEASURED
    value = used[key]["median"]
    return MISSING if value is None else energy.format_joules(value)


def _money(value: float | None, price: float | None) -> str:
    if price is None:
        return "no price"
    return number(value, ",.4f")
