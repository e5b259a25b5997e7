"""Retake the README's screenshot: the Compare page with a real CPU run beside the published runs.

    .venv/bin/python bench/screenshot.py RUNS_DIR [--out docs/screenshot-compare.png]

RUNS_DIR holds the runs to show (e.g. one made with `python -m training run --epochs 3
--limit-train 6000 --limit-test 1000 --name "this VM, 6,000 images"`); the published runs
are in every store. A real Streamlit server and Debian's Chromium, as the browser test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from browser_support import CHROMIUM, CHROMIUM_ARGS, start_streamlit  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs_dir")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot-compare.png"))
    parser.add_argument("--height", type=int, default=1150, help="pixels of the page to keep")
    parser.add_argument("--width", type=int, default=1400, help="the viewport: issue 24 asks for 1,400 px")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    log = Path(tempfile.mkdtemp()) / "streamlit.log"
    server, url = start_streamlit(Path(args.runs_dir), log)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.goto(url)  # through navigation.py: its page config (wide layout) and navigation
            page.get_by_role("link", name="Compare").click()
            page.wait_for_selector(".js-plotly-plot", timeout=60_000)
            time.sleep(3)  # let Plotly finish drawing every chart
            page.screenshot(path=args.out, full_page=False)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    print(args.out)


if __name__ == "__main__":
    main()
