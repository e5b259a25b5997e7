"""CUDA 13 builds are recognised as well as CUDA 12: JAX's jax-cuda13-plugin, torch's +cu130.

The GPU machine lent to this project has JAX 0.11 with jax-cuda13-plugin/jax-cuda13-pjrt and
torch 2.11.0+cu130; this machine has neither, and their CUDA wheels cannot be installed here.
So each test writes *installed-package metadata stand-ins*: `.dist-info` folders (METADATA
with the Requires-Dist lines those wheels publish) in a temporary folder put first on
sys.path, which `importlib.metadata` reads exactly as it reads a real install. No code is
imported from them; the code under test (gpucheck, device.build_info, doctor's wording) is
the real one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from training.system import doctor, gpucheck
from training.worker import device

# Requires-Dist lines as JAX 0.11.2 and its CUDA 13 plugin publish them (trimmed).
JAX_REQUIRES = [
    "jaxlib<=0.11.2,>=0.11.2",
    "numpy>=2.0",
    'jaxlib<=0.11.2,>=0.11.2; extra == "cuda12"',
    'jax-cuda12-plugin[with-cuda]<=0.11.2,>=0.11.2; extra == "cuda12"',
    'jaxlib<=0.11.2,>=0.11.2; extra == "cuda13"',
    'jax-cuda13-plugin[with-cuda]<=0.11.2,>=0.11.2; extra == "cuda13"',
]
PLUGIN_REQUIRES = ["jax-cuda13-pjrt==0.11.2", 'nvidia-cublas>=13; extra == "with-cuda"']
# torch 2.11.0+cu130 lists CUDA 13's wheels, which dropped the -cu12 suffix.
TORCH_REQUIRES = ["filelock", 'nvidia-cuda-runtime==13.0.96; platform_system == "Linux"',
                  'nvidia-cudnn-cu13==9.15.1.9; platform_system == "Linux"']


def install_standin(site: Path, name: str, version: str, requires: list[str] = ()) -> None:
    """A `.dist-info` folder for `name`: what pip leaves behind, without the code."""
    folder = site / f"{name.replace('-', '_')}-{version}.dist-info"
    folder.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
             *(f"Requires-Dist: {r}" for r in requires)]
    (folder / "METADATA").write_text("\n".join(lines) + "\n")


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))  # found before the real jax and torch
    return folder


def test_jax_with_the_cuda13_plugin_is_a_cuda_13_build_missing_nothing(site):
    install_standin(site, "jax", "0.11.2", JAX_REQUIRES)
    install_standin(site, "jaxlib", "0.11.2")
    install_standin(site, "jax-cuda13-plugin", "0.11.2", PLUGIN_REQUIRES)
    install_standin(site, "jax-cuda13-pjrt", "0.11.2")
    assert gpucheck.cuda_extra("jax") == "cuda13"
    # Before CUDA 13 was known, this said jax-cuda12-plugin was missing: a false diagnosis.
    assert gpucheck.missing_cuda_wheels("jax") == []
    info = device.build_info("jax")  # reads package metadata only; imports no JAX
    assert info["cuda_build"] is True and info["cuda_version"] == "13"
    assert info["cuda_plugin"] == "jax-cuda13-plugin 0.11.2"


def test_jax_cuda13_plugin_without_its_pjrt_names_the_pjrt(site):
    install_standin(site, "jax", "0.11.2", JAX_REQUIRES)
    install_standin(site, "jaxlib", "0.11.2")
    install_standin(site, "jax-cuda13-plugin", "0.11.2", PLUGIN_REQUIRES)
    assert gpucheck.missing_cuda_wheels("jax") == ["jax-cuda13-pjrt"]


def test_jax_without_a_plugin_names_the_cuda12_plugin_of_the_requirements_file(site):
    install_standin(site, "jax", "0.11.2", JAX_REQUIRES)
    install_standin(site, "jaxlib", "0.11.2")
    assert gpucheck.cuda_extra("jax") == "cuda12"
    assert gpucheck.missing_cuda_wheels("jax") == ["jax-cuda12-plugin"]
    assert device.build_info("jax")["cuda_build"] is False


def test_torch_cu130_wheels_are_checked_by_their_cuda13_names(site):
    install_standin(site, "torch", "2.11.0+cu130", TORCH_REQUIRES)
    install_standin(site, "nvidia-cuda-runtime", "13.0.96")
    assert gpucheck.missing_cuda_wheels("torch") == ["nvidia-cudnn-cu13"]
    install_standin(site, "nvidia-cudnn-cu13", "9.15.1.9")
    assert gpucheck.missing_cuda_wheels("torch") == []


def test_doctor_describes_a_cuda13_build():
    answer = {"version": "2.11.0+cu130", "cuda_build": True, "cuda_version": "13.0",
              "cudnn_version": "91501", "devices": ["cpu", "cuda:0"], "gpus": ["NVIDIA H100 80GB HBM3"],
              "missing_cuda_wheels": [], "probe_s": 3.1}
    line = doctor.describe_backend("torch", answer)
    assert "torch 2.11.0+cu130: CUDA 13.0 build, cuDNN 91501" in line and "GPUs: NVIDIA H100" in line
