"""What timing "where the time goes" costs, measured directly.

The split (docs/log-format.md) adds to each epoch of the published run (469 batches of
128, ~10 s here):
  - per batch: one `list.append` of the hook's `perf_counter` (the read itself was there
    already, for the progress records);
  - per epoch: `EpochClock.split` over the 469 times (a median), and one sync at the end
    of the training pass, a read of the metrics as numbers (timed here on TensorFlow's CPU
    backend: a Keras metric's `float(result())`, the loop engine's sync).
It prints each piece (best of 15 rounds: on a shared machine other tenants only add time)
and their sum as a share of a 10 s epoch. `--against COMMIT` also times the per-batch hook
of that commit's `EpochClock` (read with `git show`) against this one's, interleaved.
Run: .venv/bin/python bench/time_split_cost.py [--against ae8d1e3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.config import make_config  # noqa: E402
from training.store.logwriter import LogWriter  # noqa: E402
from training.worker.engines import EpochClock, StopFlag  # noqa: E402

BATCHES, EPOCH_S = 469, 10.0


def per_call(fn, repeat: int, rounds: int = 15) -> float:
    """Seconds per call, the best of `rounds` rounds: other tenants only ever add time."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - started) / repeat)
    return best


def metrics_read_s(repeat: int = 200) -> float:
    """One end-of-pass sync: a Keras metric read as a number, TensorFlow on the CPU."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras
    loss = keras.metrics.Mean()
    loss.update_state(0.25)
    float(loss.result())
    return per_call(lambda: float(loss.result()), repeat)


def hook_against(commit: str) -> None:
    """The per-batch hook of `commit`'s EpochClock and this one's, interleaved, best of 15 rounds."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(["git", "show", f"{commit}:training/worker/engines.py"], cwd=root,
                            capture_output=True, text=True, check=True).stdout
    metrics = {"loss": 0.0123, "accuracy": 0.9961}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "old_engines.py").write_text(source)
        spec = importlib.util.spec_from_file_location("old_engines", Path(tmp) / "old_engines.py")
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
        with LogWriter(Path(tmp) / "m.jsonl") as writer:
            clocks = {commit: old.EpochClock(writer, make_config(), old.StopFlag()),
                      "this": EpochClock(writer, make_config(), StopFlag())}
            best = dict.fromkeys(clocks, float("inf"))
            for _ in range(15):
                for name, clock in clocks.items():
                    clock.begin_training()
                    clock.begin_epoch()
                    clock.next_progress = float("inf")
                    best[name] = min(best[name], per_call(lambda c=clock: c.batch(1, 5, lambda: metrics),
                                                          BATCHES * 20, rounds=1))
    for name, seconds in best.items():
        print(f"per-batch hook, {name:>8}      {seconds * 1e6:8.3f} us")
    print(f"added per batch               {(best['this'] - best[commit]) * 1e9:8.0f} ns")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--against", help="a commit whose per-batch hook to time against this one's")
    args = parser.parse_args()
    if args.against:
        hook_against(args.against)
    config = make_config()
    metrics = {"loss": 0.0123, "accuracy": 0.9961}
    with tempfile.TemporaryDirectory() as tmp, LogWriter(Path(tmp) / "m.jsonl") as writer:
        clock = EpochClock(writer, config, StopFlag())
        clock.begin_training()
        clock.begin_epoch()
        clock.next_progress = float("inf")  # only the per-batch path, no progress record
        hook = per_call(lambda: clock.batch(1, 5, lambda: metrics), 20_000)
        starts: list[float] = []
        append = per_call(lambda: starts.append(time.perf_counter()), 20_000)
        clock.batch_starts = [i * 0.02 for i in range(BATCHES)]
        clock.epoch_t0 = -0.5
        split = per_call(lambda: clock.split(BATCHES * 0.02), 200)
    sync = metrics_read_s()
    per_epoch = BATCHES * append + split + sync
    print(f"per-batch hook, all of it      {hook * 1e6:8.3f} us  x {BATCHES} (most of it was there before)")
    print(f"  of which the new append     <={append * 1e6:7.3f} us  x {BATCHES} (append + perf_counter)")
    print(f"split at the epoch's end       {split * 1e6:8.1f} us  x 1 (median of {BATCHES} intervals)")
    print(f"end-of-pass sync (TF metric)   {sync * 1e6:8.1f} us  x 1")
    print(f"timing the split per epoch     {per_epoch * 1e3:8.3f} ms = {per_epoch / EPOCH_S:.4%} "
          f"of a {EPOCH_S:.0f} s epoch")


if __name__ == "__main__":
    main()
