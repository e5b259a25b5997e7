"""Imported and reference runs: parsed logs written as read-only run folders.

The two published runs of the 2018 experiment ship as text inside the package
(`reference/published-results.md`). `build_reference_runs` turns them, with the
same importers as any user file, into the run folders "Keras CPU (published)"
and "TensorFlow GPU (published)" that ship in `training/store/builtin/`, where
every store lists them without writing them anywhere. A test checks that what
ships is what this module builds; `python -m training.imports.runs` rebuilds it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from training.config import ConfigError
from training.imports.parsers import (
    KERAS_CONSOLE,
    TENSORFLOW_LOOP,
    ParsedLog,
    guess_device,
    parse,
    set_samples,
)
from training.store import FINISHED, RunError, RunStore
from training.store.layout import METRICS_FILE
from training.store.logwriter import encode

REFERENCE_TEXT = Path(__file__).resolve().parent / "reference" / "published-results.md"
PUBLISHED_SAMPLES = 60_000  # both published runs trained on all of MNIST
REFERENCE_RUNS = {  # parsed-log heading -> (run id, display name)
    "Keras CPU": ("ref-keras-cpu", "Keras CPU (published)"),
    "Tensorflow GPU": ("ref-tensorflow-gpu", "TensorFlow GPU (published)"),
}
# What the published runs' start records add (log format 3): the experiment's protocol
# (the RunConfig defaults reproduce it), its 10,000 test images ("validate on 10000
# samples" in the Keras log), the GPU of the TensorFlow run, and the network's layers as
# the worker describes them (`training.worker.model.describe_layers`; a test checks they
# agree), from which `training.analysis.flops` counts FLOPs per image.
PUBLISHED_PROTOCOL = {"batch_size": 128, "lr": 0.05, "momentum": 0.9, "precision": "float32"}
PUBLISHED_TEST_SAMPLES = 10_000
PUBLISHED_GPU = "NVIDIA GeForce GTX 1080"


def _conv(shape_in, shape_out):
    return {"class": "Conv2D", "input": shape_in, "output": shape_out, "kernel": [5, 5], "bias": True,
            "activation": "linear"}


def _same(kind, shape, **extra):
    return {"class": kind, "input": shape, "output": shape, **extra}


PUBLISHED_LAYERS = [
    _conv([28, 28, 1], [24, 24, 24]), _same("BatchNormalization", [24, 24, 24]),
    _same("Activation", [24, 24, 24], activation="relu"),
    {"class": "MaxPooling2D", "input": [24, 24, 24], "output": [12, 12, 24], "pool": [2, 2]},
    _conv([12, 12, 24], [8, 8, 48]), _same("BatchNormalization", [8, 8, 48]),
    _same("Activation", [8, 8, 48], activation="relu"),
    {"class": "MaxPooling2D", "input": [8, 8, 48], "output": [4, 4, 48], "pool": [2, 2]},
    {"class": "Flatten", "input": [4, 4, 48], "output": [768]},
    {"class": "Dense", "input": [768], "output": [512], "bias": True, "activation": "linear"},
    _same("BatchNormalization", [512]), _same("Activation", [512], activation="relu"),
    {"class": "Dense", "input": [512], "output": [10], "bias": True, "activation": "softmax"},
]
MAX_IMPORT_BYTES = 20 * 2**20
MAX_SAMPLES = 10**9  # training images per epoch an imported log may claim


def _engine_of(log: ParsedLog) -> str:
    return "loop" if log.format == TENSORFLOW_LOOP else "fit"


def _log_bytes(log: ParsedLog, origin: str, start_extra: dict | None = None) -> bytes:
    start = {"type": "start", "imported": True, "format": log.format, "origin": origin,
             "train_samples": log.samples, **(start_extra or {})}
    end = {"type": "end", "status": FINISHED, "error": None}
    return b"".join(encode(record) for record in [start, *log.epochs, end])


def write_log(store: RunStore, log: ParsedLog, name: str, device: str | None, origin: str,
              source: str = "imported", run_id: str | None = None, start_extra: dict | None = None,
              **extra) -> str:
    meta = {**extra,
        "name": name, "source": source, "origin": origin, "format": log.format,
        "device": device or guess_device(name) or guess_device(log.name),
        "engine": _engine_of(log),
        "backend": "tensorflow" if log.format in (KERAS_CONSOLE, TENSORFLOW_LOOP) else None,
        "epochs": len(log.epochs), "train_samples": log.samples, "config": None,
    }
    files = {METRICS_FILE: _log_bytes(log, origin, start_extra)}
    return store.create(meta, FINISHED, files=files, run_id=run_id).id


def check_samples(samples) -> None:
    if samples is None:
        return
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_SAMPLES:
        raise ConfigError("samples", f"must be a whole number from 1 to {MAX_SAMPLES:,}, got {samples!r}")


def import_text(store: RunStore, text: str, origin: str, name: str | None = None,
                device: str | None = None, samples: int | None = None) -> list[str]:
    """One read-only run per log in `text`; nothing is written if none is found.

    Args:
        store: where the runs go.
        text: the log file's text; one file may hold several logs.
        origin: the file name, kept in the run's metadata.
        name: a label for the runs (else the log's heading or the file name).
        device: cpu or gpu (else guessed from the names).
        samples: training images per epoch, for logs that do not say, so that
            samples/s can be shown.
    """
    if device not in (None, "cpu", "gpu"):
        raise ConfigError("device", f"must be cpu or gpu, got {device!r}")
    check_samples(samples)
    logs = parse(text)  # raises ImportFormatError before anything is written
    if samples:
        for log in logs:
            set_samples(log, samples)
    stem = Path(origin).stem or "imported"
    run_ids = []
    for number, log in enumerate(logs, start=1):
        label = log.name or (stem if len(logs) == 1 else f"{stem} #{number}")
        if name:
            label = name if len(logs) == 1 else f"{name} – {label}"
        run_ids.append(write_log(store, log, label, device, origin))
    return run_ids


def import_file(store: RunStore, path: Path | str, name: str | None = None,
                device: str | None = None, samples: int | None = None) -> list[str]:
    path = Path(path)
    if path.stat().st_size > MAX_IMPORT_BYTES:
        raise RunError(f"{path} is larger than {MAX_IMPORT_BYTES // 2**20} MiB; not a training log")
    text = path.read_bytes().decode("utf-8", errors="replace")
    return import_text(store, text, path.name, name, device, samples)


def reference_logs() -> dict[str, ParsedLog]:
    """The published runs, parsed from the shipped text, by heading."""
    logs = {log.name: log for log in parse(REFERENCE_TEXT.read_text())}
    for log in logs.values():
        set_samples(log, log.samples or PUBLISHED_SAMPLES)
    return logs


def build_reference_runs(root: Path) -> list[str]:
    """Write the built-in reference runs under `root`; returns their ids.

    Their creation time is unknown (the published text gives no date), so
    `created` is null rather than the moment this ran.
    """
    logs = reference_logs()
    store = RunStore(root)
    ids = []
    for heading, (run_id, name) in REFERENCE_RUNS.items():
        start = {"test_samples": PUBLISHED_TEST_SAMPLES, "protocol": PUBLISHED_PROTOCOL,
                 "layers": PUBLISHED_LAYERS}
        if guess_device(name) == "gpu":
            start["hardware"] = {"gpu_names": [PUBLISHED_GPU]}
        ids.append(write_log(store, logs[heading], name, None, REFERENCE_TEXT.name, source="reference",
                             run_id=run_id, created=None, start_extra=start))
    return ids


if __name__ == "__main__":  # rebuild training/store/builtin/ from the published text
    from training.store.runs import BUILTIN_DIR

    for run_id in REFERENCE_RUNS.values():
        shutil.rmtree(BUILTIN_DIR / run_id[0], ignore_errors=True)
    print("\n".join(build_reference_runs(BUILTIN_DIR)))
