"""Speedups on work per second, protocol differences, FLOPs per image and utilisation.

Runs here are finished run folders written with hand-made records, so every figure
can be checked by hand; the published runs are the shipped ones. One test measures a
real peak with the torch backend (a few seconds) into a cache of its own.
"""

from __future__ import annotations

import json
import os
import re

import pytest
from conftest import ROOT, chart_specs, cli
from streamlit.testing.v1 import AppTest

from training.analysis import comparison, flops, grouping, report
from training.analysis.series import load_series
from training.config import make_config
from training.imports.runs import PUBLISHED_LAYERS
from training.store import RunStore
from training.store.layout import METRICS_FILE
from training.store.logwriter import encode

PEAK = 100e9  # the fabricated runs' measured peak, FLOP/s
GPU_RATE = 60_000 / 3.86  # the published GPU run's steady images per epoch second: 15,544


def make_run(store: RunStore, name: str, train: int, test: int, rate: float, eval_s: float,
             batch: int = 128, precision: str = "float32", epochs: int = 3) -> str:
    """A finished CPU run of `train` images per epoch at `rate` training images/s."""
    config = make_config(batch_size=batch, epochs=epochs, precision=precision,
                         limit_train=None if train == 60_000 else train,
                         limit_test=None if test == 10_000 else test, name=name)
    meta = {"name": name, "source": "local", "device": "cpu", "engine": "fit", "backend": "tensorflow",
            "epochs": epochs, "train_samples": train, "config": config.to_dict()}
    log = encode({"type": "start", "train_samples": train, "test_samples": test, "layers": PUBLISHED_LAYERS,
                  "peak": {"flops_per_s": PEAK, "backend": "tensorflow", "device": "cpu"},
                  "hardware": {"cpu_model": "test", "cpu_logical_cores": 2, "gpu_names": []}})
    elapsed = 0.0
    for epoch in range(1, epochs + 1):
        train_s = train / rate
        elapsed += train_s + eval_s
        log += encode({"type": "epoch", "epoch": epoch, "loss": 1 / epoch, "accuracy": 0.9,
                       "val_loss": 1 / epoch, "val_accuracy": 0.985 + 0.003 * epoch, "train_s": train_s,
                       "eval_s": eval_s, "epoch_time_s": train_s + eval_s, "samples": train,
                       "samples_per_s": rate, "elapsed_s": elapsed, "cpu_s": train_s})
    log += encode({"type": "end", "status": "finished"})
    return store.create(meta, "finished", files={METRICS_FILE: log}).id


@pytest.fixture
def store(runs_dir) -> RunStore:
    return RunStore(runs_dir)


# --- FLOPs --------------------------------------------------------------------------------------

def test_flop_count_of_the_published_cnn_matches_a_hand_count():
    # Multiply-add = 2 FLOPs, + 1 per output for a bias; BN 2, ReLU 1, softmax 3 per element;
    # a 2x2 max-pool 3 comparisons per output.
    conv1 = 2 * (5 * 5 * 1) * (24 * 24 * 24) + 24 * 24 * 24       # 28x28x1 -> 24x24x24
    bn1, relu1 = 2 * 13_824, 13_824
    pool1 = 3 * (12 * 12 * 24)
    conv2 = 2 * (5 * 5 * 24) * (8 * 8 * 48) + 8 * 8 * 48          # 12x12x24 -> 8x8x48
    bn2, relu2 = 2 * 3_072, 3_072
    pool2 = 3 * (4 * 4 * 48)
    dense1 = 2 * 768 * 512 + 512
    bn3, relu3 = 2 * 512, 512
    dense2 = 2 * 512 * 10 + 10 + 3 * 10                           # softmax on its 10 outputs
    hand = conv1 + bn1 + relu1 + pool1 + conv2 + bn2 + relu2 + pool2 + dense1 + bn3 + relu3 + dense2
    assert hand == 5_256_616  # ~5.2 MFLOP forward per image
    assert flops.forward_flops(PUBLISHED_LAYERS) == hand
    counted = flops.model_flops({"layers": PUBLISHED_LAYERS})
    assert counted == {"forward": hand, "train_image": 3 * hand, "eval_image": hand, "method": "layers",
                       "uncounted": []}


