"""The Scaling view across models: GPU-over-CPU speedup against the model's FLOPs per image.

Finished runs are written as run folders with hand-made epoch records and a start
record carrying the backend's FLOP count (`flops`), as a sweep over models would have
left them: three models, CPU and GPU, two repeats each. The rates are chosen so the
GPU loses on the small model and wins on the large ones, so the crossover and every
speedup are known by hand.
"""

from __future__ import annotations

import math

import pytest
from conftest import ROOT, chart_specs
from streamlit.testing.v1 import AppTest

from training.analysis import groups, report, scaling
from training.analysis.series import load_series
from training.config import make_config
from training.store import RunStore
from training.store.layout import METRICS_FILE
from training.store.logwriter import encode

# model -> (forward FLOPs per image, CPU steady samples/s of the two repeats, GPU's)
SWEEP = {"mnist-cnn": (5_256_616, (4_000.0, 5_000.0), (2_000.0, 2_500.0)),            # GPU 0.5x
         "keras:mobilenet_v2": (12_533_233, (1_000.0, 1_000.0), (2_000.0, 2_000.0)),   # GPU 2x
         "keras:resnet50": (550_764_608, (50.0, 100.0), (600.0, 600.0))}               # GPU 8x (6x-12x)


def make_run(store: RunStore, model: str, device: str, rate: float, repeat: int, forward: int | None,
             data: str = "synthetic", batch: int = 128):
    """A finished run of the sweep "g-models": 1,000 images per epoch at `rate` images/s after epoch 1."""
    config = make_config(device=device, batch_size=batch, epochs=3, limit_train=1000, model=model, data=data)
    meta = {"name": f"{model} {device}", "source": "local", "device": device, "engine": "fit",
            "backend": "jax", "epochs": 3, "train_samples": 1000, "config": config.to_dict(),
            "group": "g-models", "group_kind": "sweep", "group_name": "", "repeat": repeat}
    start = {"type": "start", "config": config.to_dict(), "train_samples": 1000, "test_samples": 100,
             "hardware": {"cpu_model": "test", "cpu_logical_cores": 2}}
    if forward is not None:
        start["flops"] = {"forward": forward, "method": "xla-cost-analysis", "uncounted": [], "error": None}
    log = encode(start)
    elapsed = 0.0
    for epoch in (1, 2, 3):
        seconds = 1000 / (rate / 4 if epoch == 1 else rate)  # epoch 1 warms up: left out of the steady state
        elapsed += seconds
        log += encode({"type": "epoch", "epoch": epoch, "loss": 1.0, "accuracy": 0.1, "val_loss": 1.0,
                       "val_accuracy": 0.1, "epoch_time_s": seconds, "train_s": seconds, "eval_s": 0.0,
                       "samples": 1000, "samples_per_s": 1000 / seconds, "elapsed_s": elapsed,
                       "cpu_s": seconds, "time": 1e9 + elapsed})
    log += encode({"type": "end", "status": "finished"})
    return store.create(meta, "finished", files={METRICS_FILE: log})


@pytest.fixture
def models_store(runs_dir) -> RunStore:
    store = RunStore(runs_dir)
    for repeat in range(2):  # interleaved, as a sweep is queued
        for model, (forward, cpu, gpu) in SWEEP.items():
            make_run(store, model, "cpu", cpu[repeat], repeat, forward)
            make_run(store, model, "gpu", gpu[repeat], repeat, forward)
    return store


def points_of(store: RunStore) -> list[dict]:
    return scaling.scaling_points(load_series(store.runs()))


def test_a_sweep_over_models_splits_into_one_cell_per_model_and_device(models_store):
    cells = groups.cells([run for run in models_store.runs() if run.meta.get("group") == "g-models"])
    assert len(cells) == 6 and all(len(cell) == 2 for cell in cells)
    assert all(len({run.meta["config"]["model"] for run in cell}) == 1 for cell in cells)


