"""Imported and reference runs: parsed logs written as read-only run folders.

The two published runs of the 2018 experiment ship as text inside the package
(`reference/published-results.md`). `build_reference_runs` turns them, with the
same importers as any user file, into the run folders "Keras CPU (published)"
and "TensorFlow GPU (published)" that ship in `training/store/builtin/`, where
every store lists them without writing them anywhere. A test checks that what
ships is what this module builds; `python -m training.imports.runs` rebuilds it.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from training.config import MNIST_TRAIN_SIZE, ConfigError, check_name, clean_name
from training.imports.parsers import (
    KERAS_CONSOLE,
    TENSORFLOW_LOOP,
    ParsedLog,
    guess_device,
    parse,
    set_samples,
)
from training.imports.tensorboard import (
    EVENT_MARK,
    MAX_EVENT_FILES,
    MAX_EVENTS_BYTES,
    ImportFormatError,
    is_event_data,
    looks_like_event_file,
    parse_events,
    parse_maps,
)
from training.store import FINISHED, RunError, RunStore
from training.store.layout import METRICS_FILE, kind_of
from training.store.logwriter import encode

REFERENCE_TEXT = Path(__file__).resolve().parent / "reference" / "published-results.md"
PUBLISHED_SAMPLES = MNIST_TRAIN_SIZE  # both published runs trained on all of MNIST
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
MAX_ZIP_ENTRIES = 10_000  # files in an uploaded zip, event files or not
BINARY_SNIFF_BYTES = 8192  # a NUL byte in these makes a file binary, not a text log
MAX_IMPORT_RUNS = 1000  # runs one import may add (one file may hold many logs)


def _engine_of(log: ParsedLog) -> str:
    return log.engine or ("loop" if log.format == TENSORFLOW_LOOP else "fit")


def _log_bytes(log: ParsedLog, origin: str, start_extra: dict | None = None) -> bytes:
    """start, a warning per import note, the epochs, end; times where the log gives them."""
    start = {"type": "start", "imported": True, "format": log.format, "origin": origin,
             "train_samples": log.samples, **(start_extra or {})}
    end = {"type": "end", "status": FINISHED, "error": None}
    if log.test:  # an evaluate line after the last epoch: the run's test result, never an epoch
        end["test"] = log.test
    if log.started is not None:
        start["time"] = log.started
        end["time"] = log.epochs[-1].get("time", log.started) if log.epochs else log.started
    warnings = [{"type": "warning", "source": "import", "message": note, **({"time": log.started}
                 if log.started is not None else {})} for note in log.notes]
    return b"".join(encode(record) for record in [start, *warnings, *log.epochs, end])


def write_log(store: RunStore, log: ParsedLog, name: str, device: str | None, origin: str,
              source: str = "imported", run_id: str | None = None, start_extra: dict | None = None,
              **extra) -> str:
    name, origin = clean_name(name or ""), clean_name(origin)  # names from files: no control characters
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
    logs = parse(text, origin)  # raises ImportFormatError before anything is written
    if samples:
        for log in logs:
            set_samples(log, samples)
    stem = Path(origin).stem or "imported"
    labels = []
    for number, log in enumerate(logs, start=1):
        label = log.name or (stem if len(logs) == 1 else f"{stem} #{number}")
        if name:
            label = name if len(logs) == 1 else f"{name} – {label}"
        labels.append(label)
    return _write_all(store, logs, device, origin, labels)


def _write_all(store: RunStore, logs: list[ParsedLog], device: str | None, origin: str,
               labels: list[str] | None = None) -> list[str]:
    """Every log as a run, or none: a run already written is removed if a later one fails.

    At most MAX_IMPORT_RUNS, and the store's free-space rule (MIN_FREE_MB) is checked
    before every run, so an import never fills the disk: it stops and takes back what it made."""
    if len(logs) > MAX_IMPORT_RUNS:
        raise RunError(f"{origin} holds {len(logs):,} logs; one import adds at most {MAX_IMPORT_RUNS:,} runs "
                       "(MAX_IMPORT_RUNS); nothing imported")
    made: list[str] = []
    try:
        for log, label in zip(logs, labels or [log.name for log in logs]):
            if problem := store.start_problem():
                raise RunError(f"cannot import {origin}: {problem}; nothing imported (the {len(made)} "
                               "runs it had written are removed)")
            made.append(write_log(store, log, label, device, origin))
    except BaseException:
        for run_id in made:
            shutil.rmtree(store.root / run_id, ignore_errors=True)
        raise
    return made


def import_events(store: RunStore, path: Path | str, name: str | None = None, device: str | None = None,
                  samples: int | None = None, maps: list[str] | None = None, label: str | None = None,
                  origin: str | None = None) -> list[str]:
    """One read-only run per TensorBoard log root under `path` (tensorboard.py).

    Args:
        path: an event file or a folder of them.
        maps: ["TAG=field", ...] for scalar tags not recognised by their spelling.
        label: how notes and names call the import (an uploaded zip's name), else `path`.
        origin: kept in the runs' metadata (default: `path`).
    Notes (tags skipped, a damaged file) become `warning` records of the runs.
    """
    if device not in (None, "cpu", "gpu"):
        raise ConfigError("device", f"must be cpu or gpu, got {device!r}")
    check_samples(samples)
    logs = parse_events(path, parse_maps(maps), label=label, name=name)  # raises before any write
    for log in logs:
        if samples:
            set_samples(log, samples)
    return _write_all(store, logs, device, origin or str(path))


def _zip_member_path(name: str) -> tuple[str, ...]:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or name.startswith(("/", "\\")) or ".." in parts or any(":" in part for part in parts):
        raise ImportFormatError(f"unsafe path in the zip: {name!r}; nothing imported")
    return parts


def import_zip(store: RunStore, source, filename: str, name: str | None = None, device: str | None = None,
               samples: int | None = None, maps: list[str] | None = None) -> list[str]:
    """A zip of a TensorBoard log folder: its event files are unpacked to a temporary folder and read.

    Only members named like event files are unpacked, each within the size caps, so a zip
    bomb or a path that climbs out (`../`) is refused before anything is written.
    """
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as error:
        raise ImportFormatError(f"{filename} is not a readable zip file ({error}); "
                                "nothing imported") from error
    with archive, tempfile.TemporaryDirectory(prefix="training-import-") as tmp:
        entries = archive.infolist()
        if len(entries) > MAX_ZIP_ENTRIES:
            raise ImportFormatError(f"{filename} holds {len(entries):,} files; at most {MAX_ZIP_ENTRIES:,}")
        members = [m for m in entries if not m.is_dir() and EVENT_MARK in PurePosixPath(m.filename).name]
        if not members:
            raise ImportFormatError(f"no TensorBoard event files (events.out.{EVENT_MARK}.*) in {filename}; "
                                    "nothing imported")
        if len(members) > MAX_EVENT_FILES or sum(m.file_size for m in members) > MAX_EVENTS_BYTES:
            raise ImportFormatError(f"the event files in {filename} exceed {MAX_EVENT_FILES:,} files or "
                                    f"{MAX_EVENTS_BYTES // 2**20} MiB; nothing imported")
        top = Path(tmp, "log")
        for member in members:
            target = top.joinpath(*_zip_member_path(member.filename))
            try:
                with archive.open(member) as handle:
                    data = handle.read(member.file_size + 1)  # a header that lies cannot inflate past it
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError) as error:
                raise ImportFormatError(f"{filename}: {member.filename} cannot be unpacked ({error}); "
                                        "nothing imported") from error
            if len(data) > member.file_size:
                raise ImportFormatError(f"{filename}: {member.filename} is larger than its zip entry says; "
                                        "nothing imported")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return import_events(store, top, name, device, samples, maps, label=filename, origin=filename)


def _import_log_bytes(store: RunStore, data: bytes, origin: str, name: str | None, device: str | None,
                      samples: int | None, maps: list[str] | None) -> list[str]:
    if maps:
        raise ConfigError("map", "only TensorBoard logs have tags to map; this is a text log")
    if is_event_data(data[:12]):
        raise ImportFormatError(f"{origin} is a TensorBoard event file: upload a zip of its log folder, or "
                                "import it with `python -m training import FILE`")
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        raise ImportFormatError(f"{origin} is a binary file, neither a text training log nor a TensorBoard "
                                "event file; nothing imported")
    return import_text(store, data.decode("utf-8", errors="replace"), origin, name, device, samples)


def import_file(store: RunStore, path: Path | str, name: str | None = None, device: str | None = None,
                samples: int | None = None, maps: list[str] | None = None) -> list[str]:
    """`python -m training import PATH`: a text log, a TensorBoard event file or log folder, or a zip.

    A FIFO, a device or a socket is refused from `stat`, before anything opens it (a FIFO
    would block, /dev/zero never end); a file is read no further than the size cap."""
    path = Path(path)
    if name is not None:
        check_name("name", name)
    mode = os.stat(path).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise RunError(f"{clean_name(str(path))} is {kind_of(mode)}, not a log file or folder; "
                       "nothing imported")
    if path.is_dir() or looks_like_event_file(path):
        return import_events(store, path, name, device, samples, maps)
    if zipfile.is_zipfile(path):
        return import_zip(store, path, path.name, name, device, samples, maps)
    if path.stat().st_size > MAX_IMPORT_BYTES:
        raise RunError(f"{path} is larger than {MAX_IMPORT_BYTES // 2**20} MiB; not a training log")
    with open(path, "rb") as handle:
        data = handle.read(MAX_IMPORT_BYTES + 1)  # a file that grows meanwhile is still capped
    if len(data) > MAX_IMPORT_BYTES:
        raise RunError(f"{path} is larger than {MAX_IMPORT_BYTES // 2**20} MiB; not a training log")
    return _import_log_bytes(store, data, path.name, name, device, samples, maps)


def import_upload(store: RunStore, data: bytes, filename: str, name: str | None = None,
                  device: str | None = None, samples: int | None = None,
                  maps: list[str] | None = None) -> list[str]:
    """The Runs page's upload: a zip of a TensorBoard log folder, or a text log."""
    if name is not None:
        check_name("name", name)
    if zipfile.is_zipfile(io.BytesIO(data)):
        return import_zip(store, io.BytesIO(data), filename, name, device, samples, maps)
    if len(data) > MAX_IMPORT_BYTES:
        raise RunError(f"{filename} is larger than {MAX_IMPORT_BYTES // 2**20} MiB; not a training log")
    return _import_log_bytes(store, data, filename, name, device, samples, maps)


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
