"""End to end in a real browser: Streamlit server, Debian's Chromium, a real CPU run.

Covers what AppTest cannot see: the server ringing a page when an epoch lands, Plotly actually
drawing, and a live training subprocess started by a click. Screenshots of
every page land in test-output/screenshots/.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from browser_support import CHART_HAS_EPOCH_JS, CHROMIUM, CHROMIUM_ARGS, start_streamlit
from conftest import FIXTURES, TEST_OUTPUT, cli

from training.config import make_config
from training.launch import local
from training.store import ACTIVE_STATES, RunStore, process
from training.store.layout import METRICS_FILE
from training.store.logwriter import encode

SHOTS = TEST_OUTPUT / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed "
                       "(make test installs it: apt-get install chromium)"),
]


@pytest.fixture
def server(runs_dir, tmp_path, mnist_cached):
    proc, url = start_streamlit(runs_dir, tmp_path / "streamlit.log")
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    store = RunStore(runs_dir)
    for run_id in store.ids():
        if store.open(run_id).status() in ACTIVE_STATES:
            local.stop(store.open(run_id))


def assert_no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.inner_text("body")[:2000]


def chart_has_epoch(page, run_name: str, epoch: int) -> bool:
    """True when a drawn Plotly chart has a trace of this run with a point at `epoch`."""
    return page.evaluate(CHART_HAS_EPOCH_JS, [run_name, epoch])


SHOWN_WITHIN_S = 3.0  # issue 24: a run started anywhere shows its row and each epoch within 3 s


def wait_for_epoch_record(store: RunStore, run_id: str, epoch: int, timeout: float = 180) -> float:
    """The `time` the worker wrote into epoch `epoch`'s record, once it is on disk."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        epochs = store.open(run_id).log().epochs
        if len(epochs) >= epoch:
            return epochs[epoch - 1]["time"]
        time.sleep(0.05)
    raise AssertionError(f"epoch {epoch} of {run_id} was not written in {timeout:.0f} s")


def test_compare_opened_first_follows_a_cli_run_then_keeps_the_users_picks(server, runs_dir):
    from playwright.sync_api import sync_playwright

    store = RunStore(runs_dir)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(server)
        page.get_by_role("link", name="Compare").click()
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)  # the published runs, before any run
        verdict = page.locator(".st-key-verdict")

        # Compare is open first; the run starts from the command line.
        started = cli("run", "--detach", "--epochs", "2", "--batch-size", "64", "--limit-train", "512",
                      "--limit-test", "256", "--name", "cli run", runs_dir=runs_dir)
        assert started.returncode == 0, started.stderr
        run_id = started.stdout.split()[0]
        page.get_by_text("cli run", exact=False).first.wait_for(timeout=SHOWN_WITHIN_S * 1000)
        assert "cli run" in verdict.first.inner_text()  # its row of the verdict, first: the baseline
        for epoch in (1, 2):
            written = wait_for_epoch_record(store, run_id, epoch)
            left_ms = max(1.0, (written + SHOWN_WITHIN_S - time.time()) * 1000)
            page.wait_for_function(CHART_HAS_EPOCH_JS, arg=["cli run", epoch], timeout=left_ms, polling=50)
        assert_no_exception(page)

        # The user drops the last pick (the published GPU run); a new run then must not undo it.
        picks = page.locator('[data-testid="stMultiSelect"]').first
        picks.locator("input").click()
        page.keyboard.press("Backspace")
        page.keyboard.press("Escape")
        page.wait_for_function("() => !document.body.innerText.includes('TensorFlow GPU (published) · GPU')",
                               timeout=10_000)
        made = cli("import", str(FIXTURES / "keras2-fit-verbose2.txt"), "--name", "imported later",
                   runs_dir=runs_dir)
        assert made.returncode == 0, made.stderr
        page.get_by_text("New since you picked").wait_for(timeout=SHOWN_WITHIN_S * 1000)
        chips = picks.inner_text()
        assert "cli run" in chips and "imported later" not in chips and "TensorFlow GPU" not in chips
        page.get_by_role("button", name="Add", exact=True).click()
        page.wait_for_function("() => [...document.querySelectorAll('[data-testid=\"stMultiSelect\"]')][0]"
                               ".innerText.includes('imported later')", timeout=10_000)
        assert "TensorFlow GPU" not in picks.inner_text()
        assert_no_exception(page)
        browser.close()


