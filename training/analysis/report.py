"""A shareable report: one self-contained HTML file that works offline.

The summary table with spread, the Plotly charts (interactive: plotly.js is
inlined once, and every chart refers to it), each run's hardware, versions and
settings, and the definitions used. Nothing is loaded from the network when it
is opened. Built from `RunSeries`, so the Compare page's "Download report" and
`python -m training report` write the same file. No Streamlit.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from training.analysis import comparison, grouping, scaling, tables, timesplit
from training.analysis.display import MUTED, number
from training.analysis.series import RunSeries, load_series
from training.store import Run

DEFINITIONS = [
    ("Epoch time", "training plus evaluation seconds of one epoch, as the published logs count it."),
    ("Steady-state epoch time", "the median epoch time excluding epoch 1 (tracing, compilation, "
                                "warm-up) and a profiled epoch (--profile-steps); undefined for a "
                                "one-epoch run."),
    ("Samples/s", "training samples over training seconds; steady-state is the median excluding epoch 1."),
    ("Images/s", "training images per training second (runs trained here, which time training alone), and "
                 "training images per epoch second, evaluation included (every run; the published logs time "
                 "whole epochs only); steady-state medians excluding epoch 1."),
    ("Time to target", "elapsed seconds at the end of the first epoch whose validation accuracy reaches "
                       "the target (DAWNBench/MLPerf): the clock never pauses and evaluation counts."),
    ("Speedup of B over A", "how many times more work per second B does than A: B's steady-state images/s "
                            "over A's, on training images per training second when both runs time training "
                            "alone, else on images per epoch second (a published run); so a 6,000-image "
                            "subset compares correctly with a 60,000-image run. > 1 means B is faster; for "
                            "groups the ratio of medians, with the range from the extremes (B's slowest / "
                            "A's fastest to B's fastest / A's slowest). The time-to-target ratio is shown "
                            "only where both trained the same images per epoch at the same batch size; "
                            "otherwise it is not comparable."),
    ("Speedup 95% CI", "a percentile bootstrap of the ratio of medians (2,000 resamples, fixed seed): over "
                       "each run's steady epochs' images/s for single runs (a published run's from its "
                       "printed epoch times), over the runs' steady images/s for groups. The verdict says "
                       "\"no difference this data can detect\" when the interval holds 1 or lies within "
                       "±2%, \"not enough epochs\" (or runs) below 3 a side, and, where the interval is "
                       "wider than ±5%, about how many more epochs or runs a side would narrow it to ±5% "
                       "(pyperf: n = 4·Z²·σ²/W² from the observed spread)."),
    ("Contention", "the worker's reading, per epoch, of /proc/stat against its own CPU time: an epoch is "
                   "contended when other processes took 10% or more of all the CPUs' time, the hypervisor "
                   "withheld 5% or more (steal), another process used the run's GPU, or the GPU's clocks "
                   "were slowed by heat or a hardware signal. \"not recorded\" for logs before format 4 and "
                   "for published and imported runs."),
    ("Protocol", "what a run trained on: training images per epoch, test images, batch size, precision and "
                 "optimiser; a line above the tables names every difference."),
    ("FLOPs per image", "counted from the model's layer shapes (a multiply-add is 2 FLOPs; batch norm 2, "
                        "ReLU 1, softmax 3 per element; max-pool k²−1 per output): 5.26 MFLOP forward "
                        "for the published CNN; a training image is 3 × forward, an evaluated image "
                        "1 × forward."),
    ("Utilisation", "achieved FLOP/s (FLOPs per image × steady-state images/s) over the device's peak "
                    "measured by a matrix-product probe in the run's backend, device and precision "
                    "(`python -m training peak`): the figure LLM training reports call MFU. A "
                    "datasheet peak, where shown, is labelled so."),
    ("Olympic mean", "MLPerf Training's: with 3 or more runs, drop the fastest and the slowest and average "
                     "the rest; a run that never reaches the target counts as infinitely slow."),
    ("Where the time goes", "each part's median over the steady epochs: training steps; the first step's "
                            "wait (epoch begin to the first batch, plus how much longer the first step "
                            "took than the median step: input pipeline start, copy to the device); "
                            "evaluation; and "
                            "the worker's own time outside the steps (progress records, the profiler). The "
                            "parts sum to the epoch time; \"not recorded\" for runs whose logs lack them "
                            "(published and imported runs, logs before format 3). A profiled epoch is not "
                            "steady."),
    ("Cores kept busy", "mean of cpu_s / epoch_time_s over the steady epochs (1.0 = one core)."),
    ("Energy", "GPU power (NVML) integrated over time, plus CPU package energy (Linux RAPL) where readable; "
               "\"not measured\" where there was no reading. Nothing is estimated."),
    ("Cost", "seconds × the price per hour given for the run's device / 3600."),
]
STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#111}table{border-collapse:collapse;
font-size:13px;margin:8px 0 20px}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f3f4f6}.charts{display:grid;grid-template-columns:1fr 1fr;gap:12px}
code{font-size:12px}.note{color:#555;font-size:13px}"""


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p class='note'>No rows.</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row.values()) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def charts(series: list[RunSeries], target: float) -> list[go.Figure]:
    """The report's figures: bands of the groups, and scaling where the runs vary."""
    cells = grouping.group_series(series)
    figures = [grouping.make_band_figure(cells, "val_accuracy"),
               grouping.make_band_figure(cells, "val_accuracy", x="elapsed_s"),
               grouping.make_band_figure(cells, "epoch_time_s"),
               grouping.make_band_figure(cells, "samples_per_s")]
    figures[0].add_hline(y=target, line={"dash": "dot", "color": MUTED, "width": 1})
    points = scaling.scaling_points(series)
    if len({p["batch_size"] for p in points}) > 1:
        figures.append(scaling.make_scaling_figure(points))
        if scaling.speedup_lines(points):
            figures.append(scaling.make_speedup_figure(points))
    if len({p["batch_size"] for p in points}) > 1 and scaling.has_utilisation(points):
        figures.append(scaling.make_efficiency_figure(points))
    if scaling.flops_speedup_lines(points):  # a sweep over models on both devices
        figures.append(scaling.make_flops_speedup_figure(points))
    if len({p["threads"] for p in points if p["device"] == "cpu"}) > 1:
        figures.append(scaling.make_scaling_figure(points, x="threads"))
    figures.append(timesplit.make_time_split_figure(series))
    return figures


