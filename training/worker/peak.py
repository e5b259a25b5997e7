"""The device's measured peak: FLOP/s of a square matrix product in the run's backend.

`python -m training peak` runs `measure` in its own short process (as `probe` does), and
the worker calls `peak_for` right before a run, before its start record and outside
its timings: a (machine, backend, device, precision) measured before is read from the
cache (`training.store.peaks`), so only a device's first run pays the few seconds.

The probe: n x n products at the run's compute dtype (float32, float16 for
mixed_float16, bfloat16 for mixed_bfloat16), n doubled from 256 until one product
takes 50 ms (or n reaches 8192), then repeated for the rest of a ~2 s budget; the
best repetition's 2 n^3 / seconds is the peak. The backend must already be pinned
to the device (`device.pin_device`) when this is imported.
"""

from __future__ import annotations

import logging
import platform
import time

from training.config import RunConfig
from training.store import peaks

log = logging.getLogger(__name__)
DTYPES = {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}
SIZES = (256, 512, 1024, 2048, 4096, 8192)
LONG_ENOUGH_S = 0.05  # one product at least this long: timer and launch overheads are noise
BUDGET_S = 2.0


def _product(backend: str, device: str, dtype: str, n: int):
    """A function that runs `count` n x n products and waits for the last one."""
    if backend == "tensorflow":
        import tensorflow as tf
        with tf.device("/GPU:0" if device == "gpu" else "/CPU:0"):
            a = tf.cast(tf.random.uniform((n, n)), dtype)
            b = tf.cast(tf.random.uniform((n, n)), dtype)

        def run(count: int) -> None:
            with tf.device("/GPU:0" if device == "gpu" else "/CPU:0"):
                for _ in range(count):
                    c = tf.linalg.matmul(a, b)
                c[0, 0].numpy()  # waits for the queue: GPU ops run in order
        return run
    if backend == "jax":
        import jax
        import jax.numpy as jnp
        keys = jax.random.split(jax.random.PRNGKey(0))
        a = jax.random.uniform(keys[0], (n, n)).astype(dtype)
        b = jax.random.uniform(keys[1], (n, n)).astype(dtype)
        product = jax.jit(jnp.matmul)
        product(a, b).block_until_ready()  # compile outside the timing

        def run(count: int) -> None:
            for _ in range(count):
                c = product(a, b)
            c.block_until_ready()
        return run
    import torch
    where = "cuda" if device == "gpu" else "cpu"
    a = torch.rand((n, n), device=where).to(getattr(torch, dtype))
    b = torch.rand((n, n), device=where).to(getattr(torch, dtype))

    def run(count: int) -> None:
        for _ in range(count):
            torch.mm(a, b)
        if where == "cuda":
            torch.cuda.synchronize()
    return run


def _timed(run, count: int) -> float:
    started = time.perf_counter()
    run(count)
    return time.perf_counter() - started


def measure(backend: str, device: str = "cpu", precision: str = "float32",
            budget_s: float = BUDGET_S, threads: int | None = None) -> dict:
    """Peak FLOP/s of a matrix product on this machine's device, with how it was found."""
    dtype = DTYPES[precision]
    began = time.perf_counter()
    for n in SIZES:
        run = _product(backend, device, dtype, n)
        run(1)  # warm-up: kernels chosen, memory touched
        if _timed(run, 1) >= LONG_ENOUGH_S:
            break
    one = max(_timed(run, 1), 1e-6)
    count = max(1, int(0.2 / one))  # repetitions of about 0.2 s each
    best, repeats = 0.0, 0
    while repeats < 3 or time.perf_counter() - began < budget_s:
        best = max(best, 2 * n**3 * count / _timed(run, count))
        repeats += 1
        if repeats >= 50:
            break
    return {"flops_per_s": best, "backend": backend, "device": device, "precision": precision,
            "dtype": dtype, "n": n, "products_per_repeat": count, "repeats": repeats,
            "seconds": round(time.perf_counter() - began, 2), "hostname": platform.node(), "threads": threads,
            "measured_at": round(time.time(), 1)}


def measure_and_remember(config: RunConfig) -> dict:
    """Measure now and keep it in the cache (unless it holds a higher figure).

    The answer is this measurement, with `cache` (the file, None if it could not be
    written) and `cached_flops_per_s` (the peak the cache now holds: the best measured).
    """
    measured = measure(config.backend, config.device, config.precision, threads=config.threads)
    try:
        held = peaks.remember(measured)
        measured["cache"], measured["cached_flops_per_s"] = str(peaks.cache_path()), held["flops_per_s"]
    except OSError as error:  # a read-only home: the figure is still good for this run
        log.warning("could not keep the peak in %s: %s", peaks.cache_path(), error)
        measured["cache"], measured["cached_flops_per_s"] = None, measured["flops_per_s"]
    return measured


def peak_for(config: RunConfig) -> dict:
    """The start record's `peak`: cached for this machine, else measured now.

    A run with --threads N measures (and caches) its own peak with those N threads,
    already limited by `device.limit_threads`. A probe that fails does not fail the
    run: the record says why instead (`error`), and utilisation shows as unknown.
    """
    cached = peaks.lookup(platform.node(), config.backend, config.device, config.precision, config.threads)
    if cached:
        return {**cached, "cached": True}
    try:
        measured = measure_and_remember(config)
        return {**measured, "flops_per_s": measured["cached_flops_per_s"], "cached": False}
    except Exception as error:  # noqa: BLE001 - an unsupported dtype, say: the run goes on
        return {"flops_per_s": None, "error": f"{type(error).__name__}: {error}", "cached": False}
