"""Any Keras model on any data (issue 27): bad input refused at the edge, tiny real trainings, fair compares.

The fast tests write .npz files with numpy and drive the CLI in this process. The slow
ones write a model module and .keras files in a temporary folder (Keras in a subprocess:
this process never imports a framework) and train each for real on a few images.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, cli, finished_run, records, run_cli

from training.analysis import comparison, groups, listing, workload
from training.store import RunStore

TINY_NET = textwrap.dedent("""
    import keras
    from keras import layers

    def build(input_shape, num_classes):
        return keras.Sequential([keras.Input(input_shape), layers.Conv2D(4, 3, activation="relu"),
                                 layers.GlobalAveragePooling2D(),
                                 layers.Dense(num_classes, activation="softmax")])

    def nothing(input_shape, num_classes):
        return 42
""")

# Saved in a subprocess (Keras stays out of the test process): a small model on MNIST's shape, and
# one whose Lambda layer holds Python bytecode, which safe_mode must refuse.
SAVE_MODELS = textwrap.dedent("""
    import sys, keras
    from keras import layers
    folder = sys.argv[1]
    keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(4, 3, activation="relu"),
                      layers.GlobalAveragePooling2D(), layers.Dense(10, activation="softmax")]
                     ).save(folder + "/small.keras")
    keras.Sequential([keras.Input((28, 28, 1)), layers.Lambda(lambda x: x * 2.0), layers.Flatten(),
                      layers.Dense(10, activation="softmax")]).save(folder + "/unsafe.keras")
""")


def write_npz(path: Path, train: int = 64, test: int = 32, shape=(12, 12, 3), classes: int = 3, **override):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 255, (train, *shape), dtype=np.uint8),
              "y_train": rng.integers(0, classes, train),
              "x_test": rng.integers(0, 255, (test, *shape), dtype=np.uint8),
              "y_test": rng.integers(0, classes, test)}
    np.savez(path, **{**arrays, **override})
    return path


def run_folders(runs_dir: Path) -> list[Path]:
    return [p for p in runs_dir.iterdir() if p.is_dir()] if runs_dir.exists() else []


def assert_refused(result, option: str, text: str, runs_dir: Path) -> None:
    """Exit 2, one line naming the option and the problem, and no run folder."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}: "), result.stderr
    assert text in lines[0], lines[0]
    assert run_folders(runs_dir) == []


# -- bad input at the edge, without Keras ----------------------------------------------------------
def bad_inputs(tmp: Path) -> list[tuple[list[str], str, str]]:
    rng = np.random.default_rng(1)
    return [
        (["--model", str(tmp / "missing.keras")], "--model", "no such file"),
        (["--model", "no_such_module_here:build"], "--model", "no module no_such_module_here"),
        (["--model", "keras:not_an_app"], "--model", "not a Keras application"),
        (["--model", "keras:mobilenet_v2"], "--image-size", "at least 32x32"),
        (["--model", "keras:mobilenet_v2", "--image-size", "16"], "--image-size", "at least 32x32"),
        (["--image-size", "64"], "--image-size", "mnist-cnn fixes its own input shape"),
        (["--keep-weights"], "--keep-weights", "goes with a .keras model file"),
        (["--data", str(tmp / "missing.npz")], "--data", "no such file"),
        (["--data", str(write_npz(tmp / "counts.npz", y_train=np.zeros(60, dtype=int)))],
         "--data", "y_train has 60 labels for 64 images"),
        (["--data", str(write_npz(tmp / "negative.npz", y_test=-np.ones(32, dtype=int)))],
         "--data", "y_test has label -1"),
        (["--data", str(write_npz(tmp / "dtype.npz", x_train=rng.integers(0, 9, (64, 12, 12, 3))))],
         "--data", "x_train has dtype int64"),
        (["--data", str(write_npz(tmp / "flat.npz", x_test=np.zeros((32, 5), dtype=np.uint8)))],
         "--data", "x_test has shape (32, 5)"),
        (["--data", str(write_npz(tmp / "nokeys.npz", y_test=None))], "--data", "not a readable"),
        (["--data", str(write_npz(tmp / "rgb.npz"))], "--model", "mnist-cnn takes images of 28x28x1 but"),
        (["--data", str(write_npz(tmp / "classes.npz", shape=(28, 28), classes=12))], "--model",
         "has 10 outputs but"),
        (["--data", str(write_npz(tmp / "small.npz")), "--model", "keras:mobilenet_v2"], "--image-size",
         "has 12x12x3"),
        (["--data", str(write_npz(tmp / "few.npz")), "--limit-train", "100"], "--limit-train",
         "has 64 training images"),
        (["--data", "synthetic", "--model", "keras:resnet50", "--image-size", "512"], "--limit-train",
         "GiB"),
    ]


