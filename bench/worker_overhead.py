"""Does logging cost the training anything? Worker vs a plain Keras script.

Runs, in one job and interleaved (A B C A B C ...) so that machine drift hits
all three alike:
  A  bench/plain_keras.py             plain model.fit, no logging
  B  the worker, --no-system-metrics  metrics log, progress records, TensorBoard
  C  the worker with the sampler      B plus one system sample a second
each on the CPU, fit engine, full MNIST. For each it prints the steady-state
(median of epochs 2..N) wall seconds and CPU seconds per epoch, then the
ratios B/A (goal <= 1.02) and C/B (goal <= 1.01) for both.

Wall time is what users see, but on a shared VM it swings by tens of percent
with other tenants' load; process CPU seconds (all threads, `time.process_time`)
are far steadier and still include every cycle the logging and the sampler spend.
Run: .venv/bin/python bench/worker_overhead.py [--epochs 3] [--repeats 3]
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
KINDS = ("script", "worker", "worker+sampler")


def steady(epochs: list[dict], key: str) -> float:
    return statistics.median(e[key] for e in epochs[1:])


def run_script(epochs: int) -> list[dict]:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "plain_keras.py"), str(epochs)],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def run_worker(epochs: int, sampler: bool) -> list[dict]:
    with tempfile.TemporaryDirectory() as runs:
        args = [sys.executable, "-m", "training", "run", "--epochs", str(epochs), "--runs-dir", runs]
        if not sampler:
            args.append("--no-system-metrics")
        subprocess.run(args, cwd=ROOT, capture_output=True, check=True)
        [log] = Path(runs).glob("*/metrics.jsonl")
        records = [json.loads(line) for line in log.read_text().splitlines()]
    return [r for r in records if r["type"] == "epoch"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    jobs = {"script": lambda: run_script(args.epochs),
            "worker": lambda: run_worker(args.epochs, sampler=False),
            "worker+sampler": lambda: run_worker(args.epochs, sampler=True)}
    wall: dict[str, list[float]] = {kind: [] for kind in KINDS}
    cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for repeat in range(args.repeats):
        for kind in KINDS:
            epochs = jobs[kind]()
            wall[kind].append(steady(epochs, "epoch_time_s"))
            cpu[kind].append(steady(epochs, "cpu_s"))
            print(f"repeat {repeat + 1} {kind:15} wall {[round(e['epoch_time_s'], 2) for e in epochs]} "
                  f"cpu {[round(e['cpu_s'], 2) for e in epochs]}", flush=True)
    for label, table in (("wall", wall), ("cpu", cpu)):
        medians = {kind: statistics.median(values) for kind, values in table.items()}
        print(f"{label}: " + ", ".join(f"{kind} {value:.3f} s" for kind, value in medians.items())
              + f" (steady state, median of {args.repeats})")
        print(f"{label}: worker / script = {medians['worker'] / medians['script']:.3f} (goal <= 1.02), "
              f"worker+sampler / worker = {medians['worker+sampler'] / medians['worker']:.3f} (goal <= 1.01)")


if __name__ == "__main__":
    main()
