"""Tables for the dashboard: the comparison table, per-epoch export, run history.

Pure functions over `RunSeries` and `Run.row()` dicts; the maths is
`training.analysis.comparison`, the same code as `python -m training compare`.
"""

from __future__ import annotations

import time

import pandas as pd

from training.analysis import comparison, flops
from training.analysis.display import MISSING, number
from training.analysis.series import RunSeries
from training.config import MNIST_TRAIN_SIZE


def comparison_rows(runs: list[RunSeries], baseline_id: str | None, target: float) -> list[dict]:
    """One row per run; speedups are against the baseline run (>1 = faster).

    The speedup is the ratio of images/s, its basis in "Speedup from"; a time-to-target
    speedup across different training data or batch sizes reads "not comparable".
    "Speedup 95% CI" and "Speedup verdict" are its bootstrap interval over the two runs'
    steady epochs and what it means (`comparison.speedup_verdict`); "Contention" says which
    epochs other processes slowed ("not recorded" for older and published logs).
    """
    measures = {run.id: comparison.describe(run.epochs, run.meta, run.start, target) for run in runs}
    base = measures.get(baseline_id)
    basis = comparison.rate_basis(list(measures.values()))
    rows = []
    for run in runs:
        m = measures[run.id]
        # The whole table uses one basis; the baseline's own row reads "baseline", not "1×".
        speed = (comparison.speedup(base, m, base["protocol"], m["protocol"], basis=basis,
                                    names=(_short(runs, baseline_id), _short(runs, run.id)))
                 if base else None)
        reached = (m["accuracy_note"] or "not reached" if m["time_to_target_s"] is None
                   else f"{m['time_to_target_s']:,.2f} s (epoch {m['time_to_target_epoch']})")
        best = m["best_val_accuracy"]
        rows.append({
            "Run": run.label,
            "Epochs": m["epochs_done"],
            "Steady epoch": number(m["steady_epoch_s"], ",.2f", " s"),
            "Images/s (training)": number(m["train_images_per_s"], ",.0f"),
            "Images/s (epoch, eval incl.)": number(m["epoch_images_per_s"], ",.0f"),
            "Speedup": (speed or {}).get("images_per_s_note")  # different workloads: never divided
            or number(speed and speed["images_per_s"], ".2f", "×"),
            "Speedup from": SPEEDUP_FROM[basis],
            f"Time to {target:.2%}": reached,
            "Speedup 95% CI": interval_cell(speed),
            "Speedup verdict": MISSING if speed is None else
            "baseline" if run.id == baseline_id else speed["verdict"],
            "Time-to-target speedup": time_to_target_cell(speed),
            "GFLOP/s": number(m["achieved_flops_per_s"] and m["achieved_flops_per_s"] / 1e9, ",.1f"),
            "Utilisation": utilisation_cell(m),
            "Total": number(m["total_s"], ",.2f", " s"),
            "Best val acc": m["accuracy_note"]
            or (MISSING if best is None else f"{best:.4f} (epoch {m['best_epoch']})"),
            "Contention": m["contention"]["text"],
        })
    return rows


def _short(runs: list[RunSeries], run_id: str | None) -> str:
    """How a verdict names a run: its name, else its id."""
    run = next((r for r in runs if r.id == run_id), None)
    return (run.meta.get("name") or run.id) if run else "A"


def interval_cell(speed: dict | None) -> str:
    """"3.9–4.5×" from a speedup's `ci_low`/`ci_high`, "—" without an interval."""
    if not speed or speed.get("ci_low") is None:
        return MISSING
    return f"{speed['ci_low']:.3g}–{speed['ci_high']:.3g}×"


SPEEDUP_FROM = {"training": "training images/s", "epoch": "epoch images/s (eval incl.)"}
RATE_COLUMNS = {"training": "Images/s (training)", "epoch": "Images/s (epoch, eval incl.)"}
# What answers "which is faster, and how soon does it get there": the table's default columns.
# Names, not positions, so columns added to `comparison_rows` (a CI, contention) join by name.
ANSWER_COLUMNS = ("Run", "Epochs", "Steady epoch", "{rate}", "Speedup", "Speedup 95% CI", "Time to {target}",
                  "Best val acc")