def test_a_layer_that_cannot_be_counted_names_itself():
    with pytest.raises(flops.FlopsError, match=r"layers\[1\]\.class: no FLOP count for 'LSTM'"):
        flops.forward_flops([PUBLISHED_LAYERS[0], {"class": "LSTM", "output": [4]}])
    with pytest.raises(flops.FlopsError, match=r"layers\[0\]\.kernel"):
        flops.forward_flops([{**PUBLISHED_LAYERS[0], "kernel": None}])
    assert flops.model_flops({"type": "start"}) is None  # an older log: FLOPs unknown, not guessed
    used = flops.efficiency([], {"layers": [{"class": "LSTM", "output": [4]}]}, 10)
    assert used["flops_per_train_image"] is None  # a page shows the cause instead of failing
    assert used["flops_error"] == "layers[0].class: no FLOP count for 'LSTM'"


def test_the_published_runs_carry_the_same_layers_and_a_datasheet_peak(store):
    gpu = load_series([store.open("ref-tensorflow-gpu")])[0]
    used = comparison.describe(gpu.epochs, gpu.meta, gpu.start)
    assert used["flops_per_train_image"] == 3 * 5_256_616 and used["peak_flops_per_s"] is None
    whole = (60_000 * 3 * 5_256_616 + 10_000 * 5_256_616) / 3.86  # per steady epoch second
    assert used["achieved_epoch_flops_per_s"] == pytest.approx(whole, rel=0.01)
    assert used["utilisation"] is None  # no measured peak for a 2018 GPU
    assert used["datasheet_peak_flops_per_s"] == 8.87e12
    assert used["datasheet_utilisation"] == pytest.approx(whole / 8.87e12, rel=0.01)


# --- speedups that stay true across subset sizes ------------------------------------------------

def test_subset_run_against_the_published_gpu_run_compares_images_per_second(store):
    subset = make_run(store, "subset", train=6_000, test=1_000, rate=2_704, eval_s=0.1)
    result = cli("compare", subset, "ref-tensorflow-gpu", "--json", runs_dir=store.root)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    speed = data["speedup"]
    # The GPU did 15,544 images/s, the subset 2,704: about 5.7x, though its epoch (2.3 s)
    # is shorter than the GPU's (3.86 s). An epoch-time ratio would say 0.6x.
    assert speed["images_per_s"] == pytest.approx(GPU_RATE / 2_704, rel=0.10)
    assert speed["basis"] == "epoch"  # the published run has no train/eval split
    assert speed["time_to_target"] is None
    assert speed["time_to_target_note"] == "different training images per epoch"
    assert data["protocol_note"].startswith("Protocols differ (training images per epoch: A 6,000, B 60,000")
    assert "test images: A 1,000, B 10,000" in data["protocol_note"]
    text = cli("compare", subset, "ref-tensorflow-gpu", runs_dir=store.root).stdout
    assert data["protocol_note"] in text
    [line] = [row for row in text.splitlines() if row.startswith("speedup of B over A")]
    assert "in training images per epoch second, evaluation included" in line
    assert float(re.search(r"([\d.]+)x", line).group(1)) == pytest.approx(GPU_RATE / 2_704, rel=0.10)
    assert "time to target not comparable (different training images per epoch)" in line


