"""Where the time goes on this machine: the epoch split of real runs, per backend.

Trains, one after the other, on the CPU at batch 128 on the first 6,000 images (1,000 test
images), N epochs each: TensorFlow `fit`, the TensorFlow loop, torch `fit` and JAX `fit`
(`--runs` picks). Prints each run's epochs and the steady-state median of each part of the
split (docs/log-format.md, "Where the time goes"), as a Markdown table.
Run: .venv/bin/python bench/time_split.py [--epochs 4] [--runs tf-fit,torch-fit]
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
RUNS = {"tf-fit": ("tensorflow", "fit"), "tf-loop": ("tensorflow", "loop"),
        "torch-fit": ("torch", "fit"), "jax-fit": ("jax", "fit")}
PARTS = ("steps_s", "first_step_wait_s", "eval_s", "outside_s")


def train(backend: str, engine: str, epochs: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as runs:
        subprocess.run([sys.executable, "-m", "training", "run", "--backend", backend, "--engine", engine,
                        "--epochs", str(epochs), "--batch-size", "128", "--limit-train", "6000",
                        "--limit-test", "1000", "--runs-dir", runs],
                       cwd=ROOT, capture_output=True, check=True)
        [log] = Path(runs).glob("*/metrics.jsonl")
        return [r for r in map(json.loads, log.read_text().splitlines()) if r["type"] == "epoch"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--runs", default=",".join(RUNS))
    args = parser.parse_args()
    rows = []
    for name in args.runs.split(","):
        epochs = train(*RUNS[name], args.epochs)
        for e in epochs:
            values = "  ".join(f"{k} {e[k]:.3f}" for k in ("epoch_time_s", *PARTS))
            print(f"{name:9} epoch {e['epoch']}: {values}",
                  flush=True)
        steady = epochs[1:]
        medians = {k: statistics.median(e[k] for e in steady) for k in ("epoch_time_s", *PARTS)}
        rows.append((name, medians, epochs[0]))
    print("\n| run | steady epoch | steps | first-step wait | evaluation | outside | epoch 1: steps, wait |")
    print("|---|---|---|---|---|---|---|")
    for name, m, first in rows:
        share = {k: m[k] / m["epoch_time_s"] for k in PARTS}
        print(f"| {name} | {m['epoch_time_s']:.3f} s | " + " | ".join(
            f"{m[k]:.3f} s ({share[k]:.1%})" for k in PARTS)
            + f" | {first['steps_s']:.2f} s / {first['first_step_wait_s']:.2f} s |")


if __name__ == "__main__":
    main()
