"""What the charts and tables need of one run: `RunSeries`, plain data, and `load_series`.

`load_series` is the one builder: the command line's report reads each run's
log from disk, the dashboard passes its per-session followers instead. The
pure builders in figures.py, tables.py, grouping.py, scaling.py and report.py
read them. A run keeps one colour and one legend label on every chart of a page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from plotly.colors import qualitative

from training.analysis import workload
from training.store import Run, RunLog

PALETTE = qualitative.Plotly + qualitative.D3 + qualitative.Set2
# The published runs keep the colours they have always had, whatever else is picked.
FIXED_COLORS = {"ref-keras-cpu": qualitative.Plotly[0], "ref-tensorflow-gpu": qualitative.Plotly[1]}


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
    name: str = ""  # `Run.name`: the label's first part, for sentences that name the run


def color_of(key: str) -> str:
    """A run's (or a group's) own colour: a hash of its id, the same in every view and process."""
    if key in FIXED_COLORS:
        return FIXED_COLORS[key]
    return PALETTE[int(hashlib.md5(key.encode()).hexdigest(), 16) % len(PALETTE)]


def assign_colors(run_ids: list[str]) -> dict[str, str]:
    """Each run's own colour (`color_of`), so a run keeps it whatever else is picked.

    Only where two picked runs would share a colour does the later one (in id order, so
    the choice does not depend on pick order) take the next free one.
    """
    taken: set[str] = set()
    colors = {}
    for run_id in sorted(run_ids, key=lambda i: (i not in FIXED_COLORS, i)):
        start = PALETTE.index(color_of(run_id))
        free = [PALETTE[(start + step) % len(PALETTE)] for step in range(len(PALETTE))]
        colors[run_id] = next((c for c in free if c not in taken), free[0])
        taken.add(colors[run_id])
    return {run_id: colors[run_id] for run_id in run_ids}


def legend_label(meta: dict, name: str | None = None) -> str:
    """Legend text: the run's name, then what the name does not already say.

    `name` is `Run.name`; where it differs from the stored name it is the default
    "CPU · tensorflow · b128 · 5k images", which says device and backend itself.
    """
    config = meta.get("config") or {}
    default_name = name is not None and name != meta.get("name")
    parts = [name or meta.get("name") or meta.get("id", "?")]
    engine = meta.get("engine") or "?"
    if default_name:
        parts.append(engine)
    else:
        if meta.get("device"):
            parts.append(meta["device"].upper())
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
    """Figure input for `runs`, each in its own colour (`assign_colors`).

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
        result.append(RunSeries(id=run.id, label=legend_label(run.meta, run.name), color=colors[run.id],
                                epochs=log.epochs, reference=run.source == "reference", system=log.system,
                                note=log.format_error, meta=run.meta, start=log.start,
                                name=run.name))
    return result
