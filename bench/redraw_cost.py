"""What one redraw of the Compare page costs the server and the browser, and what an idle tab costs.

No training: one run folder with a start record, and epoch records appended by this bench
every `--every` seconds (the records a worker writes, with made-up values), so the page's
work is measured without a run's own noise. One real Streamlit server (`streamlit run
app.py` from --app-dir, in its own session), one Debian Chromium tab on the Compare page
(Playwright, the system browser). Prints the CPU-seconds of the server's and the browser's
process trees (bench/proctree.py, sampled every 0.25 s) over `--idle` seconds with nothing
new, then in each window from one appended epoch to just before the next: one redraw each.

Run: .venv/bin/python bench/redraw_cost.py [--epochs 5] [--every 5] [--app-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from observer_cost import Browser, driver_of_playwright, start_server, stop_group  # noqa: E402
from proctree import Sampler, cpu_seconds, tree  # noqa: E402

from training.config import make_config  # noqa: E402
from training.store import RunStore  # noqa: E402
from training.store.layout import METRICS_FILE  # noqa: E402
from training.store.logwriter import encode  # noqa: E402

PERIOD_S = 0.25


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5, help="epoch records to append (default: 5)")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between them (default: 5)")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of nothing new first (default: 10)")
    parser.add_argument("--app-dir", type=Path, default=ROOT, help="the checkout whose app is served")
    return parser.parse_args()


def make_run(store: RunStore, epochs: int):
    config = make_config(device="cpu", batch_size=128, epochs=epochs, limit_train=4000)
    meta = {"name": "redrawn", "source": "local", "device": "cpu", "engine": "fit", "backend": "tensorflow",
            "epochs": epochs, "train_samples": 4000, "config": config.to_dict()}
    start = {"type": "start", "time": time.time(), "hardware": {"cpu_model": "bench", "cpu_logical_cores": 2}}
    return store.create(meta, "running", files={METRICS_FILE: encode(start)})


def append_epoch(run, epoch: int, seconds: float) -> None:
    with open(run.metrics_path, "ab") as log:
        log.write(encode({"type": "epoch", "epoch": epoch, "loss": 1 / epoch, "accuracy": 0.9,
                          "val_loss": 1 / epoch, "val_accuracy": 0.9 + 0.01 * epoch, "epoch_time_s": seconds,
                          "train_s": seconds * 0.9, "eval_s": seconds * 0.1, "samples_per_s": 4000 / seconds,
                          "elapsed_s": seconds * epoch, "time": time.time()}))


def main() -> None:
    args = parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="redraw-cost-"))
    env = {**os.environ, "TRAINING_RUNS_DIR": str(tmp / "runs")}
    run = make_run(RunStore(tmp / "runs"), args.epochs)
    server, url = start_server(args.app_dir.resolve(), env, tmp / "streamlit.log")
    try:
        with sync_playwright() as playwright:
            driver = driver_of_playwright()
            sampler = Sampler({"server": lambda: tree(psutil.Process(server.pid)),
                               "browser": lambda: tree(driver)[1:]}, period=PERIOD_S)
            sampler.start()
            browser = Browser(playwright)
            browser.open(url + "/")
            browser.open(url + "/compare")
            browser.page.wait_for_timeout(8000)  # the first draw, Plotly loaded

            def used(start: float, end: float) -> dict[str, float]:
                browser.page.wait_for_timeout(2 * PERIOD_S * 1000)  # a sample after `end`
                return {group: cpu_seconds(meter.samples, start, end)
                        for group, meter in sampler.meters.items()}

            start = time.time()
            browser.page.wait_for_timeout(args.idle * 1000)
            idle = used(start, time.time())
            redraws = []
            for epoch in range(1, args.epochs + 1):
                start = time.time()
                append_epoch(run, epoch, args.every)
                browser.page.wait_for_timeout(args.every * 1000 - 2 * PERIOD_S * 1000)
                redraws.append(used(start, time.time()))
            drew = browser.drew("redrawn", args.epochs)
            sampler.stop()
            browser.close()
    finally:
        stop_group(server)
    print(f"app {args.app_dir}: idle {args.idle:.0f} s: server {idle['server']:.2f} CPU-s, "
          f"browser {idle['browser']:.2f} CPU-s")
    for group in ("server", "browser"):
        values = [r[group] for r in redraws]
        print(f"one redraw, {group}: median {statistics.median(values):.2f} CPU-s "
              f"(min {min(values):.2f}, max {max(values):.2f}, {len(values)} epochs)")
    print("the tab drew the last epoch" if drew else "THE TAB NEVER DREW THE LAST EPOCH")


if __name__ == "__main__":
    main()
