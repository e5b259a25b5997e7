"""Real Streamlit server plus Debian's Chromium: shared by the browser test and bench/.

Never `playwright install`: Playwright drives the system chromium through
`executable_path`, with the flags that keep it off the (closed) network.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# True once a drawn Plotly chart has a trace named `name...` with a point of that epoch: the epoch
# numbers are each trace's `customdata` (figures._line), so a wall-clock chart counts as well.
CHART_HAS_EPOCH_JS = """([name, epoch]) => [...document.querySelectorAll('.js-plotly-plot')].some(gd =>
    (gd.data || []).some(t => String(t.name).startsWith(name)
        && Array.from(t.customdata || t.x || []).includes(epoch)))"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_streamlit(runs_dir: Path, log_path: Path, timeout: float = 60,
                    base: str = "") -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` on a free loopback port, below `base` (server.baseUrlPath) if
    given; returns (process, url of the app) once healthy."""
    port = free_port()
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--server.baseUrlPath", base],
        cwd=ROOT, env={**os.environ, "TRAINING_RUNS_DIR": str(runs_dir)}, stdout=log,
        stderr=subprocess.STDOUT)
    log.close()  # the child keeps its own descriptor
    url = f"http://127.0.0.1:{port}" + (f"/{base}" if base else "")
    deadline = time.monotonic() + timeout
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"streamlit did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.3)
