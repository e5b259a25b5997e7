"""What the machine is: CPU model and cores, and the GPUs NVML can see.

Nothing here imports a deep-learning framework, so the dashboard can ask
"is there a GPU?" without loading TensorFlow into the Streamlit process.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
from functools import lru_cache

import psutil

from training.system import nvml

log = logging.getLogger(__name__)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError as error:
        log.debug("no /proc/cpuinfo: %s", error)
    return platform.processor() or platform.machine()


def nvml_gpus() -> list[dict]:
    """Name and memory of each GPU the NVIDIA driver reports; [] without one."""
    with nvml.session() as pynvml:
        if pynvml is None:
            return []
        try:
            return [_gpu(pynvml, index) for index in range(pynvml.nvmlDeviceGetCount())]
        except Exception as error:  # an NVMLError mid-query: report no GPU rather than half of one
            log.debug("NVML query failed: %s", error)
            return []


def _gpu(pynvml, index: int) -> dict:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    return {"index": index, "name": nvml.text(pynvml.nvmlDeviceGetName(handle)),
            "memory_total_mb": memory.total / 2**20}


def nvml_driver() -> dict:
    """The NVIDIA driver's versions and GPUs as NVML reports them, or why NVML could not."""
    found = {"driver_version": None, "cuda_driver_version": None, "gpus": [], "error": None}
    errors: list[str] = []
    with nvml.session(errors) as pynvml:
        if pynvml is None:
            found["error"] = errors[0]
            return found
        try:
            found["driver_version"] = nvml.text(pynvml.nvmlSystemGetDriverVersion())
            cuda = pynvml.nvmlSystemGetCudaDriverVersion()  # e.g. 12040 for CUDA 12.4
            found["cuda_driver_version"] = f"{cuda // 1000}.{cuda % 1000 // 10}"
        except Exception as error:  # an old driver without these calls: the GPUs still count
            found["error"] = f"driver version unknown: {error}"
    found["gpus"] = nvml_gpus()
    return found


@lru_cache(maxsize=1)
def gpu_availability() -> tuple[bool, str]:
    """(available, reason) for the dashboard's GPU buttons; cached per process."""
    if nvml.gpus_hidden() is not None:
        return False, "CUDA_VISIBLE_DEVICES hides every GPU from this dashboard"
    gpus = nvml_gpus()
    if not gpus:
        return False, "No NVIDIA GPU visible: NVML found no driver or device on this machine"
    names = ", ".join(g["name"] for g in gpus)
    return True, f"{len(gpus)} GPU(s): {names}"


def describe() -> dict:
    """The hardware part of a run's start record."""
    return {
        "cpu_model": cpu_model(),
        "cpu_logical_cores": os.cpu_count(),
        "cpu_physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "nvml_gpus": nvml_gpus(),
        "python": sys.version.split()[0],
    }
