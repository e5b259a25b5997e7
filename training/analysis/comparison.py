"""Comparison maths shared by `python -m training compare` and the dashboard.

Definitions (docs/architecture.md):
  steady-state epoch time  median epoch_time_s, excluding epoch 1 (tracing, warm-up)
                           and a profiled epoch (`"profiled": true`, --profile-steps)
  steady-state samples/s   median samples_per_s, excluding epoch 1
  training images/s        median samples / train_s over the steady epochs (runs trained here)
  epoch images/s           median samples / epoch_time_s over the steady epochs, evaluation
                           included (every run: the published logs time whole epochs only)
  time to target           elapsed_s at the end of the first epoch whose
                           val_accuracy >= target (DAWNBench / MLPerf style)
  speedup of B over A      work per second: B's steady images/s over A's, on training images/s
                           when both runs time training alone, else on epoch images/s; so a
                           6,000-image subset compares correctly with a 60,000-image run.
                           The time-to-target ratio stands beside it only where both trained
                           the same images per epoch at the same batch size ("not comparable")
  protocol                 what a run trained on: its workload (model, data) first, then images per
                           epoch, test images, batch size, precision, optimiser; `protocol_note`
                           says in one line where they differ. Runs of different workloads get no
                           speedup: "not comparable: different model" (analysis/workload.py)
  cores kept busy          mean of cpu_s / epoch_time_s over the steady epochs (1.0 = one core)
  speedup interval         bootstrap 95% CI of the ratio of medians over each run's steady epochs'
                           images/s, and a verdict in words (`speedup_verdict`, analysis/uncertainty.py)
  contention               which epochs other processes slowed (analysis/contention.py)
FLOPs per image, achieved FLOP/s and utilisation are `training/analysis/flops.py`.
Groups of repeated runs (median, spread, olympic mean) are `training/analysis/stats.py`.
Pure functions over epoch records: no I/O.
"""

from __future__ import annotations

import dataclasses
import statistics

from training.analysis import contention, flops, uncertainty, workload

DEFAULT_TARGET = 0.99
EXPORT_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "train_s", "eval_s",
                  "epoch_time_s", "samples_per_s", "elapsed_s", "cpu_s",
                  "others_cpu_share", "steal_share", "cpu_mhz", "contended")  # empty: not recorded


steady_epochs = flops.steady_epochs  # not epoch 1 (warm-up), not a profiled one: one rule, in flops.py


def _steady(epochs: list[dict], key: str) -> float | None:
    values = [e[key] for e in steady_epochs(epochs) if e.get(key) is not None]
    return float(statistics.median(values)) if values else None


def steady_epoch_s(epochs: list[dict]) -> float | None:
    """Median epoch seconds excluding epoch 1; None with fewer than 2 epochs."""
    return _steady(epochs, "epoch_time_s")


def steady_samples_per_s(epochs: list[dict]) -> float | None:
    return _steady(epochs, "samples_per_s")


def steady_rates(epochs: list[dict], basis: str) -> list[float]:
    """Each steady epoch's images/s on `basis` ("training": per training second, "epoch": per
    epoch second): the samples a speedup's interval is bootstrapped from."""
    seconds_key = RATE_SECONDS[basis]
    return [flops.trained_images(e) / e[seconds_key] for e in steady_epochs(epochs)
            if flops.trained_images(e) and e.get(seconds_key)]


def _steady_rate(epochs: list[dict], basis: str) -> float | None:
    values = steady_rates(epochs, basis)
    return float(statistics.median(values)) if values else None


def train_images_per_s(epochs: list[dict]) -> float | None:
    """Training images per training second, steady state; None where training is not timed alone."""
    return _steady_rate(epochs, "training")


