"""Keras `fit` consoles and the published TensorFlow loop format, read line by line.

What one epoch looks like, in every Keras that prints one:

    Epoch 3/30                                                  the header, then the epoch's line:
    60000/60000 [====] - 112s 2ms/step - loss: 0.08 - acc: 0.97 - val_loss: ...   Keras 2, verbose=1
    60000/60000 [====] - 15s - loss: 0.25 - acc: 0.92 - ...     Keras 2.0: no per-step time
    60000/60000 [====] - ETA: 0s - loss: 0.25 - ...             Keras <= 2.0.8's last redraw (no time)
    60000/60000 4s - loss: 0.25 - ...                           Keras 2.0, verbose=2
     - 3s - loss: 0.25 - ...                                    Keras 2.1-2.3, verbose=2
    469/469 - 2s - loss: ... - 2s/epoch - 22ms/step             tf.keras 2.2+, verbose=2 (358ms/epoch
                                                                is preferred to a rounded "- 0s -")
    13440/Unknown - 2s - loss: ...                              a dataset of unknown length
    469/469 ━━━━ 10s 21ms/step - accuracy: 0.97 - ...           Keras 3, verbose=1
    469/469 - 10s - 21ms/step - accuracy: 0.97 - ...            Keras 3, verbose=2

A line belongs to an epoch only while that epoch is open: after its header, until other
text comes (a callback's "Epoch 3: ..." message, TensorFlow's own log lines and blank lines
do not close it). A later line with the same step total and the same metrics or more
is a redraw of the same epoch; anything else after the last epoch (`model.evaluate`) is
the run's test result, never an epoch. The TensorFlow loop form, with cumulative seconds
and optional accuracy:

    loss: 0.0931 / 0.0435    accuracy: 0.9708 / 0.9847    step 1  5.50 sec
    loss: 51.7836 / 47.0752    step 1  1.83 sec
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from training.imports.parsers import (
    KERAS_CONSOLE,
    TENSORFLOW_LOOP,
    Miss,
    ParsedLog,
    normalise_metric,
    shown,
    to_number,
)

_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
_COMMENT = re.compile(r"^\s*#+ ?")
_QUOTE = re.compile(r"^\s*(?:>\s?)+")
_TRAIN_ON = re.compile(r"^Train on (\d+) samples")
_EPOCH = re.compile(r"^Epoch\s+(\d+)\s*/\s*(\d+)\s*$")
# Lines that come inside an epoch without ending it: callbacks ("Epoch 3: val_loss improved
# ...", "Epoch 49: early stopping"), TensorFlow's and absl's own log lines, Python warnings.
_INSIDE = re.compile(
    r"^(?:Epoch\s+\d+:\s|\d{4}-\d\d-\d\d[ T][\d:.]+:?\s+[IWEF]\s|[IWEF]\d{4}\s|WARNING:|INFO:|"
    r"\S+\.py:\d+: \w*Warning)")
_PROGRESS = re.compile(r"^(?P<done>\d+)/(?P<total>\d+|Unknown)(?=[\s\[\-━─]|$)(?P<rest>.*)$")
_TERSE = re.compile(r"^-\s+(?P<rest>\d.*)$")  # " - 3s - loss: ..." (Keras 2.1-2.3, verbose=2)
_BAR = re.compile(r"^\s*(?:\[[=>.]*\]|[━─]+)")
_SEP = re.compile(r"\s+-\s+")
_TIME = r"(\d+(?:\.\d+)?)(s|ms|us|µs)"
_ELAPSED = re.compile(rf"^{_TIME}(?:\s+{_TIME}/(?:step|sample))?$")
_PER_STEP = re.compile(rf"^{_TIME}/(?:step|sample)$")
_PER_EPOCH = re.compile(rf"^{_TIME}/epoch$")
_ETA = re.compile(r"^ETA:\s*\S+$")
_METRIC = re.compile(r"^(?P<name>[A-Za-z_][\w-]*):\s*(?P<value>\S+)$")
_LOOKS_LIKE_METRICS = re.compile(r"\b(?:[A-Za-z_][\w-]*)?(?:loss|acc|accuracy):\s*[-+.\d]")
_TF_LINE = re.compile(
    r"^loss:\s*(?P<loss>\S+)\s*/\s*(?P<val_loss>\S+)\s+(?:accuracy:\s*(?P<acc>\S+)\s*/\s*(?P<val_acc>\S+)\s+)?"
    r"step\s+(?P<step>\d+)\s+(?P<sec>[0-9.]+)\s*sec\s*$")
_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}


@dataclass
class Progress:
    """One Keras progress line, read."""
    done: int | None
    total: int | str | None  # an int, "Unknown", or None (the terse verbose=2 form)
    seconds: float | None = None  # the epoch's elapsed seconds as printed (rounded)
    per_epoch: float | None = None  # "358ms/epoch"
    per_step: float | None = None  # "11ms/step"
    eta: bool = False
    metrics: dict = field(default_factory=dict)
    problem: str | None = None  # why the line does not fit, when it does not

    @property
    def final(self) -> bool:
        return self.total in (None, "Unknown") or self.done == self.total


def read_progress(line: str) -> Progress | None:
    """A Keras progress line, or None when the line is not one."""
    if match := _PROGRESS.match(line):
        total = match["total"] if match["total"] == "Unknown" else int(match["total"])
        progress, rest = Progress(int(match["done"]), total), match["rest"]
    elif match := _TERSE.match(line):
        progress, rest = Progress(None, None), match["rest"]
    else:
        return None
    rest = _BAR.sub("", rest).strip()
    rest = rest[1:].strip() if rest.startswith("-") else rest
    for part in (p.strip() for p in _SEP.split(rest) if p.strip()):
        if (found := _ELAPSED.match(part)) and progress.seconds is None:
            progress.seconds = float(found[1]) * _UNITS[found[2]]
            if found[3]:
                progress.per_step = float(found[3]) * _UNITS[found[4]]
        elif found := _PER_EPOCH.match(part):
            progress.per_epoch = float(found[1]) * _UNITS[found[2]]
        elif found := _PER_STEP.match(part):
            progress.per_step = float(found[1]) * _UNITS[found[2]]
        elif _ETA.match(part):
            progress.eta = True
        elif (found := _METRIC.match(part)) and (value := to_number(found["value"])) is not None:
            progress.metrics[normalise_metric(found["name"])] = value
        else:
            progress.problem = f"`{shown(part, 40)}` is neither a metric (`name: number`) nor a time"
            break
    if progress.problem is None and progress.final and progress.metrics and not progress.eta \
            and progress.seconds is None and progress.per_epoch is None:
        progress.problem = "no epoch time in a form this reader knows"
    return progress


@dataclass
class _Header:
    epoch: int
    total: int
    line: int
    text: str
    has_line: bool = False
    open: bool = True
    partial: str | None = None  # the last unfinished progress line seen, for the report
    after_text: bool = False  # other text came after the header before any epoch line


@dataclass
class _Reader:
    """The state of one pass over a text."""
    headings: bool
    logs: list[ParsedLog] = field(default_factory=list)
    misses: list[Miss] = field(default_factory=list)
    heading: str | None = None
    current: ParsedLog | None = None
    header: _Header | None = None
    samples_hint: int | None = None

    def start(self, fmt: str, line: int) -> ParsedLog:
        if self.current is not None and self.current.format == fmt and not self.current.epochs:
            return self.current  # a header with nothing after it: reuse its (empty) log
        self.current = ParsedLog(name=self.heading, format=fmt, first_line=line)
        self.heading = None  # a heading names only the log right below it
        self.logs.append(self.current)
        return self.current

    def miss(self, number: int, text: str, reason: str) -> None:
        self.misses.append(Miss(number, text, reason))
        if self.current is not None:
            self.current.notes.append(f"line {number}: `{shown(text)}`: {reason}; not read")

    def close_header(self, ending: str) -> None:
        header = self.header
        if header is not None and not header.has_line:
            if header.partial:
                reason = f"epoch {header.epoch} stops at `{shown(header.partial, 40)}`, unfinished ({ending})"
            else:
                reason = f"an epoch header with no epoch line after it ({ending})"
            self.miss(header.line, header.text, reason)
        self.header = None if header is None or not header.has_line else header
        if self.header is not None:
            self.header.open = False


def parse_console(text_lines: list[str], headings: bool = True,
                  comments: bool = False) -> tuple[list[ParsedLog], list[Miss]]:
    """Every Keras-console or TensorFlow-loop log in a text's lines, and what did not fit.

    Args:
        text_lines: the lines as a terminal shows them (`clean_terminal_text`).
        headings: Markdown headings name the log below them (not in source code).
        comments: strip a leading `#` (a log pasted into a script's comments).
    """
    reader = _Reader(headings)
    for number, raw in enumerate(text_lines, start=1):
        line = _COMMENT.sub("", raw) if comments else raw
        line = _QUOTE.sub("", line).strip()
        if not line:
            continue
        _take_line(reader, number, line)
    reader.close_header("the text ends")
    return _without_quotes([log for log in reader.logs if log.epochs]), reader.misses


def _values(record: dict) -> tuple:
    return tuple(sorted((k, v) for k, v in record.items() if not k.startswith("_")))


def _without_quotes(logs: list[ParsedLog]) -> list[ParsedLog]:
    """Logs less those that only quote epochs of an earlier one (a README citing its own output)."""
    kept: list[ParsedLog] = []
    earlier: dict[tuple, ParsedLog] = {}  # every kept epoch's values -> its log
    for log in logs:
        sources = [earlier.get(_values(record)) for record in log.epochs]
        if log.epochs[0]["epoch"] != 1 and all(sources):
            lines = ", ".join(str(record["_line"]) for record in log.epochs)
            epochs = ", ".join(str(record["epoch"]) for record in log.epochs)
            several = len(log.epochs) > 1
            sources[0].notes.append(f"line{'s' * several} {lines} quote{'' if several else 's'} epoch"
                                    f"{'s' * several} {epochs} of this run again; not read as another run")
        else:
            kept.append(log)
            for record in log.epochs:
                earlier.setdefault(_values(record), log)
    return kept


def _take_line(reader: _Reader, number: int, line: str) -> None:
    if reader.headings and (match := _HEADING.match(line)):
        reader.close_header("a heading follows")
        reader.heading, reader.current = match.group(1).strip(), None
    elif match := _TRAIN_ON.match(line):
        reader.samples_hint = int(match.group(1))  # Keras 2 says how many samples per epoch
    elif match := _EPOCH.match(line):
        _take_header(reader, number, line, int(match.group(1)), int(match.group(2)))
    elif _INSIDE.match(line):
        pass
    elif (progress := read_progress(line)) is not None:
        _take_progress(reader, number, line, progress)
    elif match := _TF_LINE.match(line):
        reader.close_header("the TensorFlow loop form follows")
        _take_tf_line(reader, number, match)
    else:
        if _LOOKS_LIKE_METRICS.search(line) and reader.header is not None and reader.header.open:
            reader.miss(number, line, "metrics in a line of no form this reader knows")
        if reader.header is not None and not reader.header.has_line:
            reader.header.after_text = True  # a multi-line warning, say: the epoch's line may follow
        else:
            reader.close_header("other text follows")


def _take_header(reader: _Reader, number: int, line: str, epoch: int, total: int) -> None:
    reader.close_header("the next epoch header follows")
    log = reader.current
    last = log.epochs[-1]["epoch"] if log is not None and log.epochs else None
    if log is None or log.format != KERAS_CONSOLE or epoch == 1 or (last is not None and epoch <= last):
        log = reader.start(KERAS_CONSOLE, number)
        log.samples, reader.samples_hint = reader.samples_hint, None
    elif log.test is not None:  # more epochs came after it: an evaluate between epochs, no test result
        log.notes.append(f"line {log.test['line']}: an evaluate line between epochs (a callback's?), "
                         "not after the last one: not kept as the test result")
        log.test = None
    reader.header = _Header(epoch, total, number, line)


def _take_progress(reader: _Reader, number: int, line: str, progress: Progress) -> None:
    header, log = reader.header, reader.current
    if progress.problem:
        if progress.metrics or _LOOKS_LIKE_METRICS.search(line):
            reader.miss(number, line, progress.problem)
        return
    if not progress.metrics:
        return  # a predict() bar, or a progress line with nothing to read
    if not progress.final:
        if header is not None and header.open and not header.has_line:
            header.partial = line
        return
    record = _record(header.epoch if header else 0, number, progress)
    if header is not None and log is not None and not header.has_line:
        if header.after_text and not _belongs_after_text(log, progress):
            reader.miss(number, line, f"after other text, with no validation values and no earlier epoch "
                                      f"of the same steps: not read as epoch {header.epoch}'s line")
            return
        if _same_steps(log, progress):
            log.epochs.append(record)
            header.has_line = True
            return
    elif header is not None and log is not None and header.open and log.epochs:
        previous = log.epochs[-1]
        if previous.get("_steps") == progress.total and set(previous) - {"_eta"} <= set(record) | {"_eta"}:
            log.epochs[-1] = record  # a later redraw of the same epoch
            return
    if log is not None and log.epochs:
        _take_test(reader, log, number, line, progress)
    else:
        reader.miss(number, line, "a progress line with no `Epoch N/M` header before it")


def _belongs_after_text(log: ParsedLog, progress: Progress) -> bool:
    """Whether a line that came after other text is still the open epoch's own: it has
    validation values (an evaluate line has none) or the step total of the epoch before."""
    if any(key.startswith("val_") for key in progress.metrics):
        return True
    return bool(log.epochs) and log.epochs[-1].get("_steps") == progress.total


def _same_steps(log: ParsedLog, progress: Progress) -> bool:
    """An epoch of the same fit has the same step total as the epoch before."""
    return not log.epochs or log.epochs[-1].get("_steps") in (progress.total, None, "Unknown")


def _record(epoch: int, number: int, progress: Progress) -> dict:
    seconds = progress.per_epoch if progress.per_epoch is not None else progress.seconds
    seconds = None if seconds is None else round(seconds, 6)  # 358ms -> 0.358, not 0.35800000000000004
    if seconds == 0 and progress.per_step and isinstance(progress.done, int):
        # "- 0s 11ms/step": under half a second, rounded to 0; the steps times their
        # time is the same clock with more digits (never 0, which no epoch takes).
        seconds = round(progress.done * progress.per_step, 4)
    record = {"epoch": epoch, "epoch_time_s": seconds, **progress.metrics, "_line": number,
              "_steps": progress.total}
    if progress.eta and seconds is None:
        record["_eta"] = True
    return record


def _take_test(reader: _Reader, log: ParsedLog, number: int, line: str, progress: Progress) -> None:
    """A progress line after the last epoch: `model.evaluate`, kept as the run's test result."""
    if any(key.startswith("val_") for key in progress.metrics):
        reader.miss(number, line, "an epoch's line outside any epoch (no `Epoch N/M` header is open)")
        return
    if log.test is None:
        log.test = {**progress.metrics, "line": number}
        log.notes.append(f"line {number}: `{shown(line)}` comes after the last epoch (model.evaluate): "
                         "kept as the run's test result, not as an epoch")
    else:
        log.notes.append(f"line {number}: a further evaluate line after the last epoch; not read")
    if reader.header is not None:
        reader.header.open = False


def _take_tf_line(reader: _Reader, number: int, match: re.Match) -> None:
    step = int(match["step"])
    log = reader.current
    last = log.epochs[-1]["epoch"] if log is not None and log.epochs else None
    if log is None or log.format != TENSORFLOW_LOOP or step == 1 or (last is not None and step <= last):
        log = reader.start(TENSORFLOW_LOOP, number)
    record = {"epoch": step, "loss": to_number(match["loss"]), "val_loss": to_number(match["val_loss"])}
    if match["acc"] is not None:  # the form without accuracy gives loss only
        record.update(accuracy=to_number(match["acc"]), val_accuracy=to_number(match["val_acc"]))
    record.update(elapsed_s=float(match["sec"]), _line=number)
    log.epochs.append(record)