def test_speedup_against_flops_per_image_is_one_point_per_model_with_its_range(models_store):
    [(name, line)] = scaling.flops_speedup_lines(points_of(models_store)).items()
    assert name == "jax · batch 128"
    assert [e["workload"] for e in line] == [f"{m} on synthetic" for m in SWEEP]  # sorted by FLOPs per image
    assert [e["flops_per_image"] for e in line] == [forward for forward, _, _ in SWEEP.values()]
    assert [e["speedup"] for e in line] == pytest.approx([2_250 / 4_500, 2.0, 600 / 75])
    resnet = line[2]
    assert (resnet["low"], resnet["high"]) == pytest.approx((600 / 100, 600 / 50))  # GPU min / CPU max
    assert resnet["runs"] == (2, 2)


def test_the_crossover_lies_between_the_model_the_cpu_wins_and_the_one_the_gpu_wins(models_store):
    figure = scaling.make_flops_speedup_figure(points_of(models_store))
    assert figure.layout.xaxis.type == "log" and figure.layout.yaxis.type == "log"
    line, star = figure.data
    assert list(line.text) == [f"{m} on synthetic" for m in SWEEP]
    # 0.5x at 5.26 MFLOP, 2x at 12.5 MFLOP: speedup 1 halfway in log(FLOPs), the geometric mean.
    where = math.exp(math.log(5_256_616) + (1 - 0.5) / (2 - 0.5) * math.log(12_533_233 / 5_256_616))
    assert star.x[0] == pytest.approx(where) and star.y[0] == 1.0
    assert star.text[0] == f"crossover ≈ {where / 1e6:,.3g} MFLOP/image"


def test_lines_never_mix_models_and_name_the_workload(models_store):
    points = points_of(models_store)
    names = {trace.name for trace in scaling.make_scaling_figure(points).data}
    assert names == {f"{d} · jax · {m} on synthetic" for d in ("CPU", "GPU") for m in SWEEP}
    speedups = scaling.speedup_lines(points)
    assert speedups["jax · keras:resnet50 on synthetic"] == [(128, pytest.approx(8.0))]
    assert len(speedups) == 3


def test_a_workload_without_a_flop_count_is_left_out_and_one_model_alone_draws_no_trend(runs_dir):
    store = RunStore(runs_dir)
    for device, rate in (("cpu", 1_000.0), ("gpu", 2_000.0)):
        make_run(store, "keras:resnet50", device, rate, 0, forward=None)  # neither `flops` nor `layers`
        make_run(store, "keras:mobilenet_v2", device, rate, 0, forward=12_533_233)
    assert scaling.flops_speedup_lines(points_of(store)) == {}


def test_the_published_cnn_on_mnist_keeps_its_plain_line_names(runs_dir):
    store = RunStore(runs_dir)
    make_run(store, "mnist-cnn", "cpu", 1_000.0, 0, 5_256_616, data="mnist")
    [trace] = scaling.make_scaling_figure(points_of(store)).data
    assert trace.name == "CPU · jax"


def test_the_scaling_page_draws_the_model_size_view_for_a_sweep_over_models(models_store):
    at = AppTest.from_file(str(ROOT / "pages/scaling.py"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="scaling_group").value == "g-models"
    specs = chart_specs(at)
    assert any("against model size" in spec for spec in specs)
    assert any("crossover" in spec for spec in specs)


def test_the_report_of_a_sweep_over_models_carries_the_model_size_view(models_store):
    charts = report.charts(load_series(models_store.runs()), 0.99)
    [flops] = [figure for figure in charts if "against model size" in (figure.layout.title.text or "")]
    named = sorted(trace.name for trace in flops.data if trace.showlegend is not False)
    assert named == ["GPU / CPU · jax · batch 128"]
    assert [round(y, 6) for y in flops.data[0].y] == [0.5, 2.0, 8.0]  # 2,250 / 4,500, 2,000 / 1,000, 600 / 75
