"""GPU set-up on a machine without a GPU: the Makefile's CUDA step, the probe, doctor, the diagnosis.

This machine has no NVIDIA GPU or driver. Where a test needs one, it puts a stand-in
`nvidia-smi` on PATH (for make) or a stand-in `pynvml` module on PYTHONPATH of the one
subprocess under test (`FAKE_PYNVML`); each says in its own text that it is a stand-in.
TensorFlow, JAX and torch are the real, CPU-only installs: the probe is never faked here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TINY, cli, only_run, records

from training.system import doctor, gpucheck

FAKE_NVIDIA_SMI = """#!/bin/sh
# Stand-in for the NVIDIA driver's nvidia-smi, which cannot exist on this GPU-less machine.
echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-12345678-1234-1234-1234-123456789abc)"
"""

FAKE_PYNVML = '''"""Stand-in for NVML (nvidia-ml-py's pynvml): an NVIDIA driver with one H100.

No NVIDIA driver can exist on the test machine, so the tests put this module first on
PYTHONPATH of the one subprocess under test. Nothing else is faked.
"""


class NVMLError(Exception):
    pass


class _Memory:
    total = 80 * 2**30  # bytes
    used = 2**30
    free = total - used


def nvmlInit():
    pass


def nvmlShutdown():
    pass


def nvmlSystemGetDriverVersion():
    return "580.95.05"


def nvmlSystemGetCudaDriverVersion():
    return 13000  # CUDA 13.0, as NVML encodes it


def nvmlDeviceGetCount():
    return 1


def nvmlDeviceGetHandleByIndex(index):
    return index


def nvmlDeviceGetName(handle):
    return "NVIDIA H100 80GB HBM3"


def nvmlDeviceGetMemoryInfo(handle):
    return _Memory()
'''

MAKE = shutil.which("make")
CLEAN_PATH = "/usr/bin:/bin"


# -- make run / make test: the CUDA step -----------------------------------------------------
def make_n(target: str, path: str, tmp_path: Path, *variables: str) -> str:
    """`make -n TARGET` against a venv that does not exist, so every install step shows."""
    empty = tmp_path / "no-nvidia-proc"  # the driver's /proc folder, absent
    done = subprocess.run([MAKE, "-n", f"VENV={tmp_path / 'venv'}", f"NVIDIA_GPUS_DIR={empty}",
                           *variables, target], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PATH": path}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "venv").exists()  # -n installed nothing
    return done.stdout


@pytest.fixture
def gpu_path(tmp_path) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
    (bin_dir / "nvidia-smi").chmod(0o755)
    return f"{bin_dir}:{CLEAN_PATH}"


def installs(plan: str) -> set[str]:
    return {name for line in plan.splitlines() if "pip install" in line or line.lstrip().startswith("-r")
            for name in re.findall(r"-r (\S+)", line)}


@pytest.mark.skipif(MAKE is None, reason="no make")
@pytest.mark.parametrize("target", ["run", "test"])
def test_make_installs_the_cuda_builds_where_nvidia_smi_lists_a_gpu(target, gpu_path, tmp_path):
    planned = installs(make_n(target, gpu_path, tmp_path))
    assert "requirements-gpu.txt" in planned
    assert ("requirements-backends-gpu.txt" in planned) == (target == "test")  # JAX only with the backends
    assert "requirements-gpu.txt" not in installs(make_n(target, gpu_path, tmp_path, "GPU=0"))


@pytest.mark.skipif(MAKE is None, reason="no make")
@pytest.mark.parametrize("target", ["run", "test"])
def test_make_installs_no_cuda_without_a_driver_unless_forced(target, tmp_path):
    if shutil.which("nvidia-smi", path=CLEAN_PATH):
        pytest.skip("this machine has a real nvidia-smi")
    planned = installs(make_n(target, CLEAN_PATH, tmp_path))
    assert "requirements.txt" in planned and not {p for p in planned if "gpu" in p}
    forced = installs(make_n(target, CLEAN_PATH, tmp_path, "GPU=1"))
    assert "requirements-gpu.txt" in forced


@pytest.mark.skipif(MAKE is None, reason="no make")
def test_the_nvidia_proc_folder_counts_as_a_driver(tmp_path):
    gpus = tmp_path / "gpus"
    (gpus / "0000:00:1e.0").mkdir(parents=True)
    done = subprocess.run([MAKE, "-n", f"VENV={tmp_path / 'venv'}", f"NVIDIA_GPUS_DIR={gpus}", "run"],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PATH": CLEAN_PATH})
    assert "requirements-gpu.txt" in installs(done.stdout)


def test_the_guides_gpu_section_matches_the_makefile():
    guide = (ROOT / "docs" / "guide.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    section = guide.split("## Installing, backends and GPUs", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"requirements[-\w]*\.txt", section))
    assert {"requirements-gpu.txt", "requirements-backends-gpu.txt"} <= named
    for name in named:
        assert (ROOT / name).is_file() and name in makefile, name
    for text in ("GPU=1", "GPU=0", "nvidia-smi -L", "/proc/driver/nvidia/gpus", "python -m training doctor"):
        assert text in section, text
    assert "nvidia-smi -L" in makefile and "/proc/driver/nvidia/gpus" in makefile
    assert "tensorflow[and-cuda]==2.21.0" in (ROOT / "requirements-gpu.txt").read_text()


# -- the probe and the one-line diagnosis -------------------------------------------------------
@pytest.mark.slow  # imports TensorFlow in a real probe subprocess
def test_probe_answers_for_the_real_cpu_tensorflow():
    answer = gpucheck.run_probe("tensorflow")
    assert "error" not in answer, answer
    assert answer["gpus"] == [] and "CPU:0" in answer["devices"]
    assert answer["version"] == gpucheck.installed("tensorflow")
    # tensorflow's Linux wheel is a CUDA build; the nvidia-* wheels of [and-cuda] are what it lacks
    assert isinstance(answer["cuda_build"], bool) and "nvidia-cudnn-cu12" in answer["missing_cuda_wheels"]


def test_a_probe_that_hangs_times_out_with_a_message():
    answer = gpucheck.run_probe("tensorflow", timeout=0.05)
    assert answer["timed_out"] and answer["gpus"] == []
    assert "the tensorflow GPU check did not answer within 0 s" in answer["error"]


TF_NO_CUDA_LIBS = {"backend": "tensorflow", "version": "2.21.0", "gpus": [], "cuda_build": True,
                   "missing_cuda_wheels": ["nvidia-cublas-cu12", "nvidia-cudnn-cu12"]}


@pytest.mark.parametrize(("answer", "env", "expected"), [
    (TF_NO_CUDA_LIBS, {}, "H100 found, but this TensorFlow 2.21.0 has no CUDA libraries (nvidia-cublas-cu12"
                          " and 1 more not installed): run `make run GPU=1`, or `pip install -r "
                          "requirements-gpu.txt`"),
    ({**TF_NO_CUDA_LIBS, "cuda_build": False}, {}, "this TensorFlow 2.21.0 is not a CUDA build: run `make"),
    ({"backend": "jax", "version": "0.10.2", "gpus": [], "cuda_build": False}, {},
     "this JAX 0.10.2 has no CUDA plugin: run `make test GPU=1`, or `pip install -r requirements-backends"),
    ({"backend": "torch", "version": "2.13.0+cpu", "gpus": [], "cuda_build": False}, {},
     "this PyTorch 2.13.0+cpu is a CPU-only build: install PyPI's Linux wheel"),
    ({**TF_NO_CUDA_LIBS, "missing_cuda_wheels": []}, {"LD_LIBRARY_PATH": "/usr/local/cuda-12.2/lib64"},
     "LD_LIBRARY_PATH puts a system CUDA first (/usr/local/cuda-12.2/lib64)"),
    ({**TF_NO_CUDA_LIBS, "missing_cuda_wheels": [], "notes": ["Cannot dlopen some GPU libraries."]}, {},
     "sees no GPU (Cannot dlopen some GPU libraries.): run `python -m training doctor`"),
    (TF_NO_CUDA_LIBS, {"CUDA_VISIBLE_DEVICES": "-1"}, "CUDA_VISIBLE_DEVICES='-1' hides every GPU"),
    ({**TF_NO_CUDA_LIBS, "error": "the tensorflow GPU check did not answer within 60 s"}, {},
     "asking TensorFlow for its GPUs failed: the tensorflow GPU check did not answer within 60 s"),
])
def test_diagnosis_names_the_cause_and_the_fix(answer, env, expected, monkeypatch):
    monkeypatch.setattr(gpucheck, "tensorflow_twice", lambda: False)
    backend = answer["backend"]
    line = gpucheck.diagnose(backend, {**answer, "backend": backend}, ["NVIDIA H100"], env)
    assert expected in line, line


def test_diagnosis_without_nvml_keeps_the_old_reason():
    assert gpucheck.diagnose("tensorflow", TF_NO_CUDA_LIBS, [], {}) == gpucheck.NO_NVML


# -- doctor ----------------------------------------------------------------------------------
def doctor_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training", "doctor", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=240, env={**os.environ, **(env or {})})


@pytest.mark.slow  # imports TensorFlow in a real probe subprocess
def test_doctor_json_on_this_cpu_machine_reports_no_gpu_and_exits_0():
    done = doctor_cli("--json", env={"CUDA_VISIBLE_DEVICES": "", "LD_LIBRARY_PATH": ""})
    found = json.loads(done.stdout)
    assert set(found) == set(doctor.KEYS)
    assert found["nvidia"]["gpus"] == [] and found["nvidia"]["error"]
    assert found["libcuda"]["loads"] is False
    installed = [b for b in ("tensorflow", "jax", "torch") if gpucheck.installed(b)]
    assert sorted(found["backends"]) == sorted(installed) and found["not_installed"] == [
        b for b in ("tensorflow", "jax", "torch") if b not in installed]
    for answer in found["backends"].values():
        assert answer["gpus"] == [] and answer["devices"] and "error" not in answer
    assert any(gpucheck.NO_NVML in line for line in found["warnings"])
    assert found["problems"] == [] and found["ok"] is True and done.returncode == 0


@pytest.mark.slow  # imports TensorFlow in a real probe subprocess
def test_doctor_with_nvml_seeing_a_gpu_tensorflow_does_not_names_the_fix(tmp_path):
    (tmp_path / "pynvml.py").write_text(FAKE_PYNVML)
    done = doctor_cli("--backend", "tensorflow", env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "NVIDIA driver: 580.95.05 (CUDA 13.0)" in out and "GPUs (NVML): NVIDIA H100 80GB HBM3" in out
    [line] = [line for line in out.splitlines() if line.startswith("PROBLEM: tensorflow:")]
    assert "NVIDIA H100 80GB HBM3 found, but this TensorFlow" in line
    assert "has no CUDA libraries" in line or "is not a CUDA build" in line
    assert line.endswith("run `make run GPU=1`, or `pip install -r requirements-gpu.txt`")
    problems = [line for line in out.splitlines() if line.startswith("PROBLEM")]
    assert any("libcuda.so.1 does not load" in line for line in problems)
    assert out.splitlines()[-1] == f"{out.count('PROBLEM:')} problem(s)"


def test_a_gpu_run_that_fails_says_why_and_how_to_fix_it(runs_dir, tmp_path, mnist_cached, monkeypatch):
    (tmp_path / "pynvml.py").write_text(FAKE_PYNVML)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    done = cli("run", "--device", "gpu", "--epochs", "1", *TINY, runs_dir=runs_dir,
               env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 1
    assert "sees no GPU" in done.stderr and "Not falling back to the CPU" in done.stderr
    assert "NVIDIA H100 80GB HBM3 found, but this TensorFlow" in done.stderr
    assert "pip install -r requirements-gpu.txt" in done.stderr
    end = records(only_run(runs_dir))[-1]  # what the run card and the Runs page show
    assert end["status"] == "failed" and "GpuUnavailable" in end["error"]
    assert "found, but this TensorFlow" in end["error"] and "requirements-gpu.txt" in end["error"]