def test_click_start_and_watch_epoch_1_arrive_on_compare(server, runs_dir):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(server)
        page.get_by_role("button", name="Start CPU run").wait_for(timeout=60_000)
        assert_no_exception(page)

        # A small run: 3 epochs on 4,096 images.
        page.get_by_label("Epochs").fill("3")
        page.get_by_label("Epochs").press("Enter")
        page.get_by_text("Quick look on a subset").click()
        page.get_by_label("Training images").fill("4096")
        page.get_by_label("Training images").press("Enter")
        page.get_by_label("Test images").fill("1000")
        page.get_by_label("Test images").press("Enter")
        page.get_by_label("Name (optional)").fill("browser run")
        page.get_by_label("Name (optional)").press("Enter")
        assert page.get_by_role("button", name="Start GPU run").is_disabled()
        page.get_by_role("button", name="Start CPU run").click()
        page.get_by_text("Queued 1 run(s)").wait_for(timeout=30_000)
        page.get_by_text("browser run").first.wait_for(timeout=30_000)
        assert_no_exception(page)
        page.screenshot(path=str(SHOTS / "train.png"), full_page=True)

        page.get_by_role("link", name="Compare").click()
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        # No reload: the live fragment must bring epoch 1 in by itself.
        page.wait_for_function(CHART_HAS_EPOCH_JS, arg=["browser run", 1], timeout=120_000)
        assert chart_has_epoch(page, "browser run", 1)
        assert chart_has_epoch(page, "Keras CPU (published)", 30)
        store = RunStore(runs_dir)
        [run_id] = [i for i in store.ids() if store.open(i).meta.get("name") == "browser run"]
        # Let it finish so the screenshot shows the whole (tiny) run and a settled comparison.
        deadline = time.monotonic() + 120
        while store.open(run_id).status() in ACTIVE_STATES and time.monotonic() < deadline:
            time.sleep(0.5)
        assert store.open(run_id).status() == "finished"
        page.wait_for_function(CHART_HAS_EPOCH_JS, arg=["browser run", 3], timeout=30_000)
        time.sleep(1.5)  # let Plotly finish its transition before the picture
        assert_no_exception(page)
        page.screenshot(path=str(SHOTS / "compare.png"), full_page=True)

        page.get_by_role("link", name="Runs").click()
        page.get_by_text("Import a log").wait_for(timeout=30_000)
        page.locator('[data-testid="stFileUploaderDropzone"]').wait_for(timeout=30_000)
        page.get_by_text("Hardware and versions").wait_for(timeout=30_000)  # the run's detail tables
        page.locator('[data-testid="stDataFrame"]').nth(2).wait_for(timeout=30_000)
        time.sleep(1)  # let the tables finish drawing before the picture
        assert_no_exception(page)
        page.screenshot(path=str(SHOTS / "runs.png"), full_page=True)
        browser.close()


def live_run(runs_dir, name: str) -> tuple:
    """A hand-made run folder in state running with only its start record, as a worker's
    first second leaves it; returns (run, its meta, that start record) for more like it."""
    config = make_config(device="cpu", batch_size=128, epochs=3, limit_train=4000)
    meta = {"name": name, "source": "local", "device": "cpu", "engine": "fit", "backend": "tensorflow",
            "epochs": 3, "train_samples": 4000, "config": config.to_dict()}
    start = encode({"type": "start", "time": time.time(),
                    "hardware": {"cpu_model": "test", "cpu_logical_cores": 2}})
    return RunStore(runs_dir).create(meta, "running", files={METRICS_FILE: start}), meta, start