# The same for the groups table (`grouping.group_rows`).
GROUP_RATE_COLUMNS = {"training": "Images/s (training, median)",
                      "epoch": "Images/s (epoch, eval incl., median)"}
# The repeats' min-max range of the speedup is one click away: the 95% CI says more, and it fits.
GROUP_ANSWER_COLUMNS = ("Group", "n", "Steady epoch (median)", "{rate}", "Speedup (median)", "Speedup 95% CI",
                        "Time to {target} (median)")


def default_columns(rows: list[dict], target: float, grouped: bool = False) -> list[str]:
    """The few columns shown by default, in order; the rate column is the one speedups use.

    "Speedup from" is never among them: the basis is one sentence above the table.
    `grouped`: the columns of `grouping.group_rows` instead of `comparison_rows`.
    """
    if not rows:
        return []
    basis = next((b for b, text in SPEEDUP_FROM.items() if rows[0].get("Speedup from") == text), "training")
    rates, answer = (GROUP_RATE_COLUMNS, GROUP_ANSWER_COLUMNS) if grouped else (RATE_COLUMNS, ANSWER_COLUMNS)
    wanted = [c.format(rate=rates[basis], target=f"{target:.2%}") for c in answer]
    return [column for column in wanted if column in rows[0]]


# Headers the page shows shorter, to fit 1,400 px; the basis they share is said above the table.
SHORT_HEADERS = {"Images/s (training)": ("Images/s", "training images per training second, steady state"),
                 "Images/s (epoch, eval incl.)": ("Images/s", "training images per epoch second, "
                                                  "evaluation included, steady state"),
                 "Images/s (training, median)": ("Images/s (median)", "training images per training second"),
                 "Images/s (epoch, eval incl., median)": ("Images/s (median)", "training images per epoch "
                                                          "second, evaluation included"),
                 "Steady epoch (median)": ("Steady epoch", "median over the runs of each one's steady epoch"),
                 "Speedup (median)": ("Speedup", "the cells' median images/s over the baseline cell's")}


def basis_caption(rows: list[dict]) -> str:
    """The one line above the table that says what every speedup in it is a ratio of."""
    used = rows[0]["Speedup from"] if rows else SPEEDUP_FROM["training"]
    return (f"Speedups are ratios of steady-state {used} to the baseline's (>1× = faster); time to "
            "target: elapsed seconds, evaluation included, to the first epoch at the target.")


def other_columns(rows: list[dict], target: float, grouped: bool = False) -> list[str]:
    """Every column not shown by default, in the table's order, for the column chooser."""
    shown = set(default_columns(rows, target, grouped)) | {"Speedup from"}
    return [column for column in (rows[0] if rows else {}) if column not in shown]


def select_columns(rows: list[dict], columns: list[str]) -> list[dict]:
    """The rows with only `columns`, in that order."""
    return [{column: row[column] for column in columns if column in row} for row in rows]


def time_to_target_cell(speed: dict | None) -> str:
    if speed and speed["time_to_target_note"]:
        return f"not comparable ({speed['time_to_target_note']})"
    return number(speed and speed["time_to_target"], ".2f", "×")


def utilisation_cell(m: dict) -> str:
    """Utilisation of the measured peak; else of the datasheet peak, labelled; else "—"."""
    if m["utilisation"] is not None:
        if flops.impossible(m["utilisation"]):
            return (f"{m['utilisation']:.1%} ({flops.ABOVE_PEAK}); "
                    f"whole epoch {number(m['epoch_utilisation'], '.1%')}")
        return f"{m['utilisation']:.1%}"
    if m["datasheet_utilisation"] is not None:
        return f"{m['datasheet_utilisation']:.1%} of datasheet"
    return MISSING