def test_compare_json_has_flops_achieved_peak_and_utilisation_per_run(store):
    a = make_run(store, "full", train=60_000, test=10_000, rate=2_000, eval_s=1.0)
    b = make_run(store, "fast", train=60_000, test=10_000, rate=3_000, eval_s=1.0)
    data = json.loads(cli("compare", a, b, "--json", runs_dir=store.root).stdout)
    run = data["runs"][0]
    assert run["flops_per_train_image"] == 15_769_848 and run["flops_per_eval_image"] == 5_256_616
    assert run["achieved_train_flops_per_s"] == pytest.approx(2_000 * 15_769_848)
    assert run["achieved_flops_per_s"] == run["achieved_train_flops_per_s"]
    epoch_s = 30.0 + 1.0
    assert run["achieved_epoch_flops_per_s"] == pytest.approx(
        (60_000 * 15_769_848 + 10_000 * 5_256_616) / epoch_s)
    assert run["peak_flops_per_s"] == PEAK
    assert run["utilisation"] == pytest.approx(2_000 * 15_769_848 / 100e9)  # 31.5%
    # Same protocol: no protocol line, training images/s, and a time-to-target ratio.
    assert data["protocol_note"] is None
    assert data["speedup"]["basis"] == "training" and data["speedup"]["images_per_s"] == pytest.approx(1.5)
    assert data["speedup"]["time_to_target"] == pytest.approx(31.0 / (20.0 + 1.0))
    text = cli("compare", a, b, runs_dir=store.root).stdout
    assert "Protocols differ" not in text and "31.54% of the measured peak 100.0 GFLOP/s" in text


def test_the_protocol_line_appears_exactly_when_protocols_differ():
    base = {"train_images": 60_000, "test_images": 10_000, "batch_size": 128, "precision": "float32",
            "optimizer": "SGD lr 0.05, momentum 0.9"}
    assert comparison.protocol_note([("A", base), ("B", dict(base))]) is None
    assert comparison.protocol_note([("A", base), ("B", {**base, "batch_size": None})]) is None
    batch = comparison.protocol_note([("A", base), ("B", {**base, "batch_size": 256})])
    assert batch == ("Protocols differ (batch size: A 128, B 256): speedups use images/s; "
                     "time to target is not comparable.")
    precision = comparison.protocol_note([("A", base), ("B", {**base, "precision": "mixed_bfloat16"})])
    assert precision == "Protocols differ (precision: A float32, B mixed_bfloat16): speedups use images/s."


def test_compare_page_subset_speedup_and_protocol_warning(store):
    subset = make_run(store, "subset", train=6_000, test=1_000, rate=2_704, eval_s=0.1)
    at = AppTest.from_file(str(ROOT / "pages/compare.py"), default_timeout=60).run()
    at.multiselect(key="compare_runs").set_value([subset, "ref-tensorflow-gpu"]).run()
    at.selectbox(key="baseline").set_value(subset).run()
    at.multiselect(key="more_comparison").set_value(["Time-to-target speedup", "Utilisation"]).run()
    assert not at.exception, [e.value for e in at.exception]
    rows = {row["Run"].split(" · ")[0]: row for row in at.dataframe[0].value.to_dict("records")}
    gpu = rows["TensorFlow GPU (published)"]
    assert float(gpu["Speedup"].rstrip("×")) == pytest.approx(GPU_RATE / 2_704, rel=0.10)
    assert any("epoch images/s (eval incl.)" in c.value for c in at.caption)  # the basis, said once
    assert gpu["Time-to-target speedup"] == "not comparable (different training images per epoch)"
    assert gpu["Utilisation"].endswith("of datasheet") and rows["subset"]["Utilisation"] == "42.6%"
    [warning] = [c.value for c in at.caption if "Protocols differ" in c.value]  # one orange line
    assert "training images per epoch: subset 6,000, TensorFlow GPU (published) 60,000" in warning


