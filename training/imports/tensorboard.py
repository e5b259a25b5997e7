"""TensorBoard event files: the scalars of a training logged elsewhere, as epoch records.

Read with the `tensorboard` package's own record reader (its pure-Python one in
`tensorboard.compat.tensorflow_stub`, CRC-checked, so TensorFlow is never imported
here) and its `Event` protos. What is understood:

  * the Keras `TensorBoard` callback's layout: a log root with `train/` and
    `validation/` folders holding `epoch_loss`, `epoch_accuracy` (Keras 2: `epoch_acc`)
    at step = epoch index from 0;
  * PyTorch `SummaryWriter` and `tf.summary` scalars with the common spellings, matched
    case-insensitively: `loss`, `train/loss`, `Loss/train`, `val/loss`, `validation/loss`,
    `Loss/val`, `val_loss`, and the same with accuracy or acc. Steps are epochs (from 1, or
    from 0 when a step 0 is logged), unless the log has an `epoch` scalar: then each step
    belongs to the epoch that scalar last said, and an epoch keeps its last value;
  * `--map TAG=field` for any other scalar tag (TAG as the import's note spells it).

Time comes from the events' wall times: an epoch ends at the latest wall time of its
scalars, elapsed seconds count from the log's first event (its file-version record,
which TensorFlow writes in whole seconds), so an imported run compares in wall-clock
time. One run per log root: a folder of event files, or the folder above `train/`
and `validation/`. A damaged file (truncated, or a record failing its checksum)
gives the records before the damage, and a note saying so.
"""

from __future__ import annotations

import bisect
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from training.config import ConfigError
from training.imports.parsers import METRIC_KEYS, ImportFormatError, ParsedLog, check_values, has_values

TENSORBOARD = "tensorboard"
EVENT_MARK = "tfevents"  # events.out.tfevents.<time>.<host>...
MAX_EVENT_FILES = 1000
MAX_EVENTS_BYTES = 100 * 2**20  # all the event files of one import together
SPLIT_FOLDERS = {"train": "train", "validation": "val", "val": "val", "eval": "val"}
_METRIC_WORDS = {"loss": "loss", "accuracy": "accuracy", "acc": "accuracy"}
_SPLIT_WORDS = {"train": "", "training": "", "val": "val_", "validation": "val_", "valid": "val_",
                "eval": "val_", "test": "val_"}
_QUALIFIERS = {"epoch", "sparse", "categorical"}  # words that do not change what a tag means
INSTALL_HINT = ("reading TensorBoard event files needs the tensorboard package: "
                "pip install tensorboard (it comes with TensorFlow)")


class TensorBoardMissing(ImportFormatError):
    """The tensorboard package is not installed."""


def _reader():
    """The tensorboard package's pieces, imported only when an event file is read."""
    try:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow
        from tensorboard.util import tensor_util
    except ImportError as error:
        raise TensorBoardMissing(f"{INSTALL_HINT} ({error})") from error
    return event_pb2, errors, pywrap_tensorflow, tensor_util


def field_of(tag: str) -> str | None:
    """The epoch field a scalar tag means ("Loss/val" -> "val_loss"), "epoch", or None."""
    words = [w for w in re.split(r"[^a-z0-9]+", tag.lower()) if w]
    if words and all(w == "epoch" for w in words):
        return "epoch"
    metrics = {_METRIC_WORDS[w] for w in words if w in _METRIC_WORDS}
    splits = {_SPLIT_WORDS[w] for w in words if w in _SPLIT_WORDS}
    others = [w for w in words if w not in _METRIC_WORDS and w not in _SPLIT_WORDS and w not in _QUALIFIERS]
    if len(metrics) != 1 or len(splits) > 1 or others:
        return None
    return (splits.pop() if splits else "") + metrics.pop()


def looks_like_event_file(path: Path) -> bool:
    """Named like one, or its first record's header passes TFRecord's checksum."""
    if EVENT_MARK in path.name:
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return False
    return is_event_data(head)


def is_event_data(head: bytes) -> bool:
    """The first 12 bytes of a TFRecord file: a length and its masked CRC-32C."""
    if len(head) < 12:
        return False
    try:
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
    except ImportError:
        return False
    return struct.unpack("<I", head[8:12])[0] == masked_crc32c(head[:8])


@dataclass
class _Root:
    """The scalars of one log root, read from its event files."""
    folder: Path
    scalars: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)  # tag -> (step, wall, v)
    first_wall: float | None = None
    keras_layout: bool = False
    notes: list[str] = field(default_factory=list)
    last_wall: float | None = None
    files: list[str] = field(default_factory=list)  # the event files (as notes name them) read into it
    # Its first event is no training's start: a file made on first use (add_scalars), or a
    # fit that began again inside a file. Epoch 1's time and elapsed seconds are then unknown.
    unknown_start: bool = False


