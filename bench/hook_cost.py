"""The logging's own cost, measured directly rather than as a difference of noisy runs.

End-to-end A/B timings on a shared 2-core VM vary by 10-40% from epoch to epoch
(docs/benchmarks.md), far more than the 1-2% goals. So this measures what the
worker adds per epoch of the published run (469 batches of 128, ~10 s here):
  - the per-batch hook (stop check + clock read), 469 times;
  - a progress record (metrics read + JSON line + write), ~1 per second;
  - the epoch record (its time split, JSON line + write + fsync), once;
  - one system sample (psutil CPU, RSS; no GPU here), ~1 per second.
It imports EpochClock from the worker but never calls TensorFlow.
Run: .venv/bin/python bench/hook_cost.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from training.config import make_config  # noqa: E402
from training.store.logwriter import LogWriter  # noqa: E402
from training.worker.engines import EpochClock, StopFlag  # noqa: E402

BATCHES, EPOCH_S = 469, 10.0


def per_call(fn, repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat


def main() -> None:
    config = make_config()
    metrics = {"loss": 0.0123, "accuracy": 0.9961}
    with tempfile.TemporaryDirectory() as tmp, LogWriter(Path(tmp) / "m.jsonl") as writer:
        clock = EpochClock(writer, config, StopFlag())
        clock.begin_training()
        clock.begin_epoch()
        clock.next_progress = float("inf")  # only the per-batch check, no record
        hook = per_call(lambda: clock.batch(1, 5, lambda: metrics), 200_000)

        def progress():
            clock.next_progress = 0.0
            clock.batch(1, 5, lambda: metrics)
        record = per_call(progress, 5_000)
        epoch_metrics = {**metrics, "val_loss": 0.02, "val_accuracy": 0.99}
        clock.batch_starts = clock.batch_starts[:BATCHES]  # one epoch's hook times, for its split
        epoch = per_call(lambda: clock.end_epoch(1, epoch_metrics), 200)
        me = psutil.Process(os.getpid())
        me.cpu_percent(None)

        def sample():
            writer.write({"type": "system", "process_cpu_percent": me.cpu_percent(None),
                          "system_cpu_percent": psutil.cpu_percent(None),
                          "rss_mb": me.memory_info().rss / 2**20})
        system = per_call(sample, 5_000)
    per_epoch = BATCHES * hook + EPOCH_S * record + epoch
    print(f"per-batch hook      {hook * 1e6:8.2f} us  x {BATCHES} batches")
    print(f"progress record     {record * 1e6:8.2f} us  x ~{EPOCH_S:.0f} per epoch")
    print(f"epoch record+fsync  {epoch * 1e6:8.2f} us  x 1")
    print(f"logging per epoch   {per_epoch * 1e3:8.3f} ms = {per_epoch / EPOCH_S:.4%} "
          f"of a {EPOCH_S:.0f} s epoch")
    print(f"system sample       {system * 1e6:8.2f} us  x 1 per second = {system:.4%} of one core")


if __name__ == "__main__":
    main()
