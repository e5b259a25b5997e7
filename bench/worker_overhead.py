"""Does logging cost the training anything? Worker vs a plain Keras script.

Runs, in one job and interleaved (A B C A B C ...) so that machine drift hits
all three alike:
  A  bench/plain_keras.py           plain model.fit, no logging
  B  the worker, --no-system-metrics  metrics log, progress records, TensorBoard
  C  the worker with the sampler      B plus one system sample a second
each on the CPU, fit engine, full MNIST, 3 epochs. Prints the steady-state
epoch time (median of epochs 2..N) of each and the ratios B/A (goal <= 1.02)
and C/B (the sampler's cost, goal <= 1.01).
Run: .venv/bin/python bench/worker_overhead.py [--epochs 3] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def steady(times: list[float]) -> float:
    return statistics.median(times[1:])


def run_script(epochs: int) -> list[float]:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "plain_keras.py"), str(epochs)],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [json.loads(line)["epoch_time_s"] for line in out.splitlines() if line.startswith("{")]


def run_worker(epochs: int, sampler: bool) -> list[float]:
    with tempfile.TemporaryDirectory() as runs:
        args = [sys.executable, "-m", "training", "run", "--epochs", str(epochs), "--runs-dir", runs]
        if not sampler:
            args.append("--no-system-metrics")
        subprocess.run(args, cwd=ROOT, capture_output=True, check=True)
        [log] = Path(runs).glob("*/metrics.jsonl")
        records = [json.loads(line) for line in log.read_text().splitlines()]
    return [r["epoch_time_s"] for r in records if r["type"] == "epoch"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"script": [], "worker": [], "worker+sampler": []}
    for repeat in range(args.repeats):
        for name, job in (("script", lambda: run_script(args.epochs)),
                          ("worker", lambda: run_worker(args.epochs, sampler=False)),
                          ("worker+sampler", lambda: run_worker(args.epochs, sampler=True))):
            times = job()
            results[name].append(steady(times))
            print(f"repeat {repeat + 1} {name:15} epochs {[round(t, 2) for t in times]} "
                  f"steady {steady(times):.3f} s", flush=True)
    medians = {name: statistics.median(values) for name, values in results.items()}
    for name, value in medians.items():
        print(f"{name:15} steady-state epoch {value:.3f} s (median of {args.repeats})")
    print(f"worker / script           {medians['worker'] / medians['script']:.3f}  (goal <= 1.02)")
    print(f"worker+sampler / worker   {medians['worker+sampler'] / medians['worker']:.3f}  (goal <= 1.01)")


if __name__ == "__main__":
    main()