def event_files(path: Path) -> list[Path]:
    """The event files at `path` (a file, or a folder searched to any depth), capped."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob(f"*{EVENT_MARK}*") if p.is_file())
    if len(files) > MAX_EVENT_FILES:
        raise ImportFormatError(f"{path} holds {len(files):,} event files; at most {MAX_EVENT_FILES:,} "
                                "are read in one import (import its log folders one by one)")
    total = sum(p.stat().st_size for p in files)
    if total > MAX_EVENTS_BYTES:
        raise ImportFormatError(f"the event files under {path} hold {total / 2**20:,.0f} MiB; at most "
                                f"{MAX_EVENTS_BYTES // 2**20} MiB are read in one import")
    return files


def _root_and_prefix(file: Path, base: Path) -> tuple[Path, str]:
    """The log root an event file belongs to, and the prefix its tags get ("validation/")."""
    parent = file.parent
    if parent.name.lower() in SPLIT_FOLDERS:
        return (parent.parent if parent != base else parent), f"{parent.name}/"
    return parent, ""


def _read_file(file: Path, prefix: str, folder: Path, label: str) -> list[_Root]:
    """The file's scalars, one `_Root` per fit: a step counter that goes back starts another."""
    event_pb2, errors, pywrap, tensor_util = _reader()
    segments = [_Root(folder, files=[label])]
    try:
        reader = pywrap.PyRecordReader_New(str(file))
    except errors.OpError as error:
        segments[0].notes.append(f"{label}: could not be opened ({error.message})")
        return segments
    count = 0
    try:
        while True:
            try:
                reader.GetNext()
                event = event_pb2.Event.FromString(reader.record())
            except errors.OutOfRangeError:
                break
            except errors.DataLossError as error:
                damage = "truncated" if "truncated" in str(error.message) else "fails its checksum"
                segments[-1].notes.append(f"{label} is damaged after {count} records (a record {damage}); "
                                          "imported what came before the damage")
                break
            except Exception as error:  # protobuf's DecodeError: not an Event
                segments[-1].notes.append(f"{label} is damaged after {count} records (not an event: "
                                          f"{type(error).__name__}); imported what came before the damage")
                break
            count += 1
            values = _scalars_of(event, prefix, tensor_util)
            current = segments[-1]
            if any(tag in current.scalars and event.step < current.scalars[tag][-1][0] for tag, _ in values):
                current = _Root(folder, files=[f"{label} (from record {count})"], unknown_start=True)
                segments.append(current)
            _take_event(event, values, prefix, current)
    finally:
        handle = getattr(reader, "file_handle", None)
        if handle is not None:
            handle.close()
    return segments


def _scalars_of(event, prefix: str, tensor_util) -> list[tuple[str, float]]:
    """The event's scalar values as (tag with its split prefix, number)."""
    if not event.HasField("summary"):
        return []
    found = []
    for value in event.summary.value:
        kind = value.WhichOneof("value")
        if kind == "simple_value":
            number = float(value.simple_value)
        elif kind == "tensor":
            try:
                array = tensor_util.make_ndarray(value.tensor)
            except Exception:  # a dtype the stub does not know: not a scalar we can use
                continue
            if array.ndim != 0 or array.dtype.kind not in "fiub":
                continue  # text, images, histograms
            number = float(array)
        else:
            continue
        found.append((prefix + value.tag, number))
    return found


def _take_event(event, values: list[tuple[str, float]], prefix: str, root: _Root) -> None:
    if event.wall_time and (root.first_wall is None or event.wall_time < root.first_wall):
        root.first_wall = event.wall_time
    if event.wall_time:
        root.last_wall = max(root.last_wall or event.wall_time, event.wall_time)
    for tag, number in values:
        root.scalars.setdefault(tag, []).append((int(event.step), float(event.wall_time), number))
        if prefix and tag[len(prefix):].startswith("epoch_"):
            root.keras_layout = True


def _add_scalars_layout(segments: list[_Root], folder: Path, base: Path) -> bool:
    """`SummaryWriter.add_scalars('loss', {'training': ...})` writes `loss_training/` with tag `loss`:
    read it as tag `loss/training` of the folder above. True when the segments were so renamed."""
    tags = {tag for segment in segments for tag in segment.scalars}
    if folder == base or len(tags) != 1:
        return False
    [tag] = tags
    stem = tag.replace("/", "_") + "_"
    if not folder.name.startswith(stem) or folder.name == stem:
        return False
    key = folder.name[len(stem):]
    for segment in segments:
        segment.scalars = {f"{tag}/{key}": values for tag, values in segment.scalars.items()}
        segment.folder = folder.parent
        segment.unknown_start = True  # add_scalars makes this file at its first value
    return True


