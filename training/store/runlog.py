"""What a run's log says so far: its start, latest progress, epochs and end.

A `RunLog` follows `metrics.jsonl` (and `system.jsonl`) through `LogReader`s,
so calling `update()` on every dashboard refresh costs only the new bytes.
"""

from __future__ import annotations

from pathlib import Path

from training.logreader import LogReader

METRICS_FILE = "metrics.jsonl"
SYSTEM_FILE = "system.jsonl"


class RunLog:
    def __init__(self, run_dir: Path | str):
        run_dir = Path(run_dir)
        self._metrics = LogReader(run_dir / METRICS_FILE)
        self._system = LogReader(run_dir / SYSTEM_FILE)
        self._clear()
        self.system: list[dict] = []

    def _clear(self) -> None:
        self.start: dict | None = None
        self.progress: dict | None = None  # latest within-epoch record
        self.epochs: list[dict] = []
        self.end: dict | None = None

    @property
    def corrupt_lines(self) -> int:
        return self._metrics.corrupt_lines

    def update(self) -> bool:
        """Take in whatever was appended since the last call; True if anything was."""
        changed = False
        result = self._metrics.read()
        if result.reset:
            self._clear()
            changed = True
        for record in result.records:
            self._take(record)
            changed = True
        system = self._system.read()
        if system.reset:
            self.system = []
        self.system.extend(r for r in system.records if r.get("type") == "system")
        return changed or bool(system.records) or system.reset

    def _take(self, record: dict) -> None:
        kind = record.get("type")
        if kind == "start":
            self.start = record
        elif kind == "progress":
            self.progress = record
        elif kind == "epoch":
            self.epochs.append(record)
            self.progress = None  # the epoch it described is complete
        elif kind == "end":
            self.end = record

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

