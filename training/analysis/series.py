"""What the charts and tables need of one run: `RunSeries`, plain data, and `load_series`.

`load_series` is the one builder: the command line's report reads each run's
log from disk, the dashboard passes its per-session followers instead. The
pure builders in figures.py, tables.py, grouping.py, scaling.py and report.py
read them. A run keeps one colour and one legend label on every chart of a page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from plotly.colors import qualitative

from training.analysis import workload
from training.store import Run, RunLog

PALETTE = qualitative.Plotly + qualitative.D3 + qualitative.Set2


@dataclass
class RunSeries:
    """What the figures need of one run."""

    id: str
    label: str  # legend text: name · device · engine/backend (· precision) (· model on data)
    color: str
    epochs: list[dict]
    reference: bool = False
    system: list[dict] = field(default_factory=list)
    note: str | None = None  # why the run's log could not be read, if it could not
    meta: dict = field(default_factory=dict)  # config.json: device, settings, group (groups, scaling)
    start: dict | None = None  # the log's start record: hardware and versions (the report)


def assign_colors(run_ids: list[str]) -> dict[str, str]:
    """One colour per run, stable for the order the runs were picked in."""
    return {run_id: PALETTE[i % len(PALETTE)] for i, run_id in enumerate(run_ids)}


def legend_label(meta: dict) -> str:
    config = meta.get("config") or {}
    parts = [meta.get("name") or meta.get("id", "?")]
    if meta.get("device"):
        parts.append(meta["device"].upper())
    engine = meta.get("engine") or "?"
    parts.append(f"{engine}/{meta['backend']}" if meta.get("backend") else engine)
    if config.get("precision") and config["precision"] != "float32":
        parts.append(config["precision"])
    if config.get("jit") and config["jit"] != "auto":
        parts.append(f"jit {config['jit']}")
    if (config.get("steps_per_execution") or 1) != 1:  # absent in logs written before it existed
        parts.append(f"{config['steps_per_execution']} steps/call")
    named = workload.label(meta)  # the published CNN on MNIST is the reference; others say what they ran
    if not workload.is_default(meta) and named not in parts[0]:
        parts.append(named)
    return " · ".join(parts)


def load_series(runs: list[Run], log_of: Callable[[Run], RunLog] | None = None) -> list[RunSeries]:
    """Figure input for `runs`, colours fixed by their order.

    Args:
        runs: the runs, in the order they were picked.
        log_of: each run's log, system samples included; default: read from disk now
            (`Run.log(system=True)`). The dashboard passes its cached followers.
    """
    log_of = log_of or (lambda run: run.log(system=True))
    colors = assign_colors([run.id for run in runs])
    result = []
    for run in runs:
        log = log_of(run)
        result.append(RunSeries(id=run.id, label=legend_label(run.meta), color=colors[run.id],
                                epochs=log.epochs, reference=run.source == "reference", system=log.system,
                                note=log.format_error, meta=run.meta, start=log.start))
    return result