def _fits(streams: list[_Root]) -> list[_Root]:
    """Streams of one log root grouped into fits: those that ran at the same time and share no
    tag (a Keras fit's train/ and validation/ files) are one; the others each their own."""
    groups: list[list[_Root]] = []
    for stream in sorted(streams, key=lambda s: (s.first_wall or 0, s.files)):
        for group in groups:
            start = min(s.first_wall or 0 for s in group)
            end = max(s.last_wall or 0 for s in group)
            shared = any(tag in s.scalars for s in group for tag in stream.scalars)
            if not shared and (stream.first_wall or 0) <= end and (stream.last_wall or 0) >= start:
                group.append(stream)
                break
        else:
            groups.append([stream])
    merged = []
    for group in groups:
        root = _Root(group[0].folder, first_wall=min(s.first_wall or 0 for s in group) or None,
                     keras_layout=any(s.keras_layout for s in group),
                     unknown_start=all(s.unknown_start for s in group),
                     files=[f for s in group for f in s.files])
        for stream in group:
            root.scalars.update(stream.scalars)
            root.notes.extend(stream.notes)
        merged.append(root)
    return merged


def _assign(root: _Root, maps: dict[str, str]) -> tuple[dict[str, str], str | None, list[str]]:
    """tag -> field for every used tag, the epoch tag, and the tags skipped (with why)."""
    chosen: dict[str, str] = {}
    epoch_tag, skipped = None, []
    taken: dict[str, str] = {}
    for tag in sorted(root.scalars, key=lambda t: (t.lower() not in maps, t.lower())):
        wanted = maps.get(tag.lower()) or field_of(tag)
        if wanted == "epoch" and epoch_tag is None:
            epoch_tag = tag
        elif wanted in METRIC_KEYS and wanted not in taken:
            chosen[tag], taken[wanted] = wanted, tag
        elif wanted in METRIC_KEYS:
            skipped.append(f"{tag} (also means {wanted}, taken from {taken[wanted]})")
        else:
            skipped.append(tag)
    return chosen, epoch_tag, skipped


def _epoch_of(root: _Root, chosen: dict[str, str], epoch_tag: str | None):
    """A function from step to epoch number (from 1)."""
    if epoch_tag:
        marks = sorted((step, value) for step, _, value in root.scalars[epoch_tag])
        offset = 1 if min(v for _, v in marks) == 0 else 0
        steps = [s for s, _ in marks]

        def from_tag(step: int) -> int:
            index = bisect.bisect_right(steps, step) - 1
            return int(round(marks[max(index, 0)][1])) + offset
        return from_tag
    steps = [step for tag in chosen for step, _, _ in root.scalars[tag]]
    offset = 1 if steps and min(steps) == 0 else 0
    return lambda step: step + offset


def _to_log(root: _Root, name: str, maps: dict[str, str]) -> ParsedLog | None:
    chosen, epoch_tag, skipped = _assign(root, maps)
    if not chosen:
        return None
    epoch_of = _epoch_of(root, chosen, epoch_tag)
    by_epoch: dict[int, dict] = {}
    for tag, key in chosen.items():
        for step, wall, value in sorted(root.scalars[tag], key=lambda item: item[1]):
            record = by_epoch.setdefault(epoch_of(step), {"time": wall})
            record[key] = value if value == value else None  # NaN is written as null
            record["time"] = max(record["time"], wall)
    start = root.first_wall or min(r["time"] for r in by_epoch.values())
    epochs, previous = [], start
    for number in sorted(by_epoch):
        record = by_epoch[number]
        epochs.append({"epoch": number, **{k: record.get(k) for k in METRIC_KEYS},
                       "epoch_time_s": round(record["time"] - previous, 4),
                       "elapsed_s": round(record["time"] - start, 4), "time": record["time"]})
        previous = record["time"]
    for record in epochs:
        record["type"] = "epoch"
    notes = list(root.notes)
    if epochs and (root.unknown_start or epochs[0]["epoch_time_s"] <= 0):
        # The log's first event is no start of training (a writer made on first use, as
        # add_scalars does; a fit begun again in the same file; epoch 1's own value): when
        # training began is not in it, so neither are epoch 1's time nor elapsed seconds.
        epochs[0]["epoch_time_s"] = None
        for record in epochs:
            record["elapsed_s"] = None
        notes.append("the log does not say when this training began (its first event is no start): "
                     "epoch 1's time and the elapsed seconds are unknown")
    if skipped:
        notes.append(f"skipped scalar tags it does not recognise: {', '.join(skipped)} "
                     "(import again with --map TAG=field to use one; fields: " + ", ".join(METRIC_KEYS) + ")")
    log = ParsedLog(name=name, format=TENSORBOARD, epochs=epochs)
    log.engine = "fit" if root.keras_layout else "loop"
    log.started = start
    log.notes = notes
    check_values(log)  # an accuracy outside 0-1 is refused here as in any log
    return log


