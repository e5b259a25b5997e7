"""How long `export RUN --mlflow` takes for a run of 1,000 epochs, against a real MLflow server.

    .venv/bin/python bench/mlflow_export_bench.py [--uri http://127.0.0.1:5000] [--epochs 1000]

Without --uri it starts `mlflow server` from .venv-mlflow (SQLite store in a temp folder,
its own process group, ended at the end). It writes one finished run folder of EPOCHS
epochs (10 numbers each) and 2 system samples per epoch (3 numbers each), then times:
after a warm-up export of a 2-epoch run, the first export without the report, the same
export again (it must add nothing), and a first export with the report (write_report's
HTML, about 4 MB with plotly.js inside).
Prints the figures; docs/benchmarks.md records them.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.exports.mlflow import Exporter  # noqa: E402
from training.store import FINISHED, RunStore  # noqa: E402
from training.store.layout import METRICS_FILE, SYSTEM_FILE  # noqa: E402
from training.store.logwriter import encode  # noqa: E402


def fabricate(store: RunStore, epochs: int) -> str:
    t0 = time.time() - 3 * epochs
    config = {"device": "cpu", "engine": "fit", "backend": "tensorflow", "epochs": epochs, "batch_size": 128,
              "lr": 0.05, "momentum": 0.9, "seed": 1, "limit_train": None, "limit_test": None,
              "precision": "float32", "jit": "auto", "threads": None, "name": "long", "concurrent": False,
              "system_metrics": True}
    lines = [{"type": "start", "time": t0, "config": config, "hardware": {"cpu_model": "bench"},
              "versions": {"keras": "3.15.1"}}]
    for epoch in range(1, epochs + 1):
        lines.append({"type": "epoch", "epoch": epoch, "loss": 1 / epoch, "accuracy": 1 - 0.5 / epoch,
                      "val_loss": 1.1 / epoch, "val_accuracy": 1 - 0.6 / epoch, "train_s": 2.5, "eval_s": 0.4,
                      "epoch_time_s": 2.9, "samples": 60000, "samples_per_s": 24000.0,
                      "elapsed_s": 3.0 * epoch, "cpu_s": 5.0, "time": t0 + 3.0 * epoch})
    lines.append({"type": "end", "status": FINISHED, "error": None, "time": t0 + 3.0 * epochs + 1})
    system = [{"type": "system", "elapsed_s": 1.5 * i, "process_cpu_percent": 180.0,
               "system_cpu_percent": 95.0, "rss_mb": 1500.0, "time": t0 + 1.5 * i} for i in range(2 * epochs)]
    meta = {"name": f"{epochs} epochs", "source": "local", "device": "cpu", "engine": "fit",
            "backend": "tensorflow", "epochs": epochs, "config": config}
    files = {METRICS_FILE: b"".join(map(encode, lines)), SYSTEM_FILE: b"".join(map(encode, system))}
    return store.create(meta, FINISHED, files=files).id


def start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(ROOT / ".venv-mlflow" / "bin" / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts")],
        cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return server, uri
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"mlflow server did not start (exit {server.poll()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", help="an MLflow tracking server already running")
    parser.add_argument("--epochs", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlflow-bench-") as tmp:
        server = None
        uri = args.uri
        if not uri:
            server, uri = start_server(Path(tmp))
        try:
            store = RunStore(Path(tmp) / "runs")
            experiment = f"bench-{int(time.time())}"
            started = time.perf_counter()  # a fresh server's first requests are slow: not counted below
            Exporter(uri, experiment).export([store.open(fabricate(store, 2))], report=False)
            print(f"warm-up (a 2-epoch run, the experiment made): {time.perf_counter() - started:.2f} s")
            run = store.open(fabricate(store, args.epochs))
            for label in ("first export, no report", "the same again (adds nothing)"):
                started = time.perf_counter()
                [done] = Exporter(uri, experiment).export([run], report=False)
                print(f"{label}: {time.perf_counter() - started:.2f} s for {done.epochs} epochs "
                      f"({done.epochs * 10:,} values) and {done.system:,} system samples "
                      f"({done.system * 3:,} values)")
            second = store.open(fabricate(store, args.epochs))
            started = time.perf_counter()
            Exporter(uri, experiment).export([second], report=True)
            print(f"first export with the report: {time.perf_counter() - started:.2f} s")
        finally:
            if server is not None:
                for signum in (signal.SIGTERM, signal.SIGKILL):
                    try:
                        os.killpg(server.pid, signum)
                        server.wait(timeout=30)
                    except (ProcessLookupError, subprocess.TimeoutExpired):
                        pass


if __name__ == "__main__":
    main()
