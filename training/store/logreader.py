"""Following a JSON-lines log that another process appends to.

Modelled on TensorBoard's event-file loader: one call returns every new
complete record exactly once. A truncated last line means "not yet" and is
left for the next call; a corrupt line is skipped and counted; a file that is
replaced or shrinks is read again from the start (and the caller is told, so
it can drop what it had). One poll costs in proportion to the new bytes.
The file is opened only if it is a plain file (never through a link, never a
FIFO or a folder); anything else reads as empty, and `problem` says what it is.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from training.store.layout import NotAPlainFile, open_plain

log = logging.getLogger(__name__)


@dataclass
class ReadResult:
    records: list[dict] = field(default_factory=list)
    reset: bool = False  # the file was replaced or shrank: drop earlier records


class LogReader:
    """Incremental reader of one file; keeps a byte offset between calls."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.offset = 0
        self.corrupt_lines = 0
        self.problem: str | None = None  # the path is a link, a folder, a FIFO...: nothing is read
        self._file_id: tuple[int, int] | None = None

    def _restart(self) -> None:
        self.offset = 0
        self.corrupt_lines = 0

    def read(self) -> ReadResult:
        result = ReadResult()
        try:
            handle = open_plain(self.path)
            self.problem = None
        except NotAPlainFile as error:
            if self.problem is None:
                log.debug("%s not read: %s", self.path, error.strerror)
            self.problem = f"{self.path.name} {error.strerror}"
            return result
        except FileNotFoundError:
            if self._file_id is not None:  # it existed and was deleted
                self._file_id = None
                self._restart()
                result.reset = True
            return result
        with handle:
            stat = os.fstat(handle.fileno())
            file_id = (stat.st_dev, stat.st_ino)
            if self._file_id is not None and (file_id != self._file_id or stat.st_size < self.offset):
                self._restart()
                result.reset = True
            self._file_id = file_id
            if stat.st_size == self.offset:
                return result
            handle.seek(self.offset)
            data = handle.read(stat.st_size - self.offset)
        end = data.rfind(b"\n")
        if end < 0:
            return result  # only a partial line so far
        self.offset += end + 1
        for line in data[:end].split(b"\n"):
            record = self._parse(line)
            if record is not None:
                result.records.append(record)
        return result

    def _parse(self, line: bytes) -> dict | None:
        line = line.strip()
        if not line:
            return None
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; a 10,000-deep nest
            self.corrupt_lines += 1
            return None
        if not isinstance(record, dict):
            self.corrupt_lines += 1
            return None
        return record

