"""What the charts and tables need of one run: `RunSeries`, plain data.

Built by `state.series` from a run's folder; read by the pure builders in
figures.py and tables.py. A run keeps one colour and one legend label on
every chart of a page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from plotly.colors import qualitative

PALETTE = qualitative.Plotly + qualitative.D3 + qualitative.Set2


@dataclass
class RunSeries:
    """What the figures need of one run."""

    id: str
    label: str  # legend text: name · device · engine/backend (· precision)
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
    return " · ".join(parts)
