"""CPU utilisation of each backend against batch size: achieved FLOP/s over the measured peak.

    .venv/bin/python bench/utilisation.py [--backends tensorflow,jax,torch]
        [--batch-sizes 64,128,256,512] [--repeats 2] [--runs-dir DIR]

First `python -m training peak --json` per backend (the measured peak, written to the
peak cache the workers then read), then one `python -m training sweep` over the
backends and batch sizes, each repeated (interleaved, one run at a time), on a
6,000/1,000-image subset for 3 epochs. Prints the peaks and one row per cell: median
training images/s, achieved training GFLOP/s and utilisation with their min-max, and
the best batch size of each backend (by whole-epoch utilisation, which does not depend
on where the train/eval split falls). `--table-of GROUP` prints the table of a sweep
already run. Runs go to a fresh folder under /tmp unless
--runs-dir is given. The numbers for docs/benchmarks.md come from here.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.cli.analysis import compare_groups  # noqa: E402
from training.store import ACTIVE_STATES, RunStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--batch-sizes", default="64,128,256,512")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit-train", type=int, default=6000)
    parser.add_argument("--limit-test", type=int, default=1000)
    parser.add_argument("--runs-dir", default=None)
    parser.add_argument("--table-of", metavar="GROUP", help="only print the table of this group, "
                        "already run in --runs-dir")
    args = parser.parse_args()
    runs_dir = Path(args.runs_dir or tempfile.mkdtemp(prefix="utilisation-")) / "runs"
    if args.table_of:
        table(RunStore(runs_dir), args.table_of)
        return
    print("| backend | measured peak GFLOP/s | matrix | probe s |\n|---|---|---|---|")
    for backend in args.backends.split(","):
        started = time.monotonic()
        peak = json.loads(subprocess.run([sys.executable, "-m", "training", "peak", "--backend", backend,
                                          "--json", "--runs-dir", str(runs_dir)], cwd=ROOT, check=True,
                                         capture_output=True, text=True).stdout)
        print(f"| {backend} | {peak['flops_per_s'] / 1e9:,.1f} | {peak['n']}² {peak['dtype']} | "
              f"{peak['seconds']} (command {time.monotonic() - started:.1f}) |", flush=True)
    command = [sys.executable, "-m", "training", "sweep", "--device", "cpu", "--backend", args.backends,
               "--batch-size", args.batch_sizes, "--repeats", str(args.repeats), "--epochs", str(args.epochs),
               "--limit-train", str(args.limit_train), "--limit-test", str(args.limit_test), "--detach",
               "--runs-dir", str(runs_dir)]
    started = time.monotonic()
    queued = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    *run_ids, group = queued.stdout.split()
    store = RunStore(runs_dir)
    while any(store.open(i).status() in ACTIVE_STATES for i in run_ids):
        time.sleep(2)
    failed = [i for i in run_ids if store.open(i).status() != "finished"]
    if failed:
        sys.exit(f"runs did not finish: {failed}")
    wall = time.monotonic() - started
    print(f"\nsweep {group}: {len(run_ids)} runs in {wall:.0f} s wall, runs folder {runs_dir}")
    table(store, group)


def cell(entry: dict, key: str, spec: str, scale: float = 1.0) -> str:
    """'median (min–max)' of one measure of a cell."""
    values = entry[key]
    if values["median"] is None:
        return "—"
    return (f"{values['median'] / scale:{spec}} "
            f"({values['min'] / scale:{spec}}–{values['max'] / scale:{spec}})")


def table(store: RunStore, group: str) -> None:
    """One row per cell: images/s, achieved GFLOP/s and utilisation, training and whole epoch."""
    result = compare_groups(store, [group], target=0.97)
    print("| backend | batch | n | training images/s | epoch images/s | training GFLOP/s | "
          "epoch GFLOP/s | peak GFLOP/s | utilisation, training | utilisation, whole epoch |\n"
          "|---|---|---|---|---|---|---|---|---|---|")
    best: dict[str, tuple[float, int]] = {}
    for entry in result["groups"]:
        print(f"| {entry['backend']} | {entry['batch_size']} | {entry['n']} | "
              f"{cell(entry, 'train_images_per_s', ',.0f')} | {cell(entry, 'epoch_images_per_s', ',.0f')} | "
              f"{cell(entry, 'achieved_train_flops_per_s', ',.1f', 1e9)} | "
              f"{cell(entry, 'achieved_epoch_flops_per_s', ',.1f', 1e9)} | "
              f"{cell(entry, 'peak_flops_per_s', ',.1f', 1e9)} | "
              f"{cell(entry, 'utilisation', '.1%')} | {cell(entry, 'epoch_utilisation', '.1%')} |")
        used = entry["epoch_utilisation"]["median"]
        if used is not None and used > best.get(entry["backend"], (0.0, 0))[0]:
            best[entry["backend"]] = (used, entry["batch_size"])
    for backend, (used, batch) in best.items():
        print(f"best batch size for {backend} (whole-epoch utilisation): {batch} ({used:.1%})")


if __name__ == "__main__":
    main()
