"""What watching a run costs the run: the same CPU run watched and unwatched, interleaved.

One real Streamlit server (`streamlit run app.py` from --app-dir, in its own session and
process group, the runs folder a temporary one through TRAINING_RUNS_DIR) stays up for the
whole bench. Each pair trains the same TensorFlow `fit` run twice through the CLI
(`python -m training run ... --detach`):
  unwatched  the server running, no browser at all
  watched    Debian's Chromium (Playwright, the system browser: never `playwright install`)
             holding one tab on the Compare page (--page train: the Train page), opened
             once the run exists, as a user does after pressing Start
The order alternates (U W, W U, U W, ...) so that drift on a shared machine hits both alike.
"Unwatched" keeps the server running because the question is what one open tab costs; a
server nobody looks at should cost nothing, and its figure is printed too.

Per run, from the run's own records (training.analysis.comparison): the steady epoch
(median epoch_time_s, epoch 1 left out) and the steady training images/s; and, by
sampling the process trees every 0.25 s (bench/proctree.py), the CPU-seconds the server's
tree and the browser's tree used from the start record to the end record, divided by
that span: "cores" = CPU-seconds per second of training. The ratio watched/unwatched of
the steady epoch is taken per pair. The Playwright driver (node) is the bench's, not the
user's, and is not counted. After a watched run the bench checks that the tab drew the
run's last epoch, so a blank tab cannot pass for a cheap one.

Run: .venv/bin/python bench/observer_cost.py [--pairs 3] [--app-dir DIR] [--page compare|train]
     .venv/bin/python bench/observer_cost.py --quick        (1 pair of small runs: a smoke check)
Another checkout is benched with this machine's venv: --app-dir /path/to/checkout (its
.streamlit/config.toml and code are what the server runs; MNIST comes from this checkout's
data/ folder, or $TRAINING_DATA_DIR).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from browser_support import CHART_HAS_EPOCH_JS, CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402
from proctree import Sampler, cpu_seconds, tree  # noqa: E402

from training.analysis import comparison, display, stats  # noqa: E402
from training.store import ACTIVE_STATES, RunStore  # noqa: E402

PAGES = {"compare": "/compare", "train": "/"}
FINISHED_WAIT_S = 900  # one run; a 4-epoch 12,000-image run takes about 25 s on 2 idle cores


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3,
                        help="interleaved watched/unwatched pairs (default: 3)")
    parser.add_argument("--limit-train", type=int, default=12000, help="training images (default: 12000)")
    parser.add_argument("--limit-test", type=int, default=None, help="test images (default: all 10,000)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--page", choices=sorted(PAGES), default="compare", help="the page the tab holds")
    parser.add_argument("--app-dir", type=Path, default=ROOT,
                        help="the checkout whose app.py, pages and .streamlit/config.toml are served")
    parser.add_argument("--latency", action="store_true",
                        help="also time each epoch from written to drawn (Compare page; the polling "
                             "adds browser CPU, so the cores then read high)")
    parser.add_argument("--quick", action="store_true", help="1 pair of 4,000-image 3-epoch runs")
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.limit_train, args.epochs, args.limit_test = 1, 4000, 3, args.limit_test or 2000
    if args.pairs < 1 or args.epochs < 3:
        parser.error("--pairs must be at least 1 and --epochs at least 3 (two steady epochs)")
    args.app_dir = args.app_dir.resolve()
    if not (args.app_dir / "app.py").is_file():
        parser.error(f"--app-dir {args.app_dir} has no app.py")
    return args


def start_server(app_dir: Path, env: dict, log_path: Path,
                 timeout: float = 90) -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` in its own session (so it is killed as a group), once healthy."""
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=app_dir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.3)
    stop_group(proc)
    raise RuntimeError(f"streamlit did not start:\n{log_path.read_text()[-3000:]}")


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL it after 15 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def launch(args: argparse.Namespace, env: dict, name: str, epochs: int | None = None,
           limit_train: int | None = None) -> str:
    """A detached CPU run through the CLI; returns its id."""
    command = [sys.executable, "-m", "training", "run", "--device", "cpu", "--engine", "fit",
               "--backend", "tensorflow", "--epochs", str(epochs or args.epochs),
               "--batch-size", str(args.batch_size), "--limit-train", str(limit_train or args.limit_train),
               "--name", name, "--detach"]
    if args.limit_test:
        command += ["--limit-test", str(args.limit_test)]
    out = subprocess.run(command, cwd=args.app_dir, env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()[-1]


def wait_finished(store: RunStore, run_id: str) -> dict:
    run = store.open(run_id)
    deadline = time.monotonic() + FINISHED_WAIT_S
    while run.status() in ACTIVE_STATES:
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run_id} still {run.status()} after {FINISHED_WAIT_S} s")
        time.sleep(0.5)
    log = run.log()
    for _ in range(20):  # the end record can land just after the status says finished
        if log.end:
            break
        time.sleep(0.25)
        log.update()
    if run.status() != "finished" or not log.start or not log.end:
        raise RuntimeError(f"run {run_id} ended {run.status()}: see {run.folder}/stderr.log")
    return {"run": run, "log": log}


