"""Repeats, sweeps, group statistics, --threads and the offline report, with real workers.

One group of three real CPU runs (tiny subset, 2 epochs, --threads 1) is made once
for the module; its numbers are recomputed here by hand from the epoch records.
The sweep test holds the queue lock, so its workers wait in the queue and are
stopped before any of them imports TensorFlow.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import statistics
from pathlib import Path

import pytest
from conftest import cli, records, run_cli, stop_active, wait_for
from plotly.offline import get_plotlyjs

from training.store import ACTIVE_STATES, RunStore
from training.store.queue import LOCK_NAME

pytestmark = pytest.mark.xdist_group("groups")  # the three repeats are trained once, on one worker
SMALL = ["--epochs", "2", "--limit-train", "512", "--limit-test", "256"]


@pytest.fixture(scope="module")
def repeated(tmp_path_factory, mnist_cached):
    """(runs folder, run ids, group id) of `run --repeats 3 --threads 1`, all finished."""
    runs_dir = tmp_path_factory.mktemp("groups") / "runs"
    result = cli("run", "--repeats", "3", "--threads", "1", *SMALL, "--name", "three", "--detach",
                 runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr
    *run_ids, group = result.stdout.split()
    store = RunStore(runs_dir)
    wait_for(lambda: all(store.open(i).status() not in ACTIVE_STATES for i in run_ids), 240,
             interval=0.5, what="three runs to finish")
    return runs_dir, run_ids, group


def test_repeats_make_one_group_and_print_its_id_last(repeated):
    runs_dir, run_ids, group = repeated
    store = RunStore(runs_dir)
    assert len(run_ids) == 3 and group.startswith("g-") and group not in store.ids()
    assert run_ids == sorted(run_ids)  # queue (creation) order
    for repeat, run_id in enumerate(run_ids):
        run = store.open(run_id)
        assert run.status() == "finished", run.stderr_tail()
        assert run.meta["group"] == group and run.meta["repeat"] == repeat
        assert "group" not in run.meta["config"] and run.meta["config"]["threads"] == 1
        assert [r["epoch"] for r in records(run.folder, "epoch")] == [1, 2]


def _by_hand(values: list[float]) -> dict:
    ordered = sorted(values)
    middle = ordered[1:-1]
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1],
            "olympic_mean": sum(middle) / len(middle)}


def test_compare_group_json_matches_a_hand_computation(repeated):
    runs_dir, run_ids, group = repeated
    epochs = {i: records(runs_dir / i, "epoch") for i in run_ids}
    # A target between the runs' final accuracies, so reaching it is worked out per run.
    finals = sorted(e[-1]["val_accuracy"] for e in epochs.values())
    target = finals[1]
    result = run_cli("compare", group, "--target", str(target), "--json", runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)["groups"]
    assert entry["n"] == 3 and entry["runs"] == run_ids and entry["id"] == group

    steady = [statistics.median(r["epoch_time_s"] for r in e if r["epoch"] > 1) for e in epochs.values()]
    rate = [statistics.median(r["samples_per_s"] for r in e if r["epoch"] > 1) for e in epochs.values()]
    ttt = [next((r["elapsed_s"] for r in e if r["val_accuracy"] >= target), math.inf)
           for e in epochs.values()]
    for key, values in (("steady_epoch_s", steady), ("steady_samples_per_s", rate)):
        for stat, value in _by_hand(values).items():
            assert entry[key][stat] == pytest.approx(value), (key, stat)
    for stat, value in _by_hand(ttt).items():  # an unreached target is infinitely slow: null in JSON
        assert entry["time_to_target_s"][stat] == (None if math.isinf(value) else pytest.approx(value))
    assert entry["not_reached"] == sum(math.isinf(t) for t in ttt)

    # Utilisation: 3 x 5,256,616 FLOPs per training image x images/s over the run's measured peak.
    # (the backend's own forward count when the worker recorded one, else the layers' 5,256,616)
    starts = {i: records(runs_dir / i, "start")[0] for i in run_ids}
    peaks = {i: start["peak"]["flops_per_s"] for i, start in starts.items()}
    forward = {i: (start.get("flops") or {}).get("forward") or 5_256_616 for i, start in starts.items()}
    used = [statistics.median(r["samples"] / r["train_s"] for r in e if r["epoch"] > 1) * 3 * forward[i]
            / peaks[i] for i, e in epochs.items()]
    assert entry["utilisation"]["median"] == pytest.approx(statistics.median(used))

    text = run_cli("compare", group, "--target", str(target), runs_dir=runs_dir).stdout
    assert "n=3" in text and "olympic mean" in text
    assert f"{entry['not_reached']} of 3 did not reach it" in text


def test_threads_1_keeps_about_one_core_busy(repeated):
    runs_dir, run_ids, group = repeated
    for run_id in run_ids:
        for record in records(runs_dir / run_id, "epoch"):
            assert record["cpu_s"] / record["epoch_time_s"] <= 1.3, record
    entry = json.loads(run_cli("compare", group, "--json", runs_dir=runs_dir).stdout)["groups"][0]
    assert 0 < entry["cores_busy"]["median"] <= 1.3  # below 1 when the shared VM steals the core


def test_sweep_queues_the_product_interleaved(runs_dir):
    runs_dir.mkdir(parents=True)
    lock = os.open(runs_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(lock, fcntl.LOCK_EX)  # every worker waits in the queue: nothing trains
    store = RunStore(runs_dir)
    try:
        result = cli("sweep", "--batch-size", "32,64", "--repeats", "2", *SMALL, "--detach",
                     runs_dir=runs_dir)
        assert result.returncode == 0, result.stderr
        *run_ids, group = result.stdout.split()
        assert "4 runs, about" in result.stderr
        assert run_ids == sorted(run_ids) == store.ids()[:4]  # printed in creation (queue) order
        metas = [store.open(i).meta for i in run_ids]
        assert [m["config"]["batch_size"] for m in metas] == [32, 64, 32, 64]
        assert [m["repeat"] for m in metas] == [0, 0, 1, 1]
        assert {m["group"] for m in metas} == {group} and {m["group_kind"] for m in metas} == {"sweep"}
        assert all(m["config"]["epochs"] == 2 and m["config"]["limit_train"] == 512 for m in metas)
        assert all(store.open(i).status() == "queued" for i in run_ids)
    finally:
        stop_active(store)
        os.close(lock)


def test_sweep_asking_for_a_missing_gpu_is_refused_with_nothing_queued(runs_dir):
    # Hidden GPUs, so the refusal holds on a GPU machine too; here NVML finds none anyway.
    result = cli("sweep", "--device", "cpu,gpu", "--batch-size", "32,64", *SMALL, runs_dir=runs_dir,
                 env={"CUDA_VISIBLE_DEVICES": "-1"})
    assert result.returncode == 1
    assert "nothing queued: --device gpu with tensorflow:" in result.stderr and "GPU" in result.stderr
    assert result.stdout == ""
    assert not runs_dir.exists() or not [p for p in runs_dir.iterdir() if not p.name.startswith(".")]


def test_report_is_one_file_with_everything_inline(repeated, tmp_path):
    runs_dir, run_ids, group = repeated
    out = tmp_path / "report.html"
    result = run_cli("report", group, "-o", str(out), "--price-cpu", "0.5", runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert text.count("plotly.js v") == 1  # one inline copy of plotly.js, shared by every chart
    # Outside plotly.js itself (whose source mentions map-tile servers it never calls here),
    # the file names no address at all: no script, style sheet or font from elsewhere.
    assert "://" not in text.replace(get_plotlyjs(), "")
    assert out.stat().st_size < 5_500_000
    assert "olympic" in text.lower() and "not measured" in text  # no power readings on this VM
    for run_id in run_ids:
        assert run_id in text


@pytest.mark.browser
@pytest.mark.slow
def test_report_opens_offline_in_chromium_and_draws_its_charts(repeated, tmp_path):
    from browser_support import CHROMIUM, CHROMIUM_ARGS
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright

    runs_dir, run_ids, group = repeated
    out = tmp_path / "report.html"
    assert run_cli("report", group, "-o", str(out), runs_dir=runs_dir).returncode == 0
    left = []

    def guard(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:  # anything else would leave the machine
            left.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.route("**/*", guard)
        page.goto(out.as_uri())
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
        drawn = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
            .filter(gd => (gd.data || []).length > 0 && gd.querySelector('.scatterlayer .trace')).length""")
        names = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')]"
                              ".flatMap(gd => (gd.data || []).map(t => t.name))")
        browser.close()
    assert left == []
    assert drawn >= 4
    assert any(name.endswith("median") for name in names)