def test_each_bad_workload_exits_2_with_one_line_naming_the_option_and_no_run_folder(tmp_path, runs_dir):
    for args, option, text in bad_inputs(tmp_path):
        result = run_cli("run", *args, "--batch-size", "16", "--epochs", "1", "--detach", runs_dir=runs_dir)
        assert_refused(result, option, text, runs_dir)


def test_a_data_file_is_inspected_from_its_headers_with_its_classes(tmp_path):
    from training.store import datafile

    found = datafile.inspect(write_npz(tmp_path / "d.npz", shape=(9, 7), classes=4, train=40, test=8))
    assert found["image_shape"] == [9, 7, 1] and found["train"] == 40 and found["test"] == 8
    assert 2 <= found["classes"] <= 4  # the largest label + 1: random labels from 0 to 3


# -- compare across workloads (fabricated finished runs) -------------------------------------------
def test_compare_between_workloads_is_not_comparable_and_names_the_model_first(runs_dir):
    store = RunStore(runs_dir)
    cnn = finished_run(store, "cnn", epoch_s=(3.0, 2.0, 2.0))
    resnet = finished_run(store, "resnet", epoch_s=(3.0, 1.0, 1.0), model="keras:resnet50", data="synthetic",
                          image_size=64)
    result = run_cli("compare", cnn.id, resnet.id, runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr
    assert "speedup of B over A: not comparable: different model" in result.stdout
    assert "Workloads differ (model: A mnist-cnn, B keras:resnet50" in result.stdout
    assert re.search(r"time to 99\.00% +synthetic data: no accuracy", result.stdout)  # B: no accuracy
    data = json.loads(run_cli("compare", cnn.id, resnet.id, "--json", runs_dir=runs_dir).stdout)
    assert data["speedup"]["images_per_s"] is None and data["speedup"]["time_to_target"] is None
    assert data["runs"][1]["best_val_accuracy"] is None and data["runs"][1]["accuracy_note"]


def test_compare_between_two_devices_of_one_workload_gives_the_usual_speedup(runs_dir):
    store = RunStore(runs_dir)
    cpu = finished_run(store, "cpu", epoch_s=(3.0, 2.0, 2.0), model="keras:mobilenet_v2", image_size=32)
    gpu = finished_run(store, "gpu", device="gpu", epoch_s=(3.0, 1.0, 1.0), model="keras:mobilenet_v2",
                       image_size=32)
    result = run_cli("compare", cpu.id, gpu.id, runs_dir=runs_dir)
    assert "speedup of B over A: 2.00x in training images per training second" in result.stdout, result.stdout
    assert "not comparable" not in result.stdout and "Workloads differ" not in result.stdout


def test_an_older_log_reads_as_the_published_cnn_on_mnist_and_shares_its_cell(runs_dir):
    store = RunStore(runs_dir)
    new = finished_run(store, "new")
    old = finished_run(store, "old")
    meta = json.loads((old.folder / "config.json").read_text())
    for key in ("model", "data", "image_size", "keep_weights"):
        meta["config"].pop(key)
    (old.folder / "config.json").write_text(json.dumps(meta))
    old = store.open(old.id)
    row = listing.row(old, "this machine")
    assert (row["model"], row["data"], row["workload"]) == ("mnist-cnn", "mnist", "mnist-cnn on mnist")
    assert groups.sweep_key(old.meta["config"]) == groups.sweep_key(new.meta["config"])
    assert comparison.protocol(old.meta, None)["model"] == "mnist-cnn"


def test_the_synthetic_note_is_one_helper_every_view_can_call():
    assert workload.accuracy_note({"config": {"data": "synthetic"}}) == "synthetic data: no accuracy"
    assert workload.accuracy_note({"config": {}}) is None
    assert workload.blocker({"model": "a", "data": "mnist"}, {"model": "b", "data": "mnist"}) == \
        "not comparable: different model"


# -- real tiny trainings ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    (folder / "tinynet.py").write_text(TINY_NET)
    subprocess.run([sys.executable, "-c", SAVE_MODELS, str(folder)], check=True, capture_output=True,
                   env={**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}, timeout=300)
    return folder


def listed(runs_dir: Path, run_id: str) -> dict:
    rows = json.loads(cli("list", "--json", runs_dir=runs_dir).stdout)
    return next(row for row in rows if row["id"] == run_id)


def trained(result, runs_dir: Path) -> tuple[str, dict]:
    assert result.returncode == 0, (result.stdout, result.stderr[-3000:])
    run_id = result.stdout.strip().splitlines()[-1]
    start = records(runs_dir / run_id, "start")[0]
    assert len(records(runs_dir / run_id, "epoch")) == 2
    return run_id, start


@pytest.mark.slow
def test_a_model_function_from_the_current_folder_trains_on_an_npz_file(model_files, tmp_path, runs_dir):
    data = write_npz(model_files / "data.npz")
    result = subprocess.run(  # from the module's folder, as a user would: the current folder is searched
        [sys.executable, "-m", "training", "run", "--model", "tinynet:build", "--data", "data.npz",
         "--epochs", "2", "--batch-size", "16", "--no-system-metrics", "--runs-dir", str(runs_dir)],
        cwd=model_files, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    run_id, start = trained(result, runs_dir)
    assert start["workload"]["input_shape"] == [12, 12, 3] and start["workload"]["classes"] == 3
    assert start["train_samples"] == 64 and start["config"]["data"] == str(data)
    row = listed(runs_dir, run_id)
    assert (row["model"], row["workload"]) == ("tinynet:build", "tinynet:build on data.npz")


@pytest.mark.slow
def test_a_saved_keras_file_trains_with_fresh_weights(model_files, runs_dir, mnist_cached):
    result = cli("run", "--model", str(model_files / "small.keras"), "--epochs", "2", "--limit-train", "128",
                 "--limit-test", "64", "--batch-size", "32", "--no-system-metrics", runs_dir=runs_dir,
                 timeout=600)
    run_id, start = trained(result, runs_dir)
    assert start["workload"]["model_kind"] == "file" and start["workload"]["keep_weights"] is False
    assert listed(runs_dir, run_id)["workload"] == "small.keras on mnist"


@pytest.mark.slow
def test_mobilenet_v2_on_synthetic_data_trains_and_shows_no_accuracy(runs_dir):
    result = cli("run", "--model", "keras:mobilenet_v2", "--data", "synthetic", "--image-size", "32",
                 "--epochs", "2", "--limit-train", "64", "--limit-test", "32", "--batch-size", "32",
                 "--no-system-metrics", runs_dir=runs_dir, timeout=600)
    run_id, start = trained(result, runs_dir)
    assert start["workload"]["input_shape"] == [32, 32, 3] and start["workload"]["synthetic"] is True
    row = listed(runs_dir, run_id)
    assert row["workload"] == "keras:mobilenet_v2 on synthetic"
    assert row["best_val_accuracy"] is None and row["accuracy_note"] == "synthetic data: no accuracy"


@pytest.mark.slow
def test_an_unsafe_keras_file_and_a_function_that_returns_no_model_are_refused(model_files, runs_dir):
    env = {"PYTHONPATH": f"{model_files}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for args, text in ((["--model", str(model_files / "unsafe.keras")], "needs unsafe deserialisation"),
                       (["--model", "tinynet:nothing"], "returned int, not a keras.Model")):
        result = cli("run", *args, "--epochs", "1", "--detach", runs_dir=runs_dir, env=env, timeout=600)
        assert_refused(result, "--model", text, runs_dir)


# -- the dashboard's Train page --------------------------------------------------------------------
def train_page():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(ROOT / "pages" / "train.py"), default_timeout=120).run()


def test_the_train_page_shows_a_bad_workload_under_its_widget_and_disables_start(runs_dir, tmp_path):
    at = train_page()
    at.radio(key="workload_model").set_value("function").run()
    at.text_input(key="workload_function").set_value("no_such_module_here:build").run()
    assert any("no module no_such_module_here" in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="start_cpu").disabled is True
    at.radio(key="workload_model").set_value("cnn").run()
    at.radio(key="workload_data").set_value("file").run()
    at.text_input(key="workload_npz").set_value(str(write_npz(tmp_path / "rgb.npz", train=256))).run()
    assert any("mnist-cnn takes images of 28x28x1" in e.value for e in at.error)
    assert at.button(key="start_cpu").disabled is True and run_folders(runs_dir) == []


@pytest.mark.slow
def test_the_train_page_starts_mobilenet_on_synthetic_data(runs_dir):
    from conftest import wait_for

    at = train_page()
    at.radio(key="workload_model").set_value("keras").run()
    at.selectbox(key="workload_app").set_value("mobilenet_v2")
    at.number_input(key="workload_image_size").set_value(32)
    at.radio(key="workload_data").set_value("synthetic").run()
    at.number_input(key="epochs").set_value(2)
    at.number_input(key="batch_size").set_value(32)
    at.toggle(key="use_subset").set_value(True).run()
    at.number_input(key="limit_train").set_value(64)
    at.number_input(key="limit_test").set_value(32)
    at.button(key="start_cpu").click().run()
    assert not at.exception, [e.value for e in at.exception]
    [folder] = run_folders(runs_dir)
    store = RunStore(runs_dir)
    wait_for(lambda: store.open(folder.name).status() in ("finished", "failed"), timeout=600, interval=1,
             what="the page's run to end")
    row = listed(runs_dir, folder.name)
    assert row["status"] == "finished", (folder / "stderr.log").read_text()[-2000:]
    assert row["workload"] == "keras:mobilenet_v2 on synthetic" and row["accuracy_note"]


# -- tables, sweeps and clusters -------------------------------------------------------------------
def test_the_compare_table_says_not_comparable_and_synthetic_instead_of_numbers(runs_dir):
    from training.analysis import tables
    from training.analysis.series import load_series

    store = RunStore(runs_dir)
    cnn = finished_run(store, "cnn")
    mobile = finished_run(store, "mobile", model="keras:mobilenet_v2", data="synthetic", image_size=32)
    rows = tables.comparison_rows(load_series([cnn, mobile]), cnn.id, 0.99)
    assert rows[1]["Speedup"] == "not comparable: different model"
    assert rows[1]["Best val acc"] == rows[1]["Time to 99.00%"] == "synthetic data: no accuracy"
    assert rows[0]["Best val acc"].endswith("(epoch 3)")  # the published CNN's accuracy still shows
    assert "keras:mobilenet_v2 on synthetic" in load_series([mobile])[0].label


def test_a_sweep_over_models_sizes_only_the_applications_and_refuses_a_bad_model_before_any_folder(runs_dir):
    dry = run_cli("sweep", "--model", "mnist-cnn,keras:mobilenet_v2", "--data", "synthetic", "--image-size",
                  "32", "--dry-run", runs_dir=runs_dir)
    assert dry.returncode == 0 and dry.stdout.splitlines() == ["repeat 1: mnist-cnn",
                                                               "repeat 1: keras:mobilenet_v2"], dry
    bad = run_cli("sweep", "--model", "mnist-cnn,missing.keras", "--detach", runs_dir=runs_dir)
    assert bad.returncode == 2 and "--model: no such file" in bad.stderr and run_folders(runs_dir) == []


def test_a_ray_job_carries_the_model_and_data_files_and_refuses_one_over_the_cap(tmp_path):
    from training.config import ConfigError, make_config
    from training.launch import cluster

    data = write_npz(tmp_path / "d.npz")
    model = tmp_path / "m.keras"
    model.write_bytes(b"k")
    files, on_node = cluster.carried(make_config(model=str(model), data=str(data)))
    assert files == {"workload/model-m.keras": model, "workload/data-d.npz": data}
    assert (on_node.model, on_node.data) == ("workload/model-m.keras", "workload/data-d.npz")
    with open(model, "wb") as handle:  # sparse: over the cap without writing 64 MiB
        handle.truncate(cluster.MAX_CARRY_BYTES + 1)
    with pytest.raises(ConfigError) as refused:
        cluster.carried(make_config(model=str(model)))
    assert refused.value.field == "model" and "m.keras is 64.0 MiB; a Ray job carries at most 64" in str(
        refused.value)


def test_groups_of_different_workloads_are_not_divided(runs_dir):
    store = RunStore(runs_dir)
    for repeat in range(2):
        for run in (finished_run(store, f"cnn {repeat}"),
                    finished_run(store, f"mobile {repeat}", model="keras:mobilenet_v2", data="synthetic",
                                 image_size=32)):
            meta = json.loads((run.folder / "config.json").read_text())  # as sweeps.queue writes a group
            meta.update(group="g-1", group_kind="sweep", group_name="", repeat=repeat)
            (run.folder / "config.json").write_text(json.dumps(meta))
    result = run_cli("compare", "g-1", runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr
    assert "speedup of B over A: not comparable: different model" in result.stdout, result.stdout