def test_an_open_compare_tab_receives_nothing_between_epochs_and_each_epoch_within_2_s(server, runs_dir):
    """Issue 23: the server, not the browser, looks for new epochs (dashboard/doorbell.py)."""
    from playwright.sync_api import sync_playwright

    run, _, _ = live_run(runs_dir, "quiet run")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        frames: list[float] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda _: frames.append(time.monotonic())))
        page.goto(server)
        page.get_by_role("link", name="Compare").click()
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        page.get_by_text("quiet run").first.wait_for(timeout=30_000)
        # Playwright's sync API hands over events only inside its own calls: wait with its wait.
        page.wait_for_timeout(3000)  # the first draw's last messages
        seen = len(frames)
        page.wait_for_timeout(6000)  # six of the server's looks, and nothing changed on disk
        assert len(frames) == seen, f"{len(frames) - seen} messages in 6 s with nothing new"
        for epoch in (1, 2):
            with open(run.metrics_path, "ab") as log:
                log.write(encode({"type": "epoch", "epoch": epoch, "loss": 1 / epoch, "accuracy": 0.9,
                                  "val_loss": 1 / epoch, "val_accuracy": 0.9 + 0.01 * epoch,
                                  "epoch_time_s": 3.0, "train_s": 2.8, "eval_s": 0.2, "samples_per_s": 1400,
                                  "elapsed_s": 3.0 * epoch, "time": time.time()}))
            page.wait_for_function(CHART_HAS_EPOCH_JS, arg=["quiet run", epoch], timeout=2_000, polling=50)
        assert len(frames) > seen
        assert_no_exception(page)
        browser.close()


