"""How soon a new epoch shows in the browser's charts after the worker writes it.

Starts `streamlit run app.py` on loopback with a temporary runs folder, opens
the Compare page in Debian's Chromium (Playwright, system browser), launches a
real CPU run through the local launcher, and for every epoch notes when its point
first appears in a drawn Plotly chart. Latency = that moment minus the epoch
record's own `time` field (same machine, same clock). Goal (issue 4): within 2 s.
Chromium, Streamlit and the training share the 2 cores, as they would for a user.
Run: .venv/bin/python bench/live_latency_bench.py [--epochs 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from browser_support import CHART_HAS_EPOCH_JS, CHROMIUM, CHROMIUM_ARGS, start_streamlit  # noqa: E402

from training.config import make_config  # noqa: E402
from training.launch import local  # noqa: E402
from training.store import ACTIVE_STATES, RunStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = Path(tmp) / "runs"
        proc, url = start_streamlit(runs_dir, Path(tmp) / "streamlit.log")
        store = RunStore(runs_dir)
        try:
            # About 2 s an epoch here, so epochs arrive slower than the 1 s refresh.
            run = local.launch(store, make_config(epochs=args.epochs, batch_size=32, limit_train=4096,
                                                  limit_test=512, name="latency"))
            seen = {}
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{url}/compare")
                for epoch in range(1, args.epochs + 1):
                    page.wait_for_function(CHART_HAS_EPOCH_JS, arg=["latency", epoch], timeout=180_000,
                                           polling=20)
                    seen[epoch] = time.time()
                browser.close()
            written = {r["epoch"]: r["time"] for r in run.log().epochs}
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            if run.status() in ACTIVE_STATES:
                local.stop(run)
    latencies = [seen[e] - written[e] for e in sorted(seen)]
    print("epoch -> chart latency (s):", " ".join(f"{v:.2f}" for v in latencies))
    print(f"median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s "
          f"over {len(latencies)} epochs (goal <= 2 s)")


if __name__ == "__main__":
    main()
