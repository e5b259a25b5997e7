"""Importers: the metrics of trainings run elsewhere, as epoch records.

Accepted, in one file or several blocks of one file:
  (a) Keras `fit` console output, after any `model.summary()` table: Keras 2 (tf.keras,
      tf_keras) with verbose=1 and verbose=2
        Epoch 1/30
        60000/60000 [====] - 112s 2ms/step - loss: 0.0879 - acc: 0.9733 - val_loss: ...
        469/469 - 2s - loss: 0.0879 - accuracy: 0.9733 - val_loss: ... - 2s/epoch - 22ms/step
      and Keras 3 with verbose=1 and verbose=2
        469/469 ━━━━ 10s 21ms/step - accuracy: 0.97 - loss: 0.09 - val_accuracy: ...
        469/469 - 10s - 21ms/step - accuracy: 0.97 - loss: 0.09 - val_accuracy: ...
      including terminal captures full of redraws (\\r), backspaces and colours;
  (b) the published TensorFlow form, with cumulative seconds
        loss: 0.0931 / 0.0435    accuracy: 0.9708 / 0.9847    step 1  5.50 sec
  (c) Keras `CSVLogger` files.
Each log becomes one `ParsedLog`, named after the Markdown heading above it
when there is one. Pure text in, records out: nothing here touches disk.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

KERAS_CONSOLE, TENSORFLOW_LOOP, CSV_LOGGER = "keras-console", "tensorflow-loop", "keras-csvlogger"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_TRAIN_ON = re.compile(r"^\s*Train on (\d+) samples")
_EPOCH = re.compile(r"^\s*Epoch\s+(\d+)\s*/\s*(\d+)\s*$")
# "60000/60000 [====] - 112s 2ms/step - loss: ..." or "469/469 ━━━ 10s 21ms/step - accuracy: ..."
# Keras 3 with verbose=2 writes "47/47 - 3s - 56ms/step - accuracy: ...".
_KERAS_LINE = re.compile(
    r"^\s*(?P<done>\d+)/(?P<total>\d+)\s.*?(?:^|\s)(?:-\s+)?(?P<seconds>\d+(?:\.\d+)?)s\s+(?:-\s+)?"
    r"\d+(?:\.\d+)?(?:s|ms|us)/(?:step|sample)(?P<metrics>(?:\s+-\s+\w+:\s+\S+)+)\s*$")
# Keras 2 with verbose=2: "469/469 - 2s - loss: ... - val_accuracy: 0.98 - 2s/epoch - 22ms/step";
# before TF 2.2 the count was samples, "60000/60000 - 3s - loss: ...", or absent.
_KERAS2_TERSE = re.compile(
    r"^\s*(?:(?P<done>\d+)/(?P<total>\d+)\s+)?-\s+(?P<seconds>\d+(?:\.\d+)?)s\s+(?P<metrics>-\s+\w+:\s+\S.*)$")
_METRIC = re.compile(r"(\w+):\s+([-+0-9.eE]+|nan|inf)")
_TF_LINE = re.compile(
    r"^\s*loss:\s*(?P<loss>\S+)\s*/\s*(?P<val_loss>\S+)\s+accuracy:\s*(?P<acc>\S+)\s*/\s*"
    r"(?P<val_acc>\S+)\s+step\s+(?P<step>\d+)\s+(?P<sec>[0-9.]+)\s*sec\s*$")

_NAMES = {"acc": "accuracy", "val_acc": "val_accuracy", "categorical_accuracy": "accuracy",
          "val_categorical_accuracy": "val_accuracy", "sparse_categorical_accuracy": "accuracy",
          "val_sparse_categorical_accuracy": "val_accuracy"}
METRIC_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


class ImportFormatError(ValueError):
    """Nothing recognisable in the file."""


@dataclass
class ParsedLog:
    name: str | None
    format: str
    epochs: list[dict] = field(default_factory=list)
    samples: int | None = None  # training samples per epoch, when the log says
    engine: str | None = None  # "fit" or "loop", when the format says (else from the format)
    started: float | None = None  # Unix time training started, when the log says (event wall times)
    notes: list[str] = field(default_factory=list)  # what the import skipped or could not read


def normalise_metric(name: str) -> str:
    return _NAMES.get(name, name)


def clean_terminal_text(text: str) -> list[str]:
    """Lines as a terminal would finally show them: colours gone, \\r and \\b applied."""
    return [_render_line(line) for line in _ANSI.sub("", text).split("\n")]


def _render_line(raw: str) -> str:
    """Replay one line on a cursor: \\r returns to column 0, \\b steps back, text overwrites."""
    shown: list[str] = []
    cursor = 0
    for char in raw:
        if char == "\r":
            cursor = 0
        elif char == "\b":
            cursor = max(0, cursor - 1)
        else:
            if cursor < len(shown):
                shown[cursor] = char
            else:
                shown.append(char)
            cursor += 1
    return "".join(shown)


def _fill_times(epochs: list[dict]) -> None:
    """Fill epoch_time_s from elapsed_s or elapsed_s from epoch_time_s."""
    previous = 0.0
    for record in epochs:
        if record.get("epoch_time_s") is None and record.get("elapsed_s") is not None:
            record["epoch_time_s"] = round(record["elapsed_s"] - previous, 4)
        elif record.get("elapsed_s") is None and record.get("epoch_time_s") is not None:
            record["elapsed_s"] = round(previous + record["epoch_time_s"], 4)
        previous = record.get("elapsed_s") or previous


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _finish(log: ParsedLog) -> ParsedLog:
    _fill_times(log.epochs)
    for record in log.epochs:
        record["type"] = "epoch"
        for key in (*METRIC_KEYS, "epoch_time_s", "elapsed_s"):
            record.setdefault(key, None)
    if log.samples:
        set_samples(log, log.samples)
    return log


def set_samples(log: ParsedLog, samples: int) -> None:
    """Record the training samples per epoch and derive samples/s from them.

    Imported logs give only whole-epoch seconds, so this samples/s counts the
    evaluation time too and reads slightly low next to a local run's.
    """
    log.samples = samples
    for record in log.epochs:
        if record.get("epoch_time_s"):
            record["samples"] = samples
            record["samples_per_s"] = round(samples / record["epoch_time_s"], 2)


def parse_text(text: str) -> list[ParsedLog]:
    """Every Keras-console or TensorFlow-loop log in a text, in order."""
    logs: list[ParsedLog] = []
    heading: str | None = None
    current: ParsedLog | None = None
    pending_epoch: int | None = None
    samples_hint: int | None = None

    def start(fmt: str) -> ParsedLog:
        nonlocal current, heading
        current = ParsedLog(name=heading, format=fmt)
        heading = None  # a heading names only the log right below it
        logs.append(current)
        return current

    for line in clean_terminal_text(text):
        if match := _HEADING.match(line):
            heading, current = match.group(1).strip(), None
            continue
        if match := _TRAIN_ON.match(line):
            samples_hint = int(match.group(1))  # Keras 2 says how many samples per epoch
            continue
        if match := _EPOCH.match(line):
            pending_epoch = int(match.group(1))
            if pending_epoch == 1 or current is None or current.format != KERAS_CONSOLE:
                start(KERAS_CONSOLE).samples = samples_hint
            continue
        match = _KERAS_LINE.match(line) or _KERAS2_TERSE.match(line)
        if match and pending_epoch is not None and match["done"] == match["total"]:
            # Only the epoch's final line: an earlier redraw shows an ETA, not the time taken.
            metrics = {normalise_metric(k): _number(v) for k, v in _METRIC.findall(match["metrics"])}
            record = {"epoch": pending_epoch, "epoch_time_s": float(match["seconds"]), **metrics}
            log = current or start(KERAS_CONSOLE)
            if log.epochs and log.epochs[-1]["epoch"] == pending_epoch:
                log.epochs[-1] = record  # a later redraw of the same epoch
            else:
                log.epochs.append(record)
            continue
        if match := _TF_LINE.match(line):
            step = int(match["step"])
            if current is None or current.format != TENSORFLOW_LOOP or step == 1:
                start(TENSORFLOW_LOOP)
            current.epochs.append({
                "epoch": step, "loss": _number(match["loss"]), "val_loss": _number(match["val_loss"]),
                "accuracy": _number(match["acc"]), "val_accuracy": _number(match["val_acc"]),
                "elapsed_s": float(match["sec"]),
            })
    return [_finish(log) for log in logs if log.epochs]


def parse_csv(text: str) -> list[ParsedLog]:
    """A Keras CSVLogger file: `epoch` counts from 0; metric columns by name."""
    reader = csv.DictReader(io.StringIO(text.replace("\r\n", "\n")))
    if not reader.fieldnames or "epoch" not in reader.fieldnames:
        return []
    epochs = []
    for row in reader:
        if not row.get("epoch", "").strip().isdigit():
            continue
        record = {"epoch": int(row["epoch"]) + 1}
        for key, value in row.items():
            if key and key != "epoch" and value not in (None, ""):
                number = _number(value)
                if number is not None:
                    record[normalise_metric(key.strip())] = number
        for alias in ("epoch_time", "time", "seconds"):
            if alias in record:
                record["epoch_time_s"] = record.pop(alias)
        epochs.append(record)
    known = any(k in e for e in epochs for k in METRIC_KEYS)
    return [_finish(ParsedLog(name=None, format=CSV_LOGGER, epochs=epochs))] if known else []


def parse(text: str) -> list[ParsedLog]:
    """Every log in a file; raises `ImportFormatError` when there is none."""
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    logs = parse_csv(text.lstrip("\ufeff")) if first.startswith("epoch,") or ",epoch," in first else []
    logs = logs or parse_text(text)
    if not logs:
        raise ImportFormatError(
            "no training log recognised. Expected Keras fit console output ('Epoch 1/30' then "
            "'... - loss: ... - val_accuracy: ...'), the TensorFlow loop format ('loss: a / b  "
            "accuracy: c / d  step N  T sec') or a Keras CSVLogger file with an 'epoch' column.")
    return logs


def guess_device(name: str | None) -> str | None:
    if not name:
        return None
    lowered = name.lower()
    if "gpu" in lowered or "cuda" in lowered:
        return "gpu"
    if "cpu" in lowered:
        return "cpu"
    return None
