"""Keras backends, precision, XLA and the system sampler, on the CPU.

JAX and PyTorch run the same model through Keras 3; CI installs their CPU builds
(requirements-backends.txt). No GPU here: the GPU path is the fail-fast check.
"""

from __future__ import annotations

import importlib.util
import json
import time

import pytest
from conftest import TINY, assert_well_formed, cli, only_run, records

from training.analysis.series import legend_label
from training.store import RunStore

BACKENDS = [
    "tensorflow",
    "jax",
    pytest.param("torch", marks=pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                                   reason="torch is not installed")),
]


@pytest.mark.parametrize("backend", ["jax", BACKENDS[2]])
def test_fit_trains_on_each_backend(backend, runs_dir, mnist_cached):
    result = cli("run", "--backend", backend, "--epochs", "2", *TINY, runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = only_run(runs_dir)
    assert_well_formed(run_dir, epochs=2, train=1024, backend=backend)
    meta = RunStore(runs_dir).open(run_dir.name).meta
    assert meta["backend"] == backend and backend in legend_label(meta)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gpu_on_each_backend_fails_fast_without_a_gpu(backend, runs_dir, mnist_cached):
    started = time.monotonic()
    result = cli("run", "--backend", backend, "--device", "gpu", "--epochs", "1", *TINY, runs_dir=runs_dir)
    assert result.returncode == 1 and time.monotonic() - started < 60
    assert f"the {backend} backend sees no GPU" in result.stderr
    assert not records(only_run(runs_dir), "epoch")


def test_loop_engine_is_tensorflow_only(runs_dir):
    result = cli("run", "--engine", "loop", "--backend", "jax", runs_dir=runs_dir)
    assert result.returncode == 2 and "--engine" in result.stderr and "TensorFlow" in result.stderr
    assert not runs_dir.exists()


@pytest.mark.parametrize(("engine", "backend", "precision", "jit", "compiled"), [
    ("fit", "tensorflow", "mixed_bfloat16", "off", False),
    ("loop", "tensorflow", "mixed_float16", "on", True),  # loss scaling in the custom loop
    ("fit", "jax", "mixed_bfloat16", "on", True),
])
def test_precision_and_jit_are_applied_and_recorded(engine, backend, precision, jit, compiled,
                                                    runs_dir, mnist_cached):
    result = cli("run", "--engine", engine, "--backend", backend, "--precision", precision, "--jit", jit,
                 "--epochs", "1", *TINY, runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = only_run(runs_dir)
    start = records(run_dir, "start")[0]
    assert start["config"]["precision"] == precision and start["jit_compile"] is compiled
    [epoch] = records(run_dir, "epoch")
    assert 0 <= epoch["val_accuracy"] <= 1 and epoch["loss"] > 0
    assert f"{precision} · jit {jit}" in legend_label(RunStore(runs_dir).open(run_dir.name).meta)


def test_steps_per_execution_reaches_keras_and_the_legend(runs_dir, mnist_cached):
    result = cli("run", "--backend", "jax", "--jit", "on", "--steps-per-execution", "4", "--epochs", "2",
                 *TINY, runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = only_run(runs_dir)
    start = records(run_dir, "start")[0]
    assert start["config"]["steps_per_execution"] == 4
    assert start["steps_per_execution"] == 4  # what model.compile took, read back from the model
    first, second = records(run_dir, "epoch")
    assert second["loss"] > 0 and 0 <= second["val_accuracy"] <= 1  # 8 batches: 2 calls of 4 steps
    # JAX runs the steps asynchronously; the clock waits for them before evaluating. Training
    # 1,024 images (forward and backward) is several times the work of evaluating 512, so an
    # epoch that charged its queued steps to evaluation would show train_s far below eval_s.
    assert second["train_s"] > second["eval_s"], second
    assert legend_label(RunStore(runs_dir).open(run_dir.name).meta).endswith("jit on · 4 steps/call")


def test_system_sampler_writes_cpu_records_and_no_gpu_fields(runs_dir, mnist_cached):
    # ~4 s of training: 512 batches of 8.
    result = cli("run", "--epochs", "1", "--batch-size", "8", "--limit-train", "4096", "--limit-test", "256",
                 runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = (only_run(runs_dir) / "system.jsonl").read_text().splitlines()
    samples = [json.loads(line) for line in lines]
    assert len(samples) >= 2
    for sample in samples:
        assert sample["type"] == "system" and "gpus" not in sample
        assert 0 <= sample["system_cpu_percent"] <= 100
        assert sample["process_cpu_percent"] >= 0 and sample["rss_mb"] > 100  # TensorFlow is loaded
    assert max(s["process_cpu_percent"] for s in samples) > 50  # it saw the training work
    assert [s["elapsed_s"] for s in samples] == sorted(s["elapsed_s"] for s in samples)


def test_no_system_metrics_means_no_sampler_file(runs_dir, mnist_cached):
    result = cli("run", "--epochs", "1", "--no-system-metrics", *TINY, runs_dir=runs_dir)
    assert result.returncode == 0
    assert not (only_run(runs_dir) / "system.jsonl").exists()
