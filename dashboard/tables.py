"""Tables for the dashboard: the comparison summary, per-epoch export, run history.

Pure functions over `RunSeries` and run summaries; the maths is
`training.summary`, the same code as `python -m training compare`.
"""

from __future__ import annotations

import time

import pandas as pd

from dashboard.figures import RunSeries
from training import summary


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f} s"


def summary_rows(runs: list[RunSeries], baseline_id: str | None, target: float) -> list[dict]:
    """One row per run; speedups are against the baseline run (>1 = faster)."""
    stats = {run.id: summary.summarise(run.epochs, target) for run in runs}
    base = stats.get(baseline_id)
    rows = []
    for run in runs:
        s = stats[run.id]
        speed = summary.speedup(base, s) if base else {"steady_epoch": None, "time_to_target": None}
        reached = ("not reached" if s["time_to_target_s"] is None
                   else f"{s['time_to_target_s']:,.2f} s (epoch {s['time_to_target_epoch']})")
        rows.append({
            "Run": run.label,
            "Epochs": s["epochs_done"],
            "Steady epoch": _seconds(s["steady_epoch_s"]),
            "Samples/s": "—" if s["steady_samples_per_s"] is None else f"{s['steady_samples_per_s']:,.0f}",
            "Speedup": "—" if speed["steady_epoch"] is None else f"{speed['steady_epoch']:.2f}×",
            f"Time to {target:.2%}": reached,
            "Time-to-target speedup": ("—" if speed["time_to_target"] is None
                                       else f"{speed['time_to_target']:.2f}×"),
            "Total": _seconds(s["total_s"]),
            "Best val acc": ("—" if s["best_val_accuracy"] is None
                             else f"{s['best_val_accuracy']:.4f} (epoch {s['best_epoch']})"),
        })
    return rows


def epochs_frame(runs: list[RunSeries]) -> pd.DataFrame:
    """Every compared run's per-epoch table, stacked, for the CSV download."""
    frames = [pd.DataFrame(summary.export_rows(run.epochs)).assign(run_id=run.id, run=run.label)
              for run in runs if run.epochs]
    if not frames:
        return pd.DataFrame(columns=["run_id", "run", *summary.EXPORT_COLUMNS])
    frame = pd.concat(frames, ignore_index=True)
    return frame[["run_id", "run", *summary.EXPORT_COLUMNS]]


def history_rows(summaries: list[dict]) -> list[dict]:
    """The Runs page table, newest first."""
    rows = []
    for s in sorted(summaries, key=lambda r: r.get("created") or 0, reverse=True):
        created = s.get("created")
        rows.append({
            "Name": s["name"], "Status": s["status"], "Device": s["device"] or "—",
            "Engine": f"{s['engine'] or '?'}/{s['backend'] or '?'}",
            "Epochs": f"{s['epochs_done']}/{s['epochs'] or '?'}",
            "Best val acc": None if s["best_val_accuracy"] is None else round(s["best_val_accuracy"], 4),
            "Duration": _seconds(s["elapsed_s"]),
            "Started": time.strftime("%Y-%m-%d %H:%M", time.localtime(created)) if created else "—",
            "Settings": _settings(s),
            "Source": s["source"], "id": s["id"],
        })
    return rows


def _settings(s: dict) -> str:
    if s.get("batch_size") is None:
        return "—"
    text = f"batch {s['batch_size']}, lr {s['lr']:g}"
    if s.get("train_samples") and s["train_samples"] != 60_000:
        text += f", {s['train_samples']:,} images"
    if s.get("precision") and s["precision"] != "float32":
        text += f", {s['precision']}"
    return text
