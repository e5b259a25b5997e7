"""Say after an import what the log did not: its training images per epoch, and its device.

A Keras 3 console log or a CSVLogger file does not say how many images an epoch
trained on, so its images/s and speedups read "—"; a log's device may be guessed
wrong. `annotate` fixes both on an imported run, the way the import would have
(`parsers.set_samples`: samples and whole-epoch samples/s in each epoch record,
train_samples in the start record and config.json). Each file is rewritten whole,
to a temporary name beside it, then renamed over the old one, so a reader sees the
old file or the new one, never half of either (a follower sees the new file's
inode and reads it again). The Runs page and `python -m training annotate` call it.
"""

from __future__ import annotations

import json
from pathlib import Path

from training.config import ConfigError
from training.imports.runs import check_samples
from training.store import Run, RunError
from training.store.layout import CONFIG_FILE, write_bytes_atomic, write_json_atomic
from training.store.logwriter import encode

DEVICES = ("cpu", "gpu")


def annotate(run: Run, samples: int | None = None, device: str | None = None) -> dict:
    """Set an imported run's training images per epoch and/or its device; returns what changed.

    Raises `ConfigError` (naming the field and its range) for a bad value, and `RunError`
    for a run that is not an imported one (a run trained here knows both; a published
    run is read-only) or a runs folder that cannot be written. Nothing is written then.
    """
    if samples is None and device is None:
        raise ConfigError("samples", "give --samples N or --device cpu|gpu (or both)")
    check_samples(samples)
    if device is not None and device not in DEVICES:
        raise ConfigError("device", f"must be cpu or gpu, got {device!r}")
    if run.source != "imported":
        raise RunError(f"run {run.id} is a {run.source} run: only an imported run's images per epoch "
                       "and device can be set (a run trained here records both)")
    run.store.check_writable()
    changed = {}
    if samples is not None:
        _rewrite_log(run.metrics_path, samples)
        changed["train_samples"] = samples
    if device is not None:
        changed["device"] = device
    write_json_atomic(run.folder / CONFIG_FILE, {**run.meta, **changed})
    return changed  # `run.meta` is the old one: open the run again to read the new


def _rewrite_log(path: Path, samples: int) -> None:
    """Every epoch record with `samples` and samples/s from its whole-epoch seconds; the start
    record with `train_samples`. Other records (warnings, the end) are kept as they are."""
    try:
        records = [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    except ValueError as error:  # an imported log is written whole; one that is not is left alone
        raise RunError(f"{path} cannot be read, so it was not changed: {error}") from error
    for record in records:
        if record.get("type") == "start":
            record["train_samples"] = samples
        elif record.get("type") == "epoch" and record.get("epoch_time_s"):
            record["samples"] = samples
            record["samples_per_s"] = round(samples / record["epoch_time_s"], 2)
    write_bytes_atomic(path, b"".join(encode(record) for record in records))
