"""Importers: the metrics of trainings run elsewhere, as epoch records.

`parse(text, origin)` reads a text file and says which reader takes it:

  * a Jupyter notebook (`.ipynb`): its stream outputs, as the console showed them
    (notebook.py), then read like any console text;
  * a Keras `CSVLogger` file (a header with an `epoch` column), below;
  * PyTorch Lightning's console, its tqdm bars (lightning.py);
  * Keras `fit` console output, Keras 2 and 3, every verbose mode, and the published
    TensorFlow loop form (console.py), in Markdown, notebook exports, RST or plain logs,
    indented or not; in a `.py` file the `#` of a comment is dropped, never a heading.

Every reader gives `ParsedLog`s, one per run: a CSV whose `epoch` column starts again, a
console whose `Epoch 1/N` comes again, are several runs. Then `finish` refuses, per
value, what no training produces (an accuracy outside 0-1, a negative or non-finite
time, elapsed seconds that fall), each with a note naming its line, and a log with
nothing sane left is not imported. A file with no log at all is refused with the first
line that looked like one and why it did not fit. Pure text in, records out: nothing
here touches disk.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import PurePath

KERAS_CONSOLE, TENSORFLOW_LOOP, CSV_LOGGER = "keras-console", "tensorflow-loop", "keras-csvlogger"
LIGHTNING_CONSOLE = "lightning-console"

ANSI_CODES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_NAMES = {"acc": "accuracy", "val_acc": "val_accuracy", "categorical_accuracy": "accuracy",
          "val_categorical_accuracy": "val_accuracy", "sparse_categorical_accuracy": "accuracy",
          "val_sparse_categorical_accuracy": "val_accuracy"}
METRIC_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")
_ACCURACY = re.compile(r"(?:^|[_-])(?:acc|accuracy)$")  # accuracy, val_acc, top-5-accuracy, ...
# Files whose `#` lines are comments: a log pasted there is read without the `#`.
COMMENT_SUFFIXES = {".py", ".sh", ".bash", ".r", ".jl", ".yaml", ".yml", ".toml", ".cfg", ".ini"}
_CSV_TIME = {"epoch_time": "epoch_time_s", "epoch_time_s": "epoch_time_s", "time": "epoch_time_s",
             "seconds": "epoch_time_s", "duration": "epoch_time_s", "elapsed": "elapsed_s",
             "elapsed_s": "elapsed_s", "elapsed_time": "elapsed_s"}
_MAX_LISTED = 8  # refused values listed in one note, then "and N more"
GENERIC_REFUSAL = (
    "no training log recognised. Expected Keras fit console output ('Epoch 1/30' then "
    "'... - loss: ... - val_accuracy: ...'), the TensorFlow loop format ('loss: a / b  "
    "accuracy: c / d  step N  T sec'), PyTorch Lightning's console ('Epoch 0: 100%|...| 16/16 "
    "[00:26<00:00, ..., train_loss=...]'), a Jupyter notebook holding one of those, or a Keras "
    "CSVLogger file with an 'epoch' column")


class ImportFormatError(ValueError):
    """Nothing recognisable in the file, or nothing sane in what was recognised."""


@dataclass
class Miss:
    """A line that looked like part of a log but did not fit, and why."""
    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: `{shown(self.text)}`: {self.reason}"


@dataclass
class ParsedLog:
    name: str | None
    format: str
    epochs: list[dict] = field(default_factory=list)
    samples: int | None = None  # training samples per epoch, when the log says
    engine: str | None = None  # "fit" or "loop", when the format says (else from the format)
    started: float | None = None  # Unix time training started, when the log says (event wall times)
    notes: list[str] = field(default_factory=list)  # what the import skipped or could not read
    test: dict | None = None  # an evaluate line after the last epoch: {metric: value, "line": N}
    first_line: int | None = None  # where the log starts in its text


def normalise_metric(name: str) -> str:
    return _NAMES.get(name, name)


def to_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def shown(text: str | None, width: int = 70) -> str:
    """A line as a message quotes it: stripped, cut to `width` characters."""
    text = (text or "").strip()
    return text if len(text) <= width else text[:width - 1].rstrip() + "…"


def clean_terminal_text(text: str) -> list[str]:
    """Lines as a terminal would finally show them: colours gone, \\r and \\b applied."""
    return [_render_line(line) for line in ANSI_CODES.sub("", text).split("\n")]


def _render_line(raw: str) -> str:
    """Replay one line on a cursor: \\r returns to column 0, \\b steps back, text overwrites."""
    shown_chars: list[str] = []
    cursor = 0
    for char in raw:
        if char == "\r":
            cursor = 0
        elif char == "\b":
            cursor = max(0, cursor - 1)
        else:
            if cursor < len(shown_chars):
                shown_chars[cursor] = char
            else:
                shown_chars.append(char)
            cursor += 1
    return "".join(shown_chars)


def _where(record: dict) -> str:
    if record.get("_where"):
        return record["_where"]
    return f"line {record['_line']}" if record.get("_line") else f"epoch {record['epoch']}"


def check_values(log: ParsedLog) -> None:
    """Refuse, per epoch and field, values no training produces; one note lists them."""
    refused: list[str] = []
    last_elapsed = None
    for record in log.epochs:
        where = _where(record)
        for key, value in list(record.items()):
            if key.startswith("_") or key == "epoch" or not isinstance(value, float):
                continue
            if math.isnan(value):
                record[key] = None  # Keras and TensorBoard write NaN for "no value"
            elif math.isinf(value):
                refused.append(f"{where}: {key} {value}")
                record[key] = None
            elif _ACCURACY.search(key) and not 0 <= value <= 1:
                refused.append(f"{where}: {key} {value:g} is outside 0-1 (a percentage is not read as "
                               "an accuracy)")
                record[key] = None
        if (seconds := record.get("epoch_time_s")) is not None and seconds < 0:
            refused.append(f"{where}: epoch time {seconds:g} s is negative")
            record["epoch_time_s"] = None
        if (elapsed := record.get("elapsed_s")) is not None:
            if elapsed < 0 or (last_elapsed is not None and elapsed < last_elapsed):
                refused.append(f"{where}: elapsed {elapsed:g} s " + ("is negative" if elapsed < 0 else
                               f"falls below the {last_elapsed:g} s before it"))
                record["elapsed_s"] = None
            else:
                last_elapsed = elapsed
    if refused:
        more = f"; and {len(refused) - _MAX_LISTED} more" if len(refused) > _MAX_LISTED else ""
        log.notes.append("refused values no training produces (left empty): "
                         + "; ".join(refused[:_MAX_LISTED]) + more)


def fill_times(epochs: list[dict]) -> None:
    """Fill epoch_time_s from elapsed_s or elapsed_s from epoch_time_s.

    Once one epoch's time is unknown, elapsed seconds after it are unknown too (unless the
    log gives them): summing around a hole would show a time that never was.
    """
    previous: float | None = 0.0  # elapsed at the end of the previous epoch, None if unknown
    for record in epochs:
        seconds, elapsed = record.get("epoch_time_s"), record.get("elapsed_s")
        if seconds is None and elapsed is not None and previous is not None:
            record["epoch_time_s"] = round(elapsed - previous, 4)
        elif elapsed is None and seconds is not None and previous is not None:
            record["elapsed_s"] = round(previous + seconds, 4)
        previous = record.get("elapsed_s")


def _gap_notes(log: ParsedLog) -> None:
    numbers = [record["epoch"] for record in log.epochs]
    for before, after in zip(numbers, numbers[1:]):
        if after > before + 1:
            first, last = before + 1, after - 1
            missing = f"epoch {first} is" if first == last else f"epochs {first}-{last} are"
            log.notes.append(f"{missing} not in the log (it goes from epoch {before} to {after})")
    if log.epochs and numbers[0] > 1:
        log.notes.append(f"the log starts at epoch {numbers[0]}; the epochs before it are not in it")


def finish(log: ParsedLog) -> ParsedLog:
    """Sanity checks, times filled, the records made whole; internal keys (`_…`) dropped."""
    check_values(log)
    fill_times(log.epochs)
    _gap_notes(log)
    eta = [_where(record) for record in log.epochs if record.get("_eta")]
    if eta:
        log.notes.append(f"{', '.join(eta)}: the epoch's last line shows `ETA: 0s`, not the time it took; "
                         "its time is left unknown")
    for record in log.epochs:
        for key in [k for k in record if k.startswith("_")]:
            del record[key]
        record["type"] = "epoch"
        for key in (*METRIC_KEYS, "epoch_time_s", "elapsed_s"):
            record.setdefault(key, None)
    if log.samples:
        set_samples(log, log.samples)
    return log


def has_values(log: ParsedLog) -> bool:
    """Whether anything sane is left: a loss or accuracy in some epoch."""
    return any(record.get(key) is not None for record in log.epochs for key in METRIC_KEYS)


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


def parse_csv(text: str) -> list[ParsedLog]:
    """A Keras CSVLogger file: `epoch` counts from 0; metric columns by name.

    `CSVLogger(append=True)` writes every fit into one file under one header: where the
    `epoch` column starts again, a new run begins.
    """
    first = text.split("\n", 1)[0]
    delimiter = "," if "," in first else ";" if ";" in first else "\t"  # CSVLogger(separator=...)
    reader = csv.DictReader(io.StringIO(text.replace("\r\n", "\n")), delimiter=delimiter)
    if not reader.fieldnames or "epoch" not in [name.strip() for name in reader.fieldnames]:
        return []
    logs: list[ParsedLog] = []
    for row in reader:
        row = {(key or "").strip(): value for key, value in row.items()}
        if not (row.get("epoch") or "").strip().isdigit():
            continue
        record = {"epoch": int(row["epoch"]) + 1, "_where": f"line {reader.line_num}"}
        for key, value in row.items():
            value_number = to_number(value) if isinstance(value, str) and value.strip() else None
            if key and key != "epoch" and value_number is not None:
                record[_CSV_TIME.get(key, normalise_metric(key))] = value_number
        if not logs or record["epoch"] <= logs[-1].epochs[-1]["epoch"]:
            logs.append(ParsedLog(name=None, format=CSV_LOGGER, first_line=reader.line_num))
        logs[-1].epochs.append(record)
    return [log for log in logs if any(key in e for e in log.epochs for key in METRIC_KEYS)]


def _is_csv(text: str) -> bool:
    first = text.split("\n", 1)[0]
    return any(sep in first and "epoch" in [cell.strip().strip('"') for cell in first.split(sep)]
               for sep in (",", ";", "\t"))


def _read(text: str, origin: str | None) -> tuple[list[ParsedLog], list[Miss]]:
    """The reader that takes this text, and its logs (not yet finished) and misses."""
    from training.imports import console, lightning, notebook

    suffix = PurePath(origin or "").suffix.lower()
    if suffix == ".ipynb" or notebook.looks_like_notebook(text):
        text = notebook.stream_text(text, origin)  # raises ImportFormatError when not JSON
    if _is_csv(text):
        return parse_csv(text), []
    lines = clean_terminal_text(text.replace("\r\n", "\n"))
    if lightning.looks_like_lightning(text):
        return lightning.parse_lightning(text), []
    comments = suffix in COMMENT_SUFFIXES
    return console.parse_console(lines, headings=not comments, comments=comments)


def parse(text: str, origin: str | None = None) -> list[ParsedLog]:
    """Every log in a file, finished; raises `ImportFormatError` when there is none.

    Args:
        text: the file's text.
        origin: its file name; the suffix says how to read it (`.ipynb`, `.py`).
    """
    logs, misses = _read(text.lstrip("\ufeff"), origin)
    logs = [finish(log) for log in logs]
    kept = [log for log in logs if has_values(log)]
    dropped = [log for log in logs if not has_values(log)]
    reasons = [f"the log at line {log.first_line or '?'} has nothing sane left ({'; '.join(log.notes)})"
               for log in dropped]
    if not kept:
        if reasons:
            raise ImportFormatError(f"{reasons[0]}; nothing imported")
        if misses:
            raise ImportFormatError(f"no training log recognised: {misses[0]}; nothing imported")
        raise ImportFormatError(GENERIC_REFUSAL)
    if reasons:
        kept[0].notes.extend(reasons)
    return kept


def guess_device(name: str | None) -> str | None:
    if not name:
        return None
    lowered = name.lower()
    if "gpu" in lowered or "cuda" in lowered:
        return "gpu"
    if "cpu" in lowered:
        return "cpu"
    return None
