"""AppTest of the group features: Repeats, the sweep preview, grouped Compare and Scaling.

Group runs here are written as finished run folders with hand-made epoch records, so
the pages' numbers can be checked by hand; the Repeats test queues real workers while
the test holds the queue lock, and stops them before any trains.
"""

from __future__ import annotations

import fcntl
import os

import pytest
from conftest import ROOT, chart_specs, stop_active, verdict_cards
from streamlit.testing.v1 import AppTest

from training.config import make_config
from training.store import RunStore
from training.store.layout import METRICS_FILE
from training.store.logwriter import encode
from training.store.queue import LOCK_NAME


def page(path: str) -> AppTest:
    return AppTest.from_file(str(ROOT / path), default_timeout=60)


def no_exceptions(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def make_run(store: RunStore, group: str, device: str, batch: int, epoch_s: list[float], repeat: int = 0):
    """A finished run of a group: 1,000 training images per epoch, `epoch_s` seconds each."""
    config = make_config(device=device, batch_size=batch, epochs=len(epoch_s), limit_train=1000)
    meta = {"name": f"{device} b{batch}", "source": "local", "device": device, "engine": "fit",
            "backend": "tensorflow", "epochs": len(epoch_s), "train_samples": 1000,
            "config": config.to_dict(), "group": group, "group_kind": "sweep", "group_name": "",
            "repeat": repeat}
    log = encode({"type": "start", "hardware": {"cpu_model": "test", "cpu_logical_cores": 2}})
    elapsed = 0.0
    for epoch, seconds in enumerate(epoch_s, start=1):
        elapsed += seconds
        log += encode({"type": "epoch", "epoch": epoch, "loss": 1.0 / epoch, "accuracy": 0.5,
                       "val_loss": 1.0 / epoch, "val_accuracy": 0.9 + 0.01 * epoch, "epoch_time_s": seconds,
                       "train_s": seconds, "eval_s": 0.0, "samples_per_s": 1000 / seconds,
                       "elapsed_s": elapsed, "cpu_s": seconds, "time": 1e9 + elapsed})
    log += encode({"type": "end", "status": "finished"})
    return store.create(meta, "finished", files={METRICS_FILE: log})


@pytest.fixture
def sweep_store(runs_dir) -> RunStore:
    """A CPU/GPU sweep over batch 32 and 256, 3 repeats each: steady epochs of known seconds."""
    store = RunStore(runs_dir)
    steady = {("cpu", 32): [2.0, 2.5, 4.0], ("cpu", 256): [1.0, 1.25, 2.0],
              ("gpu", 32): [4.0, 5.0, 8.0], ("gpu", 256): [0.25, 0.5, 1.0]}
    for repeat in range(3):
        for (device, batch), seconds in steady.items():
            make_run(store, "g-sweep", device, batch, [9.0, seconds[repeat]], repeat)
    return store


def test_repeats_field_queues_one_group(runs_dir, mnist_cached):
    runs_dir.mkdir(parents=True)
    lock = os.open(runs_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(lock, fcntl.LOCK_EX)  # the workers wait in the queue; none trains
    store = RunStore(runs_dir)
    try:
        at = no_exceptions(page("pages/train.py").run())
        at.number_input(key="repeats").set_value(2)
        at.number_input(key="epochs").set_value(2)
        no_exceptions(at.button(key="start_cpu").click().run())
        run_ids = [i for i in store.ids() if not i.startswith("ref-")]
        assert len(run_ids) == 2
        metas = [store.open(i).meta for i in run_ids]
        assert metas[0]["group"] == metas[1]["group"] and [m["repeat"] for m in metas] == [0, 1]
        assert all(m["config"]["epochs"] == 2 and m["device"] == "cpu" for m in metas)
        assert any(f"as group {metas[0]['group']}" in s.value for s in at.success)
    finally:
        stop_active(store)
        os.close(lock)


def test_sweep_preview_counts_runs_and_estimates_from_past_runs(sweep_store):
    at = no_exceptions(page("pages/train.py").run())
    at.number_input(key="repeats").set_value(3)
    at.text_input(key="sweep_batches").set_value("32, 256, 1024").run()
    no_exceptions(at)
    [preview] = [m.value for m in at.markdown if "runs**" in m.value]
    assert preview.startswith("**9 runs** (3 configurations × 3 repeats, interleaved)")
    assert "6 of 9 runs from past runs with the same settings" in preview
    # Past CPU runs took 2.5 s (batch 32) and 1.25 s (batch 256) per steady epoch of 1,000 images;
    # the form's 30 epochs of 60,000 images scale that per image; batch 1,024 is the rough guess
    # (3,000 images/s); every run adds 15 s of start-up.
    per_repeat = 30 * 60_000 * (2.5 / 1000 + 1.25 / 1000 + 1 / 3000)
    minutes = (3 * per_repeat + 9 * 15) / 60
    shown = float(preview.split("about **")[1].split(" min")[0].replace(",", ""))
    assert shown == pytest.approx(minutes, abs=0.06)
    assert at.button(key="start_sweep").disabled is False
    at.multiselect(key="sweep_devices").set_value(["cpu", "gpu"]).run()
    assert at.button(key="start_sweep").disabled is True  # no GPU on this machine
    assert any("Cannot queue this sweep: --device gpu" in w.value for w in at.warning)


def test_grouped_compare_shows_median_and_spread(sweep_store):
    at = no_exceptions(page("pages/compare.py").run())
    at.multiselect(key="compare_runs").set_value([])
    at.multiselect(key="compare_groups").set_value(["g-sweep"]).run()
    at.toggle(key="group_repeats").set_value(True)
    at.number_input(key="price_cpu").set_value(3.6)
    first_cpu32 = next(i for i in sweep_store.ids() if sweep_store.open(i).meta.get("name") == "cpu b32")
    at.selectbox(key="baseline").set_value(first_cpu32).run()  # speedups against the CPU batch-32 cell
    no_exceptions(at)
    default = list(at.dataframe[0].value.columns)  # the few that answer the question fit 1,400 px
    assert default == ["Group", "n", "Steady epoch (median)", "Images/s (training, median)",
                       "Speedup (median)", "Speedup 95% CI", "Time to 99.00% (median)"]
    more = at.multiselect(key="more_group_summary")
    more.set_value(more.options).run()  # every other column, one click away
    table = at.dataframe[0].value
    rows = {row["Group"]: row for row in table.to_dict("records")}
    cpu32 = rows["cpu b32 · CPU · fit/tensorflow (n=3)"]
    assert cpu32["n"] == 3 and cpu32["Steady epoch (median)"] == "2.50 s"
    assert cpu32["Steady epoch (min–max)"] == "2.00–4.00 s" and cpu32["Olympic mean"] == "2.50 s"
    assert cpu32["Images/s (training, median)"] == "400"
    assert cpu32["Images/s (training, min–max)"] == "250–500"
    assert "Speedup from" not in table  # said once, above the table
    assert any("ratios of steady-state training images/s" in c.value for c in at.caption)
    assert cpu32["Energy / epoch"] == "not measured"
    assert cpu32["Cost of run"] == f"{3.6 * (9 + 2.5) / 3600:,.4f}"  # median total 11.5 s at 3.60/h
    gpu256 = rows["gpu b256 · GPU · fit/tensorflow (n=3)"]
    assert gpu256["Speedup (median)"] == "5.00×" and gpu256["Speedup (range)"] == "2.00–16.00×"
    assert gpu256["Cost of run"] == "no price"
    # The verdict on top gives the same bootstrap interval over the runs as the table, not the range.
    [said] = [card["words"] for card in verdict_cards(at) if card["words"].startswith("gpu b256 · GPU")]
    low, high = (float(x) for x in gpu256["Speedup 95% CI"].rstrip("×").split("–"))
    assert 2.0 <= low < 5.0 < high <= 16.0  # inside the repeats' extremes, around the median
    assert "5.00× faster than cpu b32 · CPU · fit/tensorflow (n=3) (95% CI " in said
    words = said.split("(95% CI ")[1].split("×)")[0]
    assert [float(x) for x in words.split("–")] == pytest.approx([low, high], rel=0.01)
    assert "range" not in said and "its median run" in said
    # A price for the GPU cell alone: its own key, nothing else changes.
    [gpu_price] = [n for n in at.number_input
                   if n.key.startswith("price_g-sweep:") and n.label.startswith("gpu b256")]
    gpu_price.set_value(36.0).run()
    rows = {row["Group"]: row for row in at.dataframe[0].value.to_dict("records")}
    gpu_total = rows["gpu b256 · GPU · fit/tensorflow (n=3)"]
    assert gpu_total["Cost of run"] not in ("no price", "—")
    assert rows["cpu b32 · CPU · fit/tensorflow (n=3)"]["Cost of run"] == cpu32["Cost of run"]
    at.button_group(key="charts").set_value(["val_acc_epoch", "epoch_time"]).run()
    specs = chart_specs(at)
    assert len(specs) == 2  # only the chosen charts are built and sent
    assert any('"tonexty"' in spec for spec in specs)  # min-max bands
    assert any("legendonly" in spec for spec in specs)  # the single runs, one click away
    assert at.get("download_button")


def test_scaling_page_plots_a_sweep_and_marks_the_crossover(sweep_store):
    at = no_exceptions(page("pages/scaling.py").run())
    assert at.selectbox(key="scaling_group").value == "g-sweep"
    specs = chart_specs(at)
    assert len(specs) == 2  # samples/s against batch size, and the speedup; no threads variation
    assert '"type":"log"' in specs[0].replace(" ", "")
    assert "crossover ≈" in specs[1] or "crossover \\u2248" in specs[1]
    at.radio(key="scaling_source").set_value("Picked runs").run()
    no_exceptions(at)
    assert [i.value for i in at.info] == [  # nothing picked: say so, not "no steady state"
        "Pick runs trained here (above) to plot their samples/s against batch size."]
    one_epoch = make_run(sweep_store, "g-other", "cpu", 64, [3.0])
    at.multiselect(key="scaling_runs").set_value([one_epoch.id]).run()
    assert any("has a steady state yet: it needs two finished epochs" in i.value for i in at.info)