class Browser:
    """Chromium with one tab; none at all when unwatched."""

    def __init__(self, playwright):
        self.browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.page = self.browser.new_page(viewport={"width": 1400, "height": 1000})

    def open(self, url: str) -> None:
        self.page.goto(url)
        self.page.wait_for_selector("h1", timeout=120_000)

    def drawn_at(self, name: str, epochs: int) -> dict[int, float]:
        """{epoch: time.time() its point first showed in a chart}, polling every 0.1 s (browser CPU)."""
        seen = {}
        for epoch in range(1, epochs + 1):
            self.page.wait_for_function(CHART_HAS_EPOCH_JS, arg=[name, epoch], timeout=FINISHED_WAIT_S * 1000,
                                        polling=100)
            seen[epoch] = time.time()
        return seen

    def drew(self, name: str, epoch: int) -> bool:
        try:
            self.page.wait_for_function(CHART_HAS_EPOCH_JS, arg=[name, epoch], timeout=30_000, polling=200)
            return True
        except Exception:  # Playwright's TimeoutError: the tab never drew it
            return False

    def close(self) -> None:
        self.browser.close()


def driver_of_playwright() -> psutil.Process | None:
    """The Playwright driver (node), a child of this process; the browser is its descendant."""
    for child in psutil.Process().children():
        try:
            if child.name() == "node" or "playwright" in " ".join(child.cmdline()):
                return child
        except psutil.Error:
            pass
    return None


def measure(args, env, store, sampler, playwright, url, kind: str, pair: int) -> dict:
    name = f"{kind} {pair + 1}"
    browser = Browser(playwright) if kind == "watched" else None
    try:
        run_id = launch(args, env, name)
        if browser:
            # Opened once the run exists, as after pressing Start: a Compare tab opened before
            # keeps its picks and would not show it. The page loads while TensorFlow imports,
            # before the start record that opens the measured window.
            browser.open(url + PAGES[args.page])
        seen = browser.drawn_at(name, args.epochs) if browser and args.latency else {}
        done = wait_finished(store, run_id)
        drew = None
        if browser and args.page == "compare":
            drew = browser.drew(name, args.epochs)
    finally:
        if browser:
            browser.close()
    time.sleep(2 * sampler.period)  # a sample after the end record
    log = done["log"]
    start, end = log.start["time"], log.end["time"]
    span = end - start
    row = {"pair": pair + 1, "kind": kind, "id": run_id, "span_s": span,
           "steady_epoch_s": comparison.steady_epoch_s(log.epochs),
           "images_per_s": comparison.train_images_per_s(log.epochs),
           "epochs_s": [e["epoch_time_s"] for e in log.epochs], "drew_last_epoch": drew,
           "load": os.getloadavg(),
           "latency_s": [seen[e["epoch"]] - e["time"] for e in log.epochs if e["epoch"] in seen],
           # What the worker itself saw (training/system/contention.py): others' share of the CPUs.
           "others_share": median_of([e.get("others_cpu_share") for e in log.epochs[1:]])}
    steady_from = log.epochs[0]["time"]  # the end of epoch 1: the window the steady epochs lie in
    for group, meter in sampler.meters.items():
        row[f"{group}_cpu_s"] = cpu_seconds(meter.samples, start, end)
        row[f"{group}_cores"] = row[f"{group}_cpu_s"] / span
        row[f"{group}_steady_cores"] = cpu_seconds(meter.samples, steady_from, end) / (end - steady_from)
    assert store.root in done["run"].folder.parents  # never a published run in the checkout
    shutil.rmtree(done["run"].folder)  # the next run's page shows one local run, as this one's did
    return row


