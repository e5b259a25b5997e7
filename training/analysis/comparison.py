"""Comparison maths shared by `python -m training compare` and the dashboard.

Definitions (docs/architecture.md):
  steady-state epoch time  median epoch_time_s, excluding epoch 1 (tracing, warm-up)
                           and a profiled epoch (`"profiled": true`, --profile-steps)
  steady-state samples/s   median samples_per_s, excluding epoch 1
  time to target           elapsed_s at the end of the first epoch whose
                           val_accuracy >= target (DAWNBench / MLPerf style)
  speedup of B over A      steady-state epoch time A / B; time-to-target ratio beside it
  cores kept busy          mean of cpu_s / epoch_time_s over the steady epochs (1.0 = one core)
Groups of repeated runs (median, spread, olympic mean) are `training/stats.py`.
Pure functions over epoch records: no I/O.
"""

from __future__ import annotations

import statistics

DEFAULT_TARGET = 0.99
EXPORT_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "train_s", "eval_s",
                  "epoch_time_s", "samples_per_s", "elapsed_s", "cpu_s")


def steady_epochs(epochs: list[dict]) -> list[dict]:
    """The epochs a steady state is taken over: not epoch 1 (warm-up), not a profiled one."""
    return [e for e in epochs if e.get("epoch", 0) > 1 and not e.get("profiled")]


def _steady(epochs: list[dict], key: str) -> float | None:
    values = [e[key] for e in steady_epochs(epochs) if e.get(key) is not None]
    return float(statistics.median(values)) if values else None


def steady_epoch_s(epochs: list[dict]) -> float | None:
    """Median epoch seconds excluding epoch 1; None with fewer than 2 epochs."""
    return _steady(epochs, "epoch_time_s")


def steady_samples_per_s(epochs: list[dict]) -> float | None:
    return _steady(epochs, "samples_per_s")


def cores_busy(epochs: list[dict]) -> float | None:
    """Mean of cpu_s / epoch_time_s over the steady epochs: 1.0 = one core kept busy all along."""
    values = [e["cpu_s"] / e["epoch_time_s"] for e in steady_epochs(epochs)
              if e.get("cpu_s") is not None and e.get("epoch_time_s")]
    return sum(values) / len(values) if values else None


def time_to_target(epochs: list[dict], target: float = DEFAULT_TARGET) -> tuple[float, int] | None:
    """(elapsed seconds, epoch) at the first epoch reaching `target`, or None."""
    for record in epochs:
        accuracy = record.get("val_accuracy")
        if accuracy is not None and accuracy >= target and record.get("elapsed_s") is not None:
            return float(record["elapsed_s"]), int(record["epoch"])
    return None


def best_val_accuracy(epochs: list[dict]) -> tuple[float, int] | None:
    scored = [(e["val_accuracy"], -e["epoch"]) for e in epochs if e.get("val_accuracy") is not None]
    if not scored:
        return None
    accuracy, neg_epoch = max(scored)  # ties go to the earliest epoch
    return float(accuracy), -neg_epoch


def measure(epochs: list[dict], target: float = DEFAULT_TARGET) -> dict:
    """One run's measures: the numbers a comparison shows for it."""
    reached = time_to_target(epochs, target)
    best = best_val_accuracy(epochs)
    last = epochs[-1] if epochs else {}
    return {
        "epochs_done": len(epochs),
        "steady_epoch_s": steady_epoch_s(epochs),
        "steady_samples_per_s": steady_samples_per_s(epochs),
        "time_to_target_s": reached[0] if reached else None,
        "time_to_target_epoch": reached[1] if reached else None,
        "best_val_accuracy": best[0] if best else None,
        "best_epoch": best[1] if best else None,
        "total_s": last.get("elapsed_s"),
        "cores_busy": cores_busy(epochs),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is unknown or b is zero."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def speedup(measures_a: dict, measures_b: dict) -> dict:
    """How much faster B is than A, from their `measure()`s: >1 means B is faster."""
    return {
        "steady_epoch": ratio(measures_a["steady_epoch_s"], measures_b["steady_epoch_s"]),
        "time_to_target": ratio(measures_a["time_to_target_s"], measures_b["time_to_target_s"]),
    }


def export_rows(epochs: list[dict]) -> list[dict]:
    """The per-epoch table, one dict per epoch, in EXPORT_COLUMNS order."""
    return [{column: record.get(column) for column in EXPORT_COLUMNS} for record in epochs]