def protocol_caption(runs: list[RunSeries], baseline_id: str | None) -> str | None:
    """The Compare table's one line on protocol differences (baseline first), or None."""
    ordered = sorted(runs, key=lambda run: run.id != baseline_id)
    named = {}  # runs of one name (the repeats of a group) are named once
    for run in ordered:
        named.setdefault(run.name or run.meta.get("name") or run.id, comparison.protocol(run.meta, run.start))
    return comparison.protocol_note(list(named.items()))


def epochs_frame(runs: list[RunSeries]) -> pd.DataFrame:
    """Every compared run's per-epoch table, stacked, for the CSV download."""
    frames = [pd.DataFrame(comparison.export_rows(run.epochs)).assign(run_id=run.id, run=run.label)
              for run in runs if run.epochs]
    if not frames:
        return pd.DataFrame(columns=["run_id", "run", *comparison.EXPORT_COLUMNS])
    frame = pd.concat(frames, ignore_index=True)
    return frame[["run_id", "run", *comparison.EXPORT_COLUMNS]]


def history_rows(listing: list[dict]) -> list[dict]:
    """The Runs page table from `Run.row()`s, newest first."""
    rows = []
    for s in sorted(listing, key=lambda r: r.get("created") or 0, reverse=True):
        created = s.get("created")
        rows.append({
            "Name": s["name"], "Status": s["status"], "Where": s.get("where") or MISSING,
            "Device": s["device"] or MISSING,
            "Engine": f"{s['engine'] or '?'}/{s['backend'] or '?'}",
            "Epochs": f"{s['epochs_done']}/{s['epochs'] or '?'}",
            "Best val acc": None if s["best_val_accuracy"] is None else round(s["best_val_accuracy"], 4),
            "Duration": number(s["elapsed_s"], ",.2f", " s"),
            "Started": time.strftime("%Y-%m-%d %H:%M", time.localtime(created)) if created else MISSING,
            "Settings": _settings(s),
            "Source": s["source"], "Note": s.get("error") or "", "id": s["id"],
        })
    return rows


def _settings(s: dict) -> str:
    if s.get("batch_size") is None:
        return MISSING
    text = f"batch {s['batch_size']}, lr {s['lr']:g}"
    if s.get("train_samples") and s["train_samples"] != MNIST_TRAIN_SIZE:
        text += f", {s['train_samples']:,} images"
    if s.get("precision") and s["precision"] != "float32":
        text += f", {s['precision']}"
    return text


def _text(value) -> str:
    if value is None or value == "" or value == []:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_text(v)}" for k, v in value.items())
    return f"{value:,}" if isinstance(value, int) else str(value)


def settings_rows(meta: dict) -> list[dict]:
    """A run's settings as (Setting, Value) rows: the config, or what an imported log said."""
    config = meta.get("config") or {k: meta.get(k) for k in ("source", "origin", "format") if meta.get(k)}
    return [{"Setting": key.replace("_", " "), "Value": _text(value)} for key, value in config.items()]


HARDWARE_FIELDS = {"device": "device", "gpu_names": "GPUs used", "cpu_model": "CPU",
                   "cpu_logical_cores": "logical cores", "cpu_physical_cores": "physical cores",
                   "memory_gb": "memory (GiB)", "hostname": "host", "platform": "platform"}


def machine_rows(start: dict | None) -> list[dict]:
    """Where a run trained and with what, from its start record, as (What, Value) rows."""
    start = start or {}
    hardware, versions = start.get("hardware") or {}, start.get("versions") or {}
    rows = [{"What": label, "Value": _text(hardware.get(key))} for key, label in HARDWARE_FIELDS.items()
            if key in hardware]
    if hardware.get("nvml_gpus"):
        rows.append({"What": "GPUs on the machine",
                     "Value": ", ".join(g.get("name", "?") for g in hardware["nvml_gpus"])})
    rows += [{"What": name.replace("_", " "), "Value": _text(value)} for name, value in versions.items()]
    return rows
