"""What a run's log says so far: its start, latest progress, epochs and end.

A `RunLog` follows `metrics.jsonl` (and, when asked, `system.jsonl`) through
`LogReader`s, so calling `update()` on every dashboard refresh costs only the
new bytes. A log written by a newer version of this tool than the reader
knows is not guessed at: `format_error` says so and no record is taken.
Every record is checked against its type's schema (records.py) as it is taken:
one with a wrong type (`"val_accuracy": "0.99"`) is skipped and counted
(`skipped`), and the debug log (`--verbose`) names the line and the field.
"""

from __future__ import annotations

import logging
from pathlib import Path

from training.store.logreader import LogReader
from training.store.logwriter import FORMAT_VERSION
from training.store.records import record_problem

log = logging.getLogger(__name__)


class NewerLogFormat(Exception):
    """The log was written by a newer version of this tool."""


def newer_format_message(version) -> str:
    return (f"written by a newer version (log format {version}; this one reads up to "
            f"{FORMAT_VERSION}); upgrade")


class RunLog:
    """The records of one run so far.

    Args:
        metrics_path: the run's metrics.jsonl.
        system_path: its system.jsonl, read only by `update(system=True)`.
    """

    def __init__(self, metrics_path: Path, system_path: Path | None = None):
        self._metrics = LogReader(metrics_path)
        self._system = LogReader(system_path) if system_path else None
        self._clear()
        self.system: list[dict] = []

    def _clear(self) -> None:
        self.start: dict | None = None
        self.progress: dict | None = None  # latest within-epoch record
        self.epochs: list[dict] = []
        self.end: dict | None = None
        self.warnings: list[dict] = []  # problems that did not stop training (a TensorBoard write)
        self.format_error: str | None = None
        self.skipped = 0  # records that broke their type's schema (records.py)

    @property
    def corrupt_lines(self) -> int:
        return self._metrics.corrupt_lines

    @property
    def problem(self) -> str | None:
        """Why metrics.jsonl cannot be read at all (it is a folder, a link...), or None."""
        return self._metrics.problem

    def _checked(self, records: list[dict], path: Path) -> list[dict]:
        """The records that keep their schema; the others counted in `skipped` and named in the debug log."""
        kept = []
        for record in records:
            if why := record_problem(record):
                self.skipped += 1
                log.debug("%s: record skipped: %s", path, why)
            else:
                kept.append(record)
        return kept

    def update(self, system: bool = False) -> bool:
        """Take in whatever was appended since the last call; True if anything was.

        `system=True` also follows system.jsonl, which only the charts need.
        """
        changed = False
        result = self._metrics.read()
        if result.reset:
            self._clear()
            changed = True
        for record in self._checked(result.records, self._metrics.path):
            if self.format_error is None:
                self._take(record)
        changed = changed or bool(result.records)
        if system and self._system:
            samples = self._system.read()
            if samples.reset:
                self.system = []
            self.system.extend(r for r in self._checked(samples.records, self._system.path)
                               if r.get("type") == "system")
            changed = changed or bool(samples.records) or samples.reset
        return changed

    def check(self) -> RunLog:
        """Raise `NewerLogFormat` if the log could not be read; else self."""
        if self.format_error:
            raise NewerLogFormat(self.format_error)
        return self

    def _take(self, record: dict) -> None:
        kind = record.get("type")
        if kind == "start":
            version = record.get("format_version", 1)  # version 1 had no such field
            if not isinstance(version, int) or version > FORMAT_VERSION:
                self._clear()
                self.format_error = newer_format_message(version)
                return
            self.start = record
        elif kind == "progress":
            self.progress = record
        elif kind == "epoch":
            self.epochs.append(record)
            self.progress = None  # the epoch it described is complete
        elif kind == "end":
            self.end = record
        elif kind == "warning":
            self.warnings.append(record)

    @property
    def epochs_done(self) -> int:
        return len(self.epochs)

    @property
    def best_val_accuracy(self) -> float | None:
        values = [e["val_accuracy"] for e in self.epochs if e.get("val_accuracy") is not None]
        return max(values) if values else None

    @property
    def elapsed_s(self) -> float | None:
        """Seconds from the start of training to the end of the last epoch."""
        if self.epochs:
            return self.epochs[-1].get("elapsed_s")
        return None