def _run_rows(series: list[RunSeries], target: float) -> list[dict]:
    rows = []
    for run in series:
        start = run.start or {}
        hardware, versions = start.get("hardware") or {}, start.get("versions") or {}
        config = run.meta.get("config") or {}
        measured = comparison.measure(run.epochs, target)
        efficiency = comparison.describe(run.epochs, run.meta, run.start, target)
        rows.append({
            "Run": f"{run.label} [{run.id}]",
            "Group": run.meta.get("group") or "",
            "Hardware": ", ".join(str(v) for v in (hardware.get("cpu_model"),
                                                   f"{hardware.get('cpu_logical_cores')} logical cores",
                                                   *(hardware.get("gpu_names") or [])) if v) or "—",
            "Versions": ", ".join(f"{k} {v}" for k, v in versions.items() if v) or "—",
            "Settings": ", ".join(f"{k}={v}" for k, v in config.items()) or "—",
            "Steady epoch": f"{measured['steady_epoch_s']:.3f} s" if measured["steady_epoch_s"] else "—",
            "Contention": measured["contention"]["text"],
            "Measured peak": number(efficiency["peak_flops_per_s"] and efficiency["peak_flops_per_s"] / 1e9,
                                    ",.1f", " GFLOP/s"),
        })
    return rows


def build_report(series: list[RunSeries], target: float = comparison.DEFAULT_TARGET,
                 prices: dict[str, float | None] | None = None,
                 title: str = "Training benchmark report") -> str:
    """The whole HTML document as text.

    Args:
        series: the runs, e.g. from `load_series` or the Compare page.
        target: the validation accuracy the time to target is measured at.
        prices: price per hour by device ("cpu", "gpu"), for the cost columns.
        title: the page's heading.
    """
    cells = grouping.group_series(series)
    divs = [figure.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})
            for figure in charts(series, target)]
    priced = ", ".join(f"{d.upper()} {p:g}/h" for d, p in (prices or {}).items() if p is not None)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>Written {time.strftime('%Y-%m-%d %H:%M %Z')}; target validation accuracy "
        f"{target:.2%}; {len(series)} runs in {len(cells)} groups. Prices: {html.escape(priced or 'none')}."
        " Works offline: plotly.js is inside this file.</p>",
        "<h2>Summary (median and spread of each group)</h2>",
        *(f"<p class='note'>{html.escape(note)}</p>" for note in [tables.protocol_caption(series, None)]
          if note),
        _table(grouping.group_rows(cells, target, prices=prices)),
        "<h2>Charts</h2><p class='note'>Lines are medians, bands min–max; click a legend entry "
        "to show a single run.</p><div class='charts'>",
        *(f"<div>{div}</div>" for div in divs),
        "</div><h2>Runs: hardware, versions, settings</h2>",
        _table(_run_rows(series, target)),
        "<h2>Definitions</h2><dl>",
        *(f"<dt><b>{html.escape(term)}</b></dt><dd>{html.escape(text)}</dd>" for term, text in DEFINITIONS),
        "</dl></body></html>",
    ]
    return "\n".join(parts)


def write_report(runs: list[Run], path: str | Path, target: float = comparison.DEFAULT_TARGET,
                 prices: dict[str, float | None] | None = None,
                 title: str = "Training benchmark report") -> Path:
    """Write `build_report` of these runs to `path`; returns the path."""
    path = Path(path)
    path.write_text(build_report(load_series(runs), target, prices, title), encoding="utf-8")
    return path