def test_compare_page_has_no_protocol_warning_for_equal_protocols(store):
    a = make_run(store, "one", train=6_000, test=1_000, rate=2_000, eval_s=0.1)
    b = make_run(store, "two", train=6_000, test=1_000, rate=2_500, eval_s=0.1)
    at = AppTest.from_file(str(ROOT / "pages/compare.py"), default_timeout=60).run()
    at.multiselect(key="compare_runs").set_value([a, b]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [c.value for c in at.caption if "Protocols differ" in c.value]
    at.selectbox(key="baseline").set_value(a).run()
    at.multiselect(key="more_comparison").set_value(["Time-to-target speedup"]).run()
    second = at.dataframe[0].value.to_dict("records")[1]
    assert second["Speedup"] == "1.25×"
    assert any("training images/s" in c.value for c in at.caption)  # the basis, said once
    assert second["Time-to-target speedup"] == f"{6.2 / 5.0:.2f}×"  # epoch 2 reaches 99%: 2 x (3 + 0.1) s


def test_report_of_a_subset_run_and_the_published_gpu_run(store):
    subset = make_run(store, "subset", train=6_000, test=1_000, rate=2_704, eval_s=0.1)
    series = load_series([store.open(subset), store.open("ref-tensorflow-gpu")])
    [_, gpu] = grouping.group_rows(grouping.group_series(series), 0.99)
    assert float(gpu["Speedup (median)"].rstrip("×")) == pytest.approx(GPU_RATE / 2_704, rel=0.10)
    page = report.build_report(series)
    assert f"<td>{gpu['Speedup (median)']}</td>" in page
    assert ("Protocols differ (training images per epoch: subset 6,000, TensorFlow GPU (published) 60,000"
            in page)
    assert "how many times more work per second B does than A" in page


def test_group_speedup_is_on_images_per_second_with_its_range():
    from training.analysis import stats

    def group(rates, trained=True):
        epochs = [[{"epoch": e, "samples": 1_000, "epoch_time_s": 1_000 / r + 0.5, "elapsed_s": e,
                    **({"train_s": 1_000 / r} if trained else {})} for e in (1, 2)] for r in rates]
        return stats.summarize([comparison.measure(runs) for runs in epochs])

    a, b = group([400, 500, 250]), group([2_000, 4_000, 1_000])
    speed = stats.rate_speedup(a, b)  # with its interval fields beside (tests/test_uncertainty.py)
    assert {k: speed[k] for k in ("median", "low", "high", "basis")} == {
        "median": 5.0, "low": 1_000 / 500, "high": 4_000 / 250, "basis": "training"}
    published = group([1_000], trained=False)  # whole epochs only: 1,000 images in 1.5 s
    speed = stats.rate_speedup(published, a)
    assert speed["basis"] == "epoch" and speed["median"] == pytest.approx((1_000 / 3.0) / (1_000 / 1.5))


def test_scaling_page_shows_utilisation_against_batch_size(store):
    from training.analysis import scaling

    small = make_run(store, "b64", train=6_000, test=1_000, rate=1_000, eval_s=0.1, batch=64)
    large = make_run(store, "b256", train=6_000, test=1_000, rate=3_000, eval_s=0.1, batch=256)
    points = scaling.scaling_points(load_series([store.open(small), store.open(large)]))
    figure = scaling.make_efficiency_figure(points)
    [line] = figure.data
    assert list(line.x) == [64, 256]
    assert list(line.y) == pytest.approx([1_000 * 15_769_848 / PEAK, 3_000 * 15_769_848 / PEAK])
    at = AppTest.from_file(str(ROOT / "pages/scaling.py"), default_timeout=60).run()
    at.radio(key="scaling_source").set_value("Picked runs").run()
    at.multiselect(key="scaling_runs").set_value([small, large]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Utilisation against batch size" in spec for spec in chart_specs(at))


# --- the measured peak --------------------------------------------------------------------------

def test_peak_measures_this_cpu_and_caches_it(tmp_path):
    cache = tmp_path / "peaks.json"
    result = cli("peak", "--backend", "torch", "--json", runs_dir=tmp_path / "runs", timeout=120,
                 env={"TRAINING_PEAK_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["flops_per_s"] > 1e8 and (answer["backend"], answer["device"]) == ("torch", "cpu")
    assert answer["dtype"] == "float32" and answer["cache"] == str(cache)
    stored = json.loads(cache.read_text())
    assert stored[f"{os.uname().nodename}|torch|cpu|float32"]["flops_per_s"] == answer["flops_per_s"]
    assert answer["cached_flops_per_s"] == answer["flops_per_s"]  # the first measurement is the best yet


def test_the_peak_cache_keeps_one_figure_per_machine_backend_device_precision_and_threads(tmp_path,
                                                                                           monkeypatch):
    from training.store import peaks

    monkeypatch.setenv(peaks.CACHE_ENV, str(tmp_path / "cache" / "peaks.json"))
    assert peaks.lookup("vm", "jax", "cpu", "float32") is None
    base = {"hostname": "vm", "backend": "jax", "device": "cpu", "precision": "float32"}
    peaks.remember({**base, "flops_per_s": 5e10, "threads": None})
    peaks.remember({**base, "flops_per_s": 2e10, "threads": 1})
    # A busier moment reads low; the cache keeps the best, and takes a better one.
    assert peaks.remember({**base, "flops_per_s": 3e10, "threads": None})["flops_per_s"] == 5e10
    assert peaks.lookup("vm", "jax", "cpu", "float32")["flops_per_s"] == 5e10
    assert peaks.remember({**base, "flops_per_s": 6e10, "threads": None})["flops_per_s"] == 6e10
    assert peaks.lookup("vm", "jax", "cpu", "float32")["flops_per_s"] == 6e10
    assert peaks.lookup("vm", "jax", "cpu", "float32", threads=1)["flops_per_s"] == 2e10
    assert peaks.lookup("vm", "jax", "cpu", "mixed_bfloat16") is None
    assert peaks.lookup("other", "jax", "cpu", "float32") is None


def test_a_utilisation_above_the_peak_is_flagged_not_shown_as_a_figure(store):
    # Training seconds that miss the work (JAX dispatches asynchronously): 30,000 images/s
    # at 15.8 MFLOP each is 473 GFLOP/s against a 100 GFLOP/s peak.
    fast = make_run(store, "async", train=6_000, test=1_000, rate=30_000, eval_s=2.0)
    data = json.loads(cli("compare", fast, "ref-tensorflow-gpu", "--json", runs_dir=store.root).stdout)
    run = data["runs"][0]
    assert run["utilisation"] == pytest.approx(30_000 * 15_769_848 / PEAK)
    whole = (6_000 * 15_769_848 + 1_000 * 5_256_616) / (0.2 + 2.0) / PEAK
    assert run["epoch_utilisation"] == pytest.approx(whole)
    text = cli("compare", fast, "ref-tensorflow-gpu", runs_dir=store.root).stdout
    assert f"({flops.ABOVE_PEAK}); whole epoch {whole:.2%}" in text


def test_compare_of_several_ids_uses_one_basis_and_says_what_differs(store):
    subset = make_run(store, "subset", train=6_000, test=1_000, rate=2_704, eval_s=0.1)
    full = make_run(store, "full", train=60_000, test=10_000, rate=2_704, eval_s=1.0)
    ids = (subset, full, "ref-tensorflow-gpu")
    data = json.loads(cli("compare", *ids, "--json", runs_dir=store.root).stdout)
    full_speed, gpu_speed = data["speedups"]
    assert {full_speed["images_per_s"]["basis"], gpu_speed["images_per_s"]["basis"]} == {"epoch"}
    # Same images/s on a tenth of the data: the same work per second, whatever the epoch times.
    subset_rate, full_rate = 6_000 / (6_000 / 2_704 + 0.1), 60_000 / (60_000 / 2_704 + 1.0)
    assert full_speed["images_per_s"]["median"] == pytest.approx(full_rate / subset_rate)
    assert gpu_speed["images_per_s"]["median"] == pytest.approx(GPU_RATE / subset_rate, rel=0.01)
    assert full_speed["time_to_target"] is None and gpu_speed["time_to_target"] is None
    assert full_speed["time_to_target_note"] == "different training images per epoch"
    assert data["protocol_note"].startswith("Protocols differ (training images per epoch: A 6,000, B 60,000, "
                                            "C 60,000")
    assert data["groups"][0]["utilisation"]["median"] == pytest.approx(2_704 * 15_769_848 / PEAK)
    text = cli("compare", *ids, runs_dir=store.root).stdout
    assert "utilisation          unknown: no measured peak in the logs" in text


def test_peak_on_a_gpu_the_backend_cannot_see_is_refused_not_measured_on_the_cpu(tmp_path):
    cache = tmp_path / "peaks.json"
    result = cli("peak", "--backend", "torch", "--device", "gpu", runs_dir=tmp_path / "runs", timeout=120,
                 env={"TRAINING_PEAK_CACHE": str(cache), "CUDA_VISIBLE_DEVICES": "-1"})
    assert result.returncode == 1
    assert "--device gpu: the torch backend sees no GPU" in result.stderr
    assert not cache.exists()
