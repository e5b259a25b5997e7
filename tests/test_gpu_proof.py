"""The GPU proof kit, on the CPU: the whole script in --smoke, its device check, its arguments.

No GPU exists here, so `--smoke` trains its "GPU" steps on the CPU (the script says so and
its device check then expects the CPU); everything else is the real path: real workers,
the sweep, summary.json, the tarball, and `import-runs` of that tarball into a fresh store.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tarfile
import time

import pytest
from conftest import ROOT, cli

sys.path.insert(0, str(ROOT / "bench"))

import gpu_proof  # noqa: E402
import proof_summary  # noqa: E402

SCRIPT = ROOT / "bench" / "gpu_proof.py"


@pytest.mark.slow
def test_smoke_follows_every_step_and_its_tarball_imports(tmp_path, mnist_cached):
    out = tmp_path / "out"
    started = time.monotonic()
    # --smoke cuts nothing for its budget: on a loaded machine it is slower, never different.
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "plan, budget 150 s" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert [s["key"] for s in summary["steps"]] == ["gpu-jax", "cpu-jax", "gpu-jax-fast", "gpu-resnet50",
                                                    "sweep"]  # the larger workload once: compiling it is slow
    assert not [s for s in summary["steps"] if s.get("skipped")], summary["steps"]
    assert summary["problems"] == []
    runs = {r["id"]: r for r in summary["runs"]}
    for run in runs.values():
        assert run["status"] == "finished" and run["epochs_done"] == 2 and run["device"] == "cpu"
        large = run["model"] == "keras:resnet50"
        assert run["steady_epoch_s"] > 0 and run["samples_per_s"] > 0
        assert run["train_samples"] == (128 if large else 2048) and run["flops_method"] == "xla-cost-analysis"
        assert run["versions"]["keras"].startswith("3.") and run["cpu_model"]
    fast = next(r for r in runs.values() if r["step"] == "gpu-jax-fast")
    assert fast["steps_per_execution"] == 64 and fast["jit"] == "on"
    assert sorted(r["batch_size"] for r in runs.values() if r["step"] == "sweep") == [128, 512]
    assert [row["batch_size"] for row in summary["sweep"]] == [128, 512]
    assert {s["what"] for s in summary["speedups"]} == {
        "jax: GPU over this host's CPU", "jax GPU: steps_per_execution + jit over the published setting"}
    [small] = summary["by_model_size"]  # the CNN; the smoke has no CPU run of ResNet-50 to pair
    assert small["model"] == "mnist-cnn" and small["flops_per_image"] == 5_256_625  # XLA's count
    resnet = next(r for r in runs.values() if r["step"] == "gpu-resnet50")
    assert resnet["flops_per_image"] > 10 * small["flops_per_image"] and resnet["data"] == "synthetic"
    assert json.loads((out / "doctor.json").read_text())["backends"]["jax"]["version"]
    [tarball] = out.glob("gpu-proof-*.tgz")
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert {"summary.json", "doctor.json", "host.json"} <= names
    assert all(f"runs/{run_id}/metrics.jsonl" in names for run_id in runs)
    # Brought home: every run joins a fresh store under its own id.
    imported = cli("import-runs", str(tarball), runs_dir=tmp_path / "home")
    assert imported.returncode == 0, imported.stderr
    assert sorted(imported.stdout.split()) == sorted(runs)
    print(f"smoke: {wall:.0f} s wall")  # the figure docs/benchmarks.md quotes (pytest -s shows it)


def test_epochs_shrink_to_the_budget_and_a_step_is_skipped_below_two():
    assert gpu_proof.affordable_epochs(5, startup_s=25, epoch_s=2, left_s=400) == 5
    assert gpu_proof.affordable_epochs(5, startup_s=25, epoch_s=2, left_s=32) == 3
    assert gpu_proof.affordable_epochs(5, startup_s=25, epoch_s=2, left_s=28) == 0  # 1 epoch: no steady state
    assert gpu_proof.affordable_epochs(5, startup_s=25, epoch_s=2, left_s=math.inf) == 5  # --smoke
    assert gpu_proof.affordable_repeats(100, left_s=250, most=3) == 2
    assert gpu_proof.affordable_repeats(100, left_s=99, most=3) == 0


def test_a_run_over_its_share_is_stopped_at_the_budget_at_the_latest():
    clock = gpu_proof.Clock(budget_s=100)
    assert clock.share(10) == pytest.approx(10 * gpu_proof.OVERRUN + gpu_proof.SLACK_S)
    assert clock.share(1000) <= 100 - gpu_proof.RESERVE_S
    assert gpu_proof.Clock(budget_s=100, strict=False).share(10) == math.inf  # --smoke cuts nothing


def test_gpu_use_reads_the_nvml_samples_and_says_none_without_them():
    """NVML samples as the sampler writes them; a stand-in for a GPU this machine lacks."""
    samples = [{"gpus": [{"util_percent": u, "memory_used_mb": m}]} for u, m in ((10, 900.0), (90, 4000.0),
                                                                                    (95, 4100.5))]
    assert proof_summary.gpu_use(samples) == {"gpu_util_median_percent": 90, "gpu_memory_peak_mb": 4100.5}
    assert proof_summary.gpu_use([{"system_cpu_percent": 50}]) == {
        "gpu_util_median_percent": None, "gpu_memory_peak_mb": None}


def started_run(device: str, gpu_names: list[str], wanted: str = "gpu", status: str = "finished") -> dict:
    return {"id": "r1", "name": "proof gpu-jax", "wanted_device": wanted, "device": device,
            "gpu_names": gpu_names, "status": status, "error": None}


def test_a_gpu_run_that_trained_on_the_cpu_is_a_problem():
    assert proof_summary.device_problems([started_run("gpu", ["NVIDIA H100 80GB HBM3"])]) == []
    [problem] = proof_summary.device_problems([started_run("cpu", [])])
    assert "was to train on a GPU but its start record says device cpu" in problem
    [problem] = proof_summary.device_problems([started_run("gpu", [])])  # GPU asked, none seen
    assert "GPUs none" in problem
    [problem] = proof_summary.device_problems([started_run(None, [], status="failed")])
    assert "no start record" in problem


def test_a_failed_cpu_run_is_a_problem_too():
    [problem] = proof_summary.device_problems([started_run("cpu", [], wanted="cpu", status="failed")])
    assert "failed" in problem


@pytest.mark.parametrize(("args", "text"), [
    (["--budget-s", "5"], "--budget-s: must be from 30 to 3600"),
    (["--epochs", "1"], "--epochs: must be from 2 to 100"),
    (["--max-repeats", "0"], "--max-repeats: must be from 1 to 10"),
    (["--only", "sweep,gpu-tpu"], "--only: must be one or more of gpu-jax, cpu-jax"),
])
def test_bad_arguments_name_the_option_and_write_nothing(args, text, tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "out"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and text in done.stderr
    assert not (tmp_path / "out").exists()


def test_the_plan_adds_resnet50_on_synthetic_images_on_both_devices_after_the_jax_steps():
    steps = gpu_proof.make_steps(gpu_proof.parse_args(["--out", "x"]), ["jax", "torch"])
    keys = [step["key"] for step in steps]
    assert keys == ["gpu-jax", "cpu-jax", "gpu-jax-fast", "gpu-resnet50", "cpu-resnet50", "gpu-torch",
                    "cpu-torch", "sweep"]
    gpu, cpu = steps[3], steps[4]
    assert (gpu["device"], cpu["device"], gpu["backend"]) == ("gpu", "cpu", "jax")
    for step in (gpu, cpu):
        assert step["args"] == ["--model", "keras:resnet50", "--data", "synthetic", "--image-size", "64",
                                "--limit-train", "2048", "--limit-test", "512"]
    assert (gpu["epochs"], cpu["epochs"]) == (4, 2)
    assert "gpu-resnet50" not in [s["key"] for s in gpu_proof.make_steps(
        gpu_proof.parse_args(["--out", "x"]), ["torch"])]  # JAX's step: no JAX, no ResNet


def test_a_resnet_run_teaches_its_own_estimate_and_leaves_the_cnns_alone():
    estimates = gpu_proof.Estimates(scale=1.0)
    cnn = estimates.run_s("gpu", "jax", 128, 5)
    resnet = estimates.run_s("gpu", "jax", 128, 4, gpu_proof.LARGE_MODEL)
    assert cnn == gpu_proof.PRIOR_STARTUP_S["gpu"] + 5 * gpu_proof.PRIOR_EPOCH_S[("gpu", "jax")]
    large_epoch = gpu_proof.PRIOR_LARGE_EPOCH_S[("gpu", "jax")]
    assert resnet == gpu_proof.PRIOR_LARGE_STARTUP_S["gpu"] + 4 * large_epoch
    estimates.epoch[("gpu", "jax", 128, gpu_proof.LARGE_MODEL)] = 9.0  # what learn() stores for a ResNet run
    assert estimates.run_s("gpu", "jax", 128, 5) == cnn


def test_by_model_size_pairs_each_models_cpu_and_gpu_runs_in_images_per_second():
    def run(step, model, rate, forward):
        return {"id": step, "step": step, "model": model, "data": "synthetic", "samples_per_s": rate,
                "flops_per_image": forward, "flops_method": "xla-cost-analysis"}

    runs = [run("cpu-resnet50", "keras:resnet50", 50.0, 550_764_608),
            run("gpu-resnet50", "keras:resnet50", 5_000.0, 550_764_608),
            run("cpu-jax", "mnist-cnn", 4_000.0, 5_256_625), run("gpu-jax", "mnist-cnn", 6_000.0, 5_256_625),
            run("gpu-torch", "mnist-cnn", 9_000.0, 5_174_272)]  # no CPU torch run: no pair
    small, large = proof_summary.by_model_size(runs)
    assert (small["model"], small["speedup"]) == ("mnist-cnn", 1.5)
    assert (large["model"], large["speedup"], large["cpu"], large["gpu"]) == (
        "keras:resnet50", 100.0, "cpu-resnet50", "gpu-resnet50")
