"""Device and backend: chosen before Keras is imported, checked right after.

Importing Keras fixes the backend, and importing a backend fixes which GPUs it
sees, so `pin_device` must run first. A `--device gpu` run whose backend sees
no GPU fails with the cause (`training.system.gpucheck.diagnose`: what NVML sees, how the
backend was built, which CUDA wheels are missing, and the fix); it never falls
back to the CPU.
"""

from __future__ import annotations

import logging
import os
import sys

from training.config import RunConfig
from training.system import gpucheck, hardware

log = logging.getLogger(__name__)


class GpuUnavailable(RuntimeError):
    """--device gpu, but the backend sees no GPU. Never fall back to the CPU."""


def pin_device(config: RunConfig) -> None:
    """Choose the Keras backend and hide GPUs for --device cpu. Before any import."""
    os.environ["KERAS_BACKEND"] = config.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep stderr for real errors
    if config.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
        os.environ["JAX_PLATFORMS"] = "cpu"
    if config.threads:
        pin_thread_env(config.threads)


def pin_thread_env(threads: int) -> None:
    """--threads N, the part that must precede the imports: XLA's flags and OpenMP.

    JAX reads XLA_FLAGS once, at import. Eigen's own pool is switched off only for one
    thread: with it off, N > 1 would still run Eigen's ops on one thread.
    """
    flags = [f"intra_op_parallelism_threads={threads}"]
    if threads == 1:
        flags.insert(0, "--xla_cpu_multi_thread_eigen=false")
    os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *flags]).strip()
    os.environ["OMP_NUM_THREADS"] = str(threads)  # torch's and oneDNN's OpenMP pools


def limit_threads(config: RunConfig) -> None:
    """--threads N after pin_device, before any op runs: the backend's own thread pools.

    TensorFlow refuses a change once its runtime has started, so this runs before
    `backend_devices`. Both TensorFlow pools get N: tf.data and Keras's input pipeline
    run on the inter-op pool, so intra-op alone would leave it at every core.
    """
    if not config.threads:
        return
    if config.backend == "tensorflow":
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(config.threads)
        tf.config.threading.set_inter_op_parallelism_threads(config.threads)
    elif config.backend == "torch":
        import torch
        torch.set_num_threads(config.threads)
        try:
            torch.set_num_interop_threads(config.threads)
        except RuntimeError as error:  # torch allows it once, before any parallel work; already done
            log.debug("torch inter-op threads left as they were: %s", error)


def backend_devices(backend: str) -> tuple[str, list[str]]:
    """(backend version, names of the GPUs the backend itself can use)."""
    if backend == "tensorflow":
        import tensorflow as tf
        gpus = tf.config.list_physical_devices("GPU")
        names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
        return tf.__version__, names
    if backend == "jax":
        import jax
        try:
            names = [d.device_kind for d in jax.devices("gpu")]
        except RuntimeError:  # JAX raises this when no GPU platform is present
            names = []
        return jax.__version__, names
    import torch
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return torch.__version__, names


def build_info(backend: str) -> dict:
    """How the (already imported) backend was built: CUDA or not, and which CUDA and cuDNN."""
    if backend == "tensorflow":
        import tensorflow as tf
        info = tf.sysconfig.get_build_info()
        return {"cuda_build": bool(info.get("is_cuda_build")), "cuda_version": info.get("cuda_version"),
                "cudnn_version": info.get("cudnn_version")}
    if backend == "jax":
        # JAX's CUDA lives in a plugin wheel (jax-cuda12-plugin, jax-cuda13-plugin).
        major = gpucheck.jax_cuda_major()
        plugin = f"jax-cuda{major}-plugin" if major else None
        return {"cuda_build": major is not None, "cuda_version": major, "cudnn_version": None,
                "cuda_plugin": f"{plugin} {gpucheck.installed(plugin)}" if major else None}
    import torch
    cudnn = torch.backends.cudnn.version() if torch.version.cuda else None
    return {"cuda_build": torch.version.cuda is not None, "cuda_version": torch.version.cuda,
            "cudnn_version": str(cudnn) if cudnn else None}


def check_device(config: RunConfig, gpu_names: list[str]) -> None:
    if config.device == "gpu" and not gpu_names:
        hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
        note = f" (CUDA_VISIBLE_DEVICES={hidden!r})" if hidden is not None else ""
        # Only now, on the way out: the backend is imported already and NVML answers in ms.
        answer = {**build_info(config.backend), "version": gpucheck.installed(config.backend),
                  "missing_cuda_wheels": gpucheck.missing_cuda_wheels(config.backend)}
        why = gpucheck.diagnose(config.backend, answer, [g["name"] for g in hardware.nvml_gpus()])
        raise GpuUnavailable(
            f"--device gpu: the {config.backend} backend sees no GPU{note}. {why}. "
            "Not falling back to the CPU.")



def versions(config: RunConfig, backend_version: str) -> dict:
    import keras
    import numpy
    found = {"python": sys.version.split()[0], "keras": keras.__version__,
             "numpy": numpy.__version__, "backend": config.backend,
             "backend_version": backend_version}
    try:
        import tensorflow as tf
        found["tensorflow"] = tf.__version__
    except ImportError:
        found["tensorflow"] = None
    return found