def epoch_images_per_s(epochs: list[dict]) -> float | None:
    """Training images per epoch second, evaluation included, steady state."""
    return _steady_rate(epochs, "epoch")


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
        "train_images_per_s": train_images_per_s(epochs),
        "epoch_images_per_s": epoch_images_per_s(epochs),
        "time_to_target_s": reached[0] if reached else None,
        "time_to_target_epoch": reached[1] if reached else None,
        "best_val_accuracy": best[0] if best else None,
        "best_epoch": best[1] if best else None,
        "total_s": last.get("elapsed_s"),
        "cores_busy": cores_busy(epochs),
        # The per-epoch samples behind the images/s medians, for the speedup's interval.
        "steady_rates": {basis: steady_rates(epochs, basis) for basis in RATE_SECONDS},
        "contention": contention.summary(epochs),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is unknown or b is zero."""
    if a is None or b is None or b == 0:
        return None
    return a / b


RATE_BASES = {"training": "train_images_per_s", "epoch": "epoch_images_per_s"}
RATE_SECONDS = {"training": "train_s", "epoch": "epoch_time_s"}
RATE_LABELS = {"training": "training images per training second",
               "epoch": "training images per epoch second, evaluation included"}


def rate_basis(measures: list[dict]) -> str:
    """"training" when every run times its training pass alone, else "epoch" (a published run)."""
    return "training" if all(m.get("train_images_per_s") is not None for m in measures) else "epoch"


def speedup(measures_a: dict, measures_b: dict, protocol_a: dict | None = None,
            protocol_b: dict | None = None, basis: str | None = None,
            names: tuple[str, str] = ("A", "B")) -> dict:
    """How much faster B is than A, from their `measure()`s: >1 means B is faster.

    `images_per_s` is the ratio of work per second on `basis` (see `rate_basis`; a table
    passes one basis for all its rows). `ci_low`, `ci_high`, `verdict`, `more_needed`
    (`more_unit`) and `n` are its bootstrap interval over the two runs' steady epochs and
    what it means (`speedup_verdict`). The time-to-target ratio is None with
    `time_to_target_note` saying why where the two protocols (`protocol`) trained different
    images per epoch or batch sizes.
    """
    basis = basis or rate_basis([measures_a, measures_b])
    key = RATE_BASES[basis]
    note = time_to_target_blocker(protocol_a, protocol_b) if protocol_a and protocol_b else None
    different = workload.blocker(protocol_a, protocol_b) if protocol_a and protocol_b else None
    found = uncertainty.verdict(measures_a["steady_rates"][basis], measures_b["steady_rates"][basis],
                                basis, "epochs", names)
    if different:  # different workloads: no ratio, so no interval either
        found = dataclasses.replace(found, ratio=None, ci_low=None, ci_high=None, text=different)
    return {
        "images_per_s": None if different else ratio(measures_b[key], measures_a[key]),
        "images_per_s_note": different,  # "not comparable: different model": never divided
        "basis": basis,
        **interval_fields(found),
        "time_to_target": None if note else ratio(measures_a["time_to_target_s"],
                                                  measures_b["time_to_target_s"]),
        "time_to_target_note": note,
    }


def interval_fields(found: uncertainty.SpeedupVerdict) -> dict:
    """A verdict as the `speedup` fields of --json (docs/log-format.md, "Speedup intervals")."""
    return {"ci_low": found.ci_low, "ci_high": found.ci_high, "verdict": found.text,
            "more_needed": found.more_needed, "more_unit": found.unit, "n": list(found.n),
            "kind": found.kind}


def speedup_verdict(base_epochs: list[dict], other_epochs: list[dict], basis: str | None = None,
                    names: tuple[str, str] = ("A", "B")) -> uncertainty.SpeedupVerdict:
    """The speedup of one run over another from their epoch records, with its 95% interval.

    A bootstrap over each run's steady epochs' images/s (ratio of medians), on training
    images/s where both runs time training alone, else on epoch images/s (a published run,
    from its printed epoch times). `SpeedupVerdict(ratio, ci_low, ci_high, basis, text,
    more_needed, ...)`; a one-epoch run has no steady epoch: "not enough epochs".
    """
    if basis is None:
        timed = all(steady_rates(e, "training") for e in (base_epochs, other_epochs))
        basis = "training" if timed else "epoch"
    return uncertainty.verdict(steady_rates(base_epochs, basis), steady_rates(other_epochs, basis),
                               basis, "epochs", names)


# What a run trained on, in the order `protocol_note` names differences.
PROTOCOL_FIELDS = {"model": "model", "data": "data",
                   "train_images": "training images per epoch", "test_images": "test images",
                   "batch_size": "batch size", "precision": "precision", "optimizer": "optimiser"}


def protocol(meta: dict, start: dict | None) -> dict:
    """A run's protocol from its config.json and start record; None where the run does not say.

    Runs trained here take it from their RunConfig and start record; imported runs give
    their training images; the built-in published runs carry theirs in the start record.
    """
    start = start or {}
    config = meta.get("config") or start.get("protocol") or {}
    lr, momentum = config.get("lr"), config.get("momentum")
    model, data = workload.of(meta, start)  # an older log: the published CNN on MNIST
    return {"model": model, "data": data,
            "train_images": start.get("train_samples") or meta.get("train_samples"),
            "test_images": start.get("test_samples"),
            "batch_size": config.get("batch_size"), "precision": config.get("precision"),
            "optimizer": None if lr is None else f"SGD lr {lr:g}, momentum {momentum:g}"}


def time_to_target_blocker(a: dict, b: dict) -> str | None:
    """Why time to target cannot be compared (a different workload, synthetic data, different or unknown
    data or batch size), or None."""
    if different := workload.blocker(a, b):
        return different.removeprefix("not comparable: ")
    if workload.SYNTHETIC in (a.get("data"), b.get("data")):
        return workload.SYNTHETIC_NOTE
    for key in ("train_images", "batch_size"):
        if a.get(key) is None or b.get(key) is None:
            return f"{PROTOCOL_FIELDS[key]} unknown"
        if a[key] != b[key]:
            return f"different {PROTOCOL_FIELDS[key]}"
    return None


def _value(value) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def protocol_note(protocols: list[tuple[str, dict]]) -> str | None:
    """One line naming every protocol difference among the runs, or None when they agree.

    Args:
        protocols: (label, `protocol()`) per run, the baseline first. A field a run does
            not know is not a difference, but it still keeps time to target from comparing.
    """
    parts = []
    for key, what in PROTOCOL_FIELDS.items():
        known = [(label, p[key]) for label, p in protocols if p.get(key) is not None]
        if len({value for _, value in known}) > 1:
            shown = [(label, workload.short(value) if key in ("model", "data") else _value(value))
                     for label, value in known]
            parts.append(f"{what}: " + ", ".join(f"{label} {text}" for label, text in shown))
    if not parts:
        return None
    if any(workload.blocker(protocols[0][1], p) for _, p in protocols[1:]):  # the workload is named first
        return ("Workloads differ (" + "; ".join(parts) + "): speedup and time to target are not "
                "comparable.")
    blocked = any(time_to_target_blocker(protocols[0][1], p) for _, p in protocols[1:])
    return ("Protocols differ (" + "; ".join(parts) + "): speedups use images/s"
            + ("; time to target is not comparable" if blocked else "") + ".")


def describe(epochs: list[dict], meta: dict, start: dict | None, target: float = DEFAULT_TARGET) -> dict:
    """`measure()` with the run's protocol and its efficiency (FLOPs, achieved, peak, utilisation)."""
    found = protocol(meta, start)
    config = meta.get("config") or (start or {}).get("protocol") or {}
    measured = measure(epochs, target)
    if note := workload.accuracy_note(meta, start):  # random labels: accuracy means nothing
        measured.update(time_to_target_s=None, time_to_target_epoch=None, best_val_accuracy=None,
                        best_epoch=None)
    return {**measured, "protocol": found, "accuracy_note": note, "workload": workload.label(meta, start),
            **flops.efficiency(epochs, start, found["test_images"], config.get("precision"),
                               meta.get("device"))}


def export_rows(epochs: list[dict]) -> list[dict]:
    """The per-epoch table, one dict per epoch, in EXPORT_COLUMNS order."""
    return [{column: record.get(column) for column in EXPORT_COLUMNS} for record in epochs]