def parse_maps(items: list[str] | None) -> dict[str, str]:
    """["TAG=field", ...] -> {tag (lower case): field}; a bad one is a ConfigError."""
    maps = {}
    for item in items or []:
        tag, sep, wanted = item.rpartition("=")
        if not sep or not tag.strip() or wanted.strip() not in METRIC_KEYS:
            raise ConfigError("map", f"expected TAG=field with field one of {', '.join(METRIC_KEYS)}, "
                                     f"got {item!r}")
        maps[tag.strip().lower()] = wanted.strip()
    return maps


def parse_events(path: Path | str, maps: dict[str, str] | None = None, label: str | None = None,
                 name: str | None = None) -> list[ParsedLog]:
    """One ParsedLog per log root under `path` (an event file or a folder); nothing is written.

    Args:
        path: an event file, or a folder holding event files at any depth.
        maps: {tag in lower case: epoch field} for tags not recognised by their spelling.
        label: how notes name the import's top (e.g. an uploaded zip's name), else `path`.
        name: the run name when the whole import is one log root (else the folder's name).
    Raises:
        ImportFormatError: no event file, no scalars, or none that means an epoch field.
        TensorBoardMissing: the tensorboard package is not installed.
        ConfigError: a map names a tag that is not in the log.
    """
    path = Path(path)
    maps = maps or {}
    files = event_files(path)
    if not files:
        raise ImportFormatError(f"no TensorBoard event files (events.out.{EVENT_MARK}.*) under {path}")
    base = path if path.is_dir() else path.parent
    if base != path and base.name.lower() in SPLIT_FOLDERS:
        base = base.parent  # logs/train/events...: the run is logs
    streams: dict[Path, list[_Root]] = {}
    empty: list[str] = []
    for file in files:
        folder, prefix = _root_and_prefix(file, base)
        shown = (label or path.name) + ("" if file == path else f"/{file.relative_to(path)}")
        segments = _read_file(file, prefix, folder, shown)
        if not prefix and _add_scalars_layout(segments, folder, base):
            folder = segments[0].folder
        if not any(segment.scalars for segment in segments) and prefix:
            empty.append(shown)  # a Keras fit that logged nothing (or only its graph)
        streams.setdefault(folder, []).extend(segments)
    tags = sorted({tag.lower() for segments in streams.values() for s in segments for tag in s.scalars})
    if not tags:
        notes = "; ".join(note for segments in streams.values() for s in segments for note in s.notes)
        raise ImportFormatError(f"no scalars in the TensorBoard log at {label or path}; nothing imported"
                                + (f" ({notes})" if notes else ""))
    if unknown := sorted(set(maps) - set(tags)):
        raise ConfigError("map", f"no scalar tag {', '.join(unknown)} in the log; "
                                 f"its tags: {', '.join(tags)}")
    runs = [(folder, number, len(fits), fit) for folder, segments in sorted(streams.items())
            for fits in [_fits([s for s in segments if s.scalars])] for number, fit in enumerate(fits, 1)]
    logs, insane = [], []
    for folder, number, count, root in runs:
        own = str(folder.relative_to(base)) if folder != base else Path(label).stem if label else folder.name
        own = f"{own} fit {number}" if count > 1 else own
        run_name = (name if len(runs) == 1 else f"{name} – {own}") if name else own
        if count > 1:
            root.notes.append(f"fit {number} of {count} written into {folder.name}/ "
                              f"({', '.join(root.files)}); each fit is its own run")
        if (log := _to_log(root, run_name, maps)) and has_values(log):
            logs.append(log)
        elif log:
            insane.append(f"{run_name}: nothing sane left ({'; '.join(log.notes)})")
    if not logs and insane:
        raise ImportFormatError(f"the TensorBoard log at {label or path}: {insane[0]}; nothing imported")
    if logs and insane:
        logs[0].notes.extend(f"not imported: {reason}" for reason in insane)
    if logs and empty:
        logs[0].notes.append(f"{', '.join(empty)}: no scalars (a fit that logged none, or only its graph); "
                             "nothing read from it")
    if not logs:
        raise ImportFormatError(
            f"no scalar tag in the TensorBoard log at {label or path} means loss or accuracy; its tags: "
            f"{', '.join(tags)}. Map them with --map TAG=field (fields: {', '.join(METRIC_KEYS)}); "
            "nothing imported")
    return logs
