"""One run as a row of a listing: what `list --json` prints and the Runs page's table shows.

Presentation, not storage: the store knows a run's files and state; this turns
them into the fields people read. Where the run trained comes from its launcher
(`training.launch.describe`), passed in by the caller.
"""

from __future__ import annotations

from training.analysis import contention, workload
from training.store import Run, RunLog


def row(run: Run, where: str, run_log: RunLog | None = None, status: str | None = None) -> dict:
    """The listing fields of `run`.

    Args:
        run: the run.
        where: where it trained, e.g. "this machine" (`training.launch.describe(run)`).
        run_log: its log, if the caller follows it already (the dashboard's cache).
        status: its status, if the caller worked it out already (once per page rerun).
    `error` is why the log cannot be read, or why the run failed or was lost.
    `contention` says in words which epochs other processes slowed ("not recorded" for logs
    without the fields), `contended_epochs` lists them (None: not recorded).
    """
    meta = run.meta
    run_log = run_log or run.log()
    config = meta.get("config") or {}
    status = status or run.status()
    busy = contention.summary(run_log.epochs)
    model, data = workload.of(meta, run_log.start)  # an older log: the published CNN on MNIST
    return {
        "id": run.id,
        "name": run.name,
        "status": status,
        "where": where,
        "source": run.source,
        "device": meta.get("device"),
        "engine": meta.get("engine"),
        "backend": meta.get("backend"),
        "model": model,
        "data": data,
        "workload": workload.label(meta, run_log.start),
        "precision": config.get("precision"),
        "batch_size": config.get("batch_size"),
        "lr": config.get("lr"),
        "train_samples": meta.get("train_samples"),
        "epochs": meta.get("epochs"),
        "epochs_done": run_log.epochs_done,
        # Random labels: no accuracy to show (analysis/workload.py says so instead).
        "best_val_accuracy": None if data == workload.SYNTHETIC else run_log.best_val_accuracy,
        "accuracy_note": workload.accuracy_note(meta, run_log.start),
        "elapsed_s": run_log.elapsed_s,
        "created": meta.get("created"),
        "group": meta.get("group"),  # repeats and sweeps (training/analysis/groups.py)
        "error": run_log.format_error or run.cause(status, run_log),
        "contention": busy["text"],
        "contended_epochs": busy["contended_epochs"] if busy["recorded"] else None,
    }
