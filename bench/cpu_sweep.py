"""A CPU sweep with repeats: steady-state epoch seconds and samples/s with their spread.

    .venv/bin/python bench/cpu_sweep.py [--batch-sizes 32,128,512] [--repeats 3]
        [--report docs/report-cpu-sweep.html]

Queues `python -m training sweep` over the batch sizes, each repeated (interleaved,
one run at a time), on a 6,000/1,000-image subset for 3 epochs, waits for every
run, prints one table row per batch size (median, min-max, olympic mean), and
writes the same runs' offline HTML report. Runs go to a fresh folder under /tmp
unless --runs-dir is given.
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--batch-sizes", default="32,128,512")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit-train", type=int, default=6000)
    parser.add_argument("--limit-test", type=int, default=1000)
    parser.add_argument("--runs-dir", default=None)
    parser.add_argument("--report", default=str(ROOT / "docs" / "report-cpu-sweep.html"))
    args = parser.parse_args()
    runs_dir = Path(args.runs_dir or tempfile.mkdtemp(prefix="cpu-sweep-")) / "runs"
    command = [sys.executable, "-m", "training", "sweep", "--device", "cpu", "--batch-size", args.batch_sizes,
               "--repeats", str(args.repeats), "--epochs", str(args.epochs), "--limit-train",
               str(args.limit_train), "--limit-test", str(args.limit_test), "--runs-dir", str(runs_dir)]
    started = time.monotonic()
    queued = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    *run_ids, group = queued.stdout.split()
    print(queued.stderr.strip(), file=sys.stderr)
    store = RunStore(runs_dir)
    while any(store.open(i).status() in ACTIVE_STATES for i in run_ids):
        time.sleep(2)
    wall = time.monotonic() - started
    failed = [i for i in run_ids if store.open(i).status() != "finished"]
    if failed:
        sys.exit(f"runs did not finish: {failed}")
    result = compare_groups(store, [group], target=0.97)
    print(f"sweep {group}: {len(run_ids)} runs in {wall:.0f} s wall, runs folder {runs_dir}")
    print("| batch | n | steady epoch s: median (min-max) | olympic mean | samples/s: median (min-max) "
          "| cores busy (median) | time to 97%: median |")
    print("|---|---|---|---|---|---|---|")
    for entry in result["groups"]:
        epoch, rate = entry["steady_epoch_s"], entry["steady_samples_per_s"]
        ttt = entry["time_to_target_s"]["median"]
        print(f"| {entry['batch_size']} | {entry['n']} | {epoch['median']:.3f} ({epoch['min']:.3f}–"
              f"{epoch['max']:.3f}) | {epoch['olympic_mean']:.3f} | {rate['median']:,.0f} "
              f"({rate['min']:,.0f}–{rate['max']:,.0f}) | {entry['cores_busy']['median']:.2f} | "
              f"{'not reached' if ttt is None else f'{ttt:.1f} s'} ({entry['not_reached']} not reached) |")
    for speed in result["speedups"]:
        s = speed["images_per_s"]
        batch = store.open(speed["b"][0]).meta["config"]["batch_size"]
        print(f"batch {batch} over batch {result['groups'][0]['batch_size']}: "
              f"{s['median']:.2f}x {s['basis']} images/s (range {s['low']:.2f}-{s['high']:.2f}x)")
    report = subprocess.run([sys.executable, "-m", "training", "report", group, "-o", args.report,
                             "--target", "0.97", "--title", "CPU batch-size sweep (2-vCPU shared VM)",
                             "--runs-dir", str(runs_dir)],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    print(f"report: {report.stdout.strip()} ({Path(args.report).stat().st_size / 2**20:.2f} MiB)")


if __name__ == "__main__":
    main()