def median_of(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def print_row(row: dict) -> None:
    epochs = " ".join(f"{s:.2f}" for s in row["epochs_s"])
    drew = {None: "", True: "  tab drew the last epoch", False: "  TAB NEVER DREW THE LAST EPOCH"}
    print(f"pair {row['pair']} {row['kind']:9s} steady epoch {row['steady_epoch_s']:.2f} s "
          f"(epochs {epochs})  {row['images_per_s']:,.0f} images/s  over {row['span_s']:.1f} s: "
          f"server {row['server_cpu_s']:.1f} CPU-s = {row['server_cores']:.3f} cores, "
          f"browser {row['browser_cpu_s']:.1f} CPU-s = {row['browser_cores']:.3f} cores  "
          f"load {row['load'][0]:.2f}{drew[row['drew_last_epoch']]}", flush=True)
    others = "not recorded" if row["others_share"] is None else f"{row['others_share']:.1%}"
    print(f"       steady epochs only: other processes took {others} of the CPUs (the worker's own "
          f"reading); server {row['server_steady_cores']:.3f} cores, "
          f"browser {row['browser_steady_cores']:.3f} cores, the bench's Playwright driver "
          f"{row['driver_steady_cores']:.3f} cores", flush=True)
    if row["latency_s"]:
        print(f"       epoch written -> drawn (s): {' '.join(f'{v:.2f}' for v in row['latency_s'])}")


def summary(rows: list[dict]) -> None:
    pairs = sorted({r["pair"] for r in rows})
    by = {(r["pair"], r["kind"]): r for r in rows}
    epoch_ratio = [by[p, "watched"]["steady_epoch_s"] / by[p, "unwatched"]["steady_epoch_s"] for p in pairs]
    rate_ratio = [by[p, "watched"]["images_per_s"] / by[p, "unwatched"]["images_per_s"] for p in pairs]
    watched = [r for r in rows if r["kind"] == "watched"]
    unwatched = [r for r in rows if r["kind"] == "unwatched"]

    def line(label: str, values: list[float], spec: str, unit: str = "") -> None:
        print(f"  {label:44s} {display.spread_sentence(stats.spread(values), spec, unit)}")

    print(f"\nover {len(pairs)} interleaved pairs:")
    line("steady epoch, watched / unwatched", epoch_ratio, ".3f", "x")
    line("steady training images/s, watched / unwatched", rate_ratio, ".3f", "x")
    line("server cores while watched", [r["server_cores"] for r in watched], ".3f")
    line("browser cores while watched", [r["browser_cores"] for r in watched], ".3f")
    line("server + browser cores while watched",
         [r["server_cores"] + r["browser_cores"] for r in watched], ".3f")
    line("server + browser cores, steady epochs only",
         [r["server_steady_cores"] + r["browser_steady_cores"] for r in watched], ".3f")
    line("server cores while unwatched", [r["server_cores"] for r in unwatched], ".3f")
    for kind, those in (("watched", watched), ("unwatched", unwatched)):
        shares = [r["others_share"] * 100 for r in those if r["others_share"] is not None]
        if shares:
            line(f"others' CPU share, {kind} (worker's reading)", shares, ".1f", "%")
    latencies = [v for r in watched for v in r["latency_s"]]
    if latencies:
        line("epoch written -> drawn, watched (s)", latencies, ".2f")
    print("  (cores = CPU-seconds per second of training, start record to end record; goal for the "
          "server + browser watched: <= 0.05)")


def server_says(log_path: Path) -> list[str]:
    """The server log's lines worth reporting: its CPU priority, and the watcher's overflow count."""
    text = log_path.read_text(errors="replace")
    said = [line for line in text.splitlines() if line.startswith("dashboard CPU priority")][:1]
    overflows = text.count("Inotify queue overflowed")
    return said + [f"'Inotify queue overflowed' lines in the server log: {overflows}"]


def main() -> None:
    args = parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="observer-cost-"))
    runs_dir = tmp / "runs"
    env = {**os.environ, "TRAINING_RUNS_DIR": str(runs_dir),
           "TRAINING_DATA_DIR": os.environ.get("TRAINING_DATA_DIR") or str(ROOT / "data")}
    store = RunStore(runs_dir)
    log_path = tmp / "streamlit.log"
    print(f"app {args.app_dir}  page {args.page}  {args.pairs} pairs of {args.epochs} epochs, "
          f"{args.limit_train:,} images, batch {args.batch_size}  load {os.getloadavg()[0]:.2f} "
          f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}", flush=True)
    server, url = start_server(args.app_dir, env, log_path)
    server_root = psutil.Process(server.pid)
    rows = []
    sampler = None
    try:
        with sync_playwright() as playwright:
            driver = driver_of_playwright()
            # Every 0.5 s: the bench's own sampling costs both arms alike, and less when rarer.
            sampler = Sampler({"server": lambda: tree(server_root),
                               "browser": lambda: tree(driver)[1:],  # not the driver itself
                               "driver": lambda: [driver] if driver else []}, period=0.5)
            sampler.start()
            # Warm-up, not measured: MNIST cached, the CPU's peak measured once (both happen
            # before a start record anyway), and the server's first page imports done.
            # The root first: Streamlit 1.67 serves a first-ever visit to a deep link (/compare)
            # from pages/ alone, without navigation.py's st.navigation, until someone loads the root.
            browser = Browser(playwright)
            browser.open(url + "/")
            browser.open(url + PAGES[args.page])
            wait_finished(store, launch(args, env, "warm-up", epochs=1, limit_train=256))
            browser.close()
            for run in store.runs():  # only the bench's own: the published runs live in the checkout
                if runs_dir in run.folder.parents:
                    shutil.rmtree(run.folder)
            for pair in range(args.pairs):
                order = ("unwatched", "watched") if pair % 2 == 0 else ("watched", "unwatched")
                for kind in order:
                    rows.append(measure(args, env, store, sampler, playwright, url, kind, pair))
                    print_row(rows[-1])
    finally:
        if sampler and sampler.is_alive():
            sampler.stop()
        stop_group(server)
        for run in store.runs() if runs_dir.exists() else []:
            if run.status() in ACTIVE_STATES:
                subprocess.run([sys.executable, "-m", "training", "stop", run.id], cwd=ROOT, env=env)
    summary(rows)
    for line in server_says(log_path):
        print(f"  {line}")
    print(f"  load average at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
