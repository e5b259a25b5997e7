"""How long one poll takes when one new record lands on a 100,000-record log.

Goal (issue 3): under 5 ms, because a poll reads only the new bytes.
Prints the median and worst of 200 polls, plus a full read for contrast.
Run: .venv/bin/python bench/reader_bench.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.store.logreader import LogReader  # noqa: E402
from training.store.logwriter import LogWriter  # noqa: E402

RECORDS = 100_000
POLLS = 200


def epoch_record(n: int) -> dict:
    return {"type": "epoch", "epoch": n, "loss": 0.01, "accuracy": 0.99, "val_loss": 0.02,
            "val_accuracy": 0.99, "train_s": 9.1, "eval_s": 0.4, "epoch_time_s": 9.5,
            "samples": 60000, "samples_per_s": 6593.4, "elapsed_s": 9.5 * n}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metrics.jsonl"
        with LogWriter(path) as writer:
            for n in range(RECORDS):
                writer.write(epoch_record(n))
        size_mb = path.stat().st_size / 2**20
        reader = LogReader(path)
        started = time.perf_counter()
        assert len(reader.read().records) == RECORDS
        full_ms = (time.perf_counter() - started) * 1000
        timings = []
        with LogWriter(path) as writer:
            for n in range(POLLS):
                writer.write(epoch_record(RECORDS + n))
                started = time.perf_counter()
                got = reader.read().records
                timings.append((time.perf_counter() - started) * 1000)
                assert len(got) == 1
    print(f"log: {RECORDS:,} records, {size_mb:.1f} MiB; first full read {full_ms:.0f} ms")
    print(f"one new record, {POLLS} polls: median {statistics.median(timings):.3f} ms, "
          f"max {max(timings):.3f} ms (goal < 5 ms)")


if __name__ == "__main__":
    main()