def _forward_msgs(payloads: list) -> list:
    """The server's binary websocket frames, decoded (each is one Streamlit ForwardMsg)."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    decoded = []
    for payload in payloads:
        if isinstance(payload, bytes):
            decoded.append(ForwardMsg())
            decoded[-1].ParseFromString(payload)
    return decoded


def _finished(msgs: list) -> list[str]:
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    return [ForwardMsg.ScriptFinishedStatus.Name(m.script_finished) for m in msgs
            if m.WhichOneof("type") == "script_finished"]


def _widget_labels(msgs: list) -> list[str]:
    labels = []
    for m in msgs:
        if m.WhichOneof("type") == "delta" and m.delta.WhichOneof("type") == "new_element":
            element = m.delta.new_element
            kind = element.WhichOneof("type")
            if kind in ("multiselect", "selectbox", "number_input", "toggle", "button_group"):
                labels.append(getattr(element, kind).label)
    return labels


def test_a_new_epoch_redraws_only_compares_live_part_and_the_chart_in_place(server, runs_dir):
    """Issue 23: an epoch reruns the fragment with the verdict, charts and table, not the page's
    widgets, and the chart is redrawn on the same element; a new run still reruns the page."""
    from playwright.sync_api import sync_playwright

    store = RunStore(runs_dir)
    run, meta, start = live_run(runs_dir, "live run")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        frames: list = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(payload)))
        page.goto(server)
        page.get_by_role("link", name="Compare").click()
        page.wait_for_selector(".dashboard-chart.js-plotly-plot", timeout=60_000)
        page.get_by_text("live run").first.wait_for(timeout=30_000)
        page.wait_for_timeout(3000)  # the first draw's last messages
        page.evaluate("() => { document.querySelector('.dashboard-chart').keptAcrossRedraws = true; }")
        seen = len(frames)
        with open(run.metrics_path, "ab") as log:
            log.write(encode({"type": "epoch", "epoch": 1, "loss": 1.0, "accuracy": 0.9, "val_loss": 1.0,
                              "val_accuracy": 0.91, "epoch_time_s": 3.0, "train_s": 2.8, "eval_s": 0.2,
                              "samples_per_s": 1400, "elapsed_s": 3.0, "time": time.time()}))
        page.wait_for_function(CHART_HAS_EPOCH_JS, arg=["live run", 1], timeout=2_000, polling=50)
        page.wait_for_timeout(1000)  # the rest of that run's messages
        epoch_msgs = _forward_msgs(frames[seen:])
        assert _finished(epoch_msgs) == ["FINISHED_FRAGMENT_RUN_SUCCESSFULLY"]
        assert _widget_labels(epoch_msgs) == ["More columns"]  # the picks and settings were not sent again
        assert page.evaluate("() => document.querySelector('.dashboard-chart').keptAcrossRedraws === true")
        assert "in 1 epoch" in page.locator(".st-key-verdict").inner_text()  # the verdict moved with it
        seen = len(frames)
        second = store.create({**meta, "name": "newer run"}, "running", files={METRICS_FILE: start})
        page.get_by_text("newer run").first.wait_for(timeout=5_000)  # the default picks follow it
        page.wait_for_timeout(1000)
        assert "FINISHED_SUCCESSFULLY" in _finished(_forward_msgs(frames[seen:]))  # the whole page
        assert second.id in page.locator(".st-key-verdict").inner_text() or \
            "newer run" in page.locator(".st-key-verdict").inner_text()
        assert_no_exception(page)
        browser.close()


def _stand_in_worker(run) -> subprocess.Popen:
    """A real process in its own session that the run's pid file names, so the run is running;
    the test kills it when done."""
    sleeper = subprocess.Popen(["sleep", "300"], start_new_session=True)
    run.write_pid(process.identity(sleeper.pid))
    return sleeper


def test_the_train_cards_progress_moves_with_no_streamlit_run_and_a_new_run_reruns_the_page(server, runs_dir):
    """Issue 23: between a run's start and end the Train page's websocket stays silent; the
    cards' bars ask the server's progress route (dashboard/progress.py) and move in place."""
    from playwright.sync_api import sync_playwright

    store = RunStore(runs_dir)
    run, meta, start = live_run(runs_dir, "card run")
    workers = [_stand_in_worker(run)]
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            frames: list = []
            asked: list[str] = []
            page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(payload)))
            page.on("request", lambda req: asked.append(req.url) if "/api/progress" in req.url else None)
            page.goto(server)
            bars = page.locator(f".st-key-progress_{run.id}")
            bars.get_by_text("Starting: loading").wait_for(timeout=60_000)
            page.wait_for_timeout(3000)  # the first draw's last messages
            seen, seen_asks = len(frames), len(asked)
            with open(run.metrics_path, "ab") as log:
                log.write(encode({"type": "progress", "epoch": 1, "batch": 10, "batches": 32, "epoch_s": 1.0,
                                  "samples_per_s": 1234.0, "time": time.time()}))
            bars.get_by_text("Epoch 1: batch 10 of 32 · 1,234 samples/s so far").wait_for(timeout=6_000)
            assert bars.locator('[role="progressbar"]').nth(1).get_attribute("aria-valuenow") == "31"  # 10/32
            with open(run.metrics_path, "ab") as log:
                log.write(encode({"type": "epoch", "epoch": 1, "loss": 1.0, "accuracy": 0.9, "val_loss": 1.0,
                                  "val_accuracy": 0.91, "epoch_time_s": 3.0, "train_s": 2.8, "eval_s": 0.2,
                                  "samples_per_s": 1400, "elapsed_s": 3.0, "time": time.time()}))
            bars.get_by_text("Epochs: 1 of 3").wait_for(timeout=6_000)  # 1.5 s polls, slack for a busy VM
            between = "Epoch 2 starting · last epoch 1,400 samples/s, val accuracy 0.9100"
            assert bars.get_by_text(between).count() == 1
            assert len(frames) == seen, "the page was sent messages for a progress record or an epoch"
            assert len(asked) > seen_asks
            with open(run.metrics_path, "ab") as log:  # the worker's last word, its process still there
                log.write(encode({"type": "end", "status": "finished"}))
            page.wait_for_timeout(3500)  # one ask reads the end record
            stopped_at = len(asked)
            page.wait_for_timeout(3500)  # two more polls' worth
            assert len(asked) == stopped_at, "the card kept asking after its run's end record"
            second = store.create({**meta, "name": "second card"}, "running", files={METRICS_FILE: start})
            workers.append(_stand_in_worker(second))
            page.get_by_text("second card").first.wait_for(timeout=5_000)  # a new run reruns the page
            assert "FINISHED_SUCCESSFULLY" in _finished(_forward_msgs(frames[seen:]))
            assert_no_exception(page)
            browser.close()
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()


def fabricated_sweep(runs_dir) -> None:
    """A CPU/GPU sweep at batch 32 and 256, 3 repeats each, as hand-made finished run folders.

    A stand-in only for the GPU this machine does not have: the records are what a sweep
    writes, and the test looks at how the page lays them out, not at their speed."""
    store = RunStore(runs_dir)
    steady = {("cpu", 32): [2.0, 2.5, 4.0], ("cpu", 256): [1.0, 1.25, 2.0],
              ("gpu", 32): [4.0, 5.0, 8.0], ("gpu", 256): [0.25, 0.5, 1.0]}
    for repeat in range(3):
        for (device, batch), seconds in steady.items():
            config = make_config(device=device, batch_size=batch, epochs=2, limit_train=1000)
            meta = {"name": f"{device} b{batch}", "source": "local", "device": device, "engine": "fit",
                    "backend": "tensorflow", "epochs": 2, "train_samples": 1000, "config": config.to_dict(),
                    "group": "g-sweep", "group_kind": "sweep", "group_name": "", "repeat": repeat}
            log = encode({"type": "start", "hardware": {"cpu_model": "test", "cpu_logical_cores": 2}})
            for epoch, took in ((1, 9.0), (2, seconds[repeat])):
                log += encode({"type": "epoch", "epoch": epoch, "loss": 1 / epoch, "accuracy": 0.5,
                               "val_loss": 1 / epoch, "val_accuracy": 0.9 + 0.01 * epoch,
                               "epoch_time_s": took, "train_s": took, "eval_s": 0.0,
                               "samples_per_s": 1000 / took,
                               "elapsed_s": 9.0 + (took if epoch == 2 else 0), "time": 1e9 + epoch})
            log += encode({"type": "end", "status": "finished"})
            store.create(meta, "finished", files={METRICS_FILE: log})


def test_the_grouped_comparison_of_a_cpu_and_a_gpu_sweep_fits_1400_px(server, runs_dir):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    fabricated_sweep(runs_dir)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(server)
        page.get_by_role("link", name="Compare").click()
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        groups = page.locator('[data-testid="stMultiSelect"]').nth(1)
        groups.locator("input").click()
        page.keyboard.press("Enter")  # the one group offered: the sweep
        page.keyboard.press("Escape")
        page.get_by_text("Group repeats").click()
        page.get_by_text("(n=3)").first.wait_for(timeout=30_000)
        verdict = page.locator(".st-key-verdict").inner_text()
        [gpu] = [line for line in verdict.splitlines() if line.startswith("It is 2.50× faster")]
        assert "(95% CI " in gpu and "range" not in gpu, verdict  # 3 runs a side: the bootstrap interval
        assert verdict.count("range") == verdict.count("too few runs for an interval"), verdict
        table = page.locator('[data-testid="stDataFrame"]').first
        table.wait_for(timeout=30_000)
        time.sleep(1.5)  # let the grid and the chart finish drawing
        sizes = table.locator(".dvn-scroller").evaluate("e => [e.scrollWidth, e.clientWidth]")
        assert sizes[0] <= sizes[1], f"the group table scrolls sideways at 1,400 px: {sizes}"
        assert page.evaluate("document.documentElement.scrollWidth") <= 1400
        assert_no_exception(page)
        page.screenshot(path=str(SHOTS / "compare-groups.png"), full_page=True)
        browser.close()
