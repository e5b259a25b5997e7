"""`python -m training probe BACKEND`: what one backend sees, asked in its own process.

Imports the backend (never Keras), lists its devices and GPUs, and reads how it was
built. The dashboard and `doctor` run this in a subprocess (`training.system.gpucheck.run_probe`)
so that only this short-lived process pays for the import, and a hang costs a timeout,
not the page.
"""

from __future__ import annotations

import time

from training.system import gpucheck
from training.worker.device import backend_devices, build_info


def all_devices(backend: str) -> list[str]:
    """Every device the backend can place work on, CPUs included, by its own names."""
    if backend == "tensorflow":
        import tensorflow as tf
        return [device.name.replace("/physical_device:", "") for device in tf.config.list_physical_devices()]
    if backend == "jax":
        import jax
        return [f"{device.platform}:{device.id}" for device in jax.devices()]
    import torch
    return ["cpu", *(f"cuda:{index}" for index in range(torch.cuda.device_count()))]


def probe(backend: str) -> dict:
    """The probe's answer: version, devices, GPU names, CUDA build, missing CUDA wheels, import s."""
    started = time.monotonic()
    try:
        version, gpus = backend_devices(backend)
        answer = {"version": version, "gpus": gpus, "devices": all_devices(backend), **build_info(backend)}
    except Exception as error:  # broken install, missing shared library: report it, do not crash
        answer = {"version": gpucheck.installed(backend), "gpus": [], "devices": [],
                  "error": f"{type(error).__name__}: {error}"}
    return {"backend": backend, **answer, "missing_cuda_wheels": gpucheck.missing_cuda_wheels(backend),
            "import_s": round(time.monotonic() - started, 2)}

