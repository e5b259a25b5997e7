"""The measured-peak cache: one small JSON file per machine user, keyed by machine and probe.

`python -m training peak` and the worker (before a device's first run) measure the
peak FLOP/s of a matrix product (`training.worker.peak`) and keep it here, so that
each (hostname, backend, device, precision) is measured once (and once more per
`--threads N`, whose run measures with its own N threads). The file is
`$TRAINING_PEAK_CACHE`, else `~/.cache/training/peaks.json`; deleting it only
means measuring again. It keeps the highest measurement of each key: on a shared
machine a probe can only read low. Written atomically, like every JSON file of the store.
"""

from __future__ import annotations

import os
from pathlib import Path

from training.store.layout import read_json, write_json_atomic

CACHE_ENV = "TRAINING_PEAK_CACHE"


def cache_path() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "training" / "peaks.json")


def key(hostname: str, backend: str, device: str, precision: str, threads: int | None = None) -> str:
    """e.g. "vm|jax|cpu|float32"; a peak measured with --threads N (not all cores) adds "|threads=N"."""
    return f"{hostname}|{backend}|{device}|{precision}" + (f"|threads={threads}" if threads else "")


def lookup(hostname: str, backend: str, device: str, precision: str,
           threads: int | None = None) -> dict | None:
    """The cached measurement, or None if this machine never measured this combination."""
    found = (read_json(cache_path()) or {}).get(key(hostname, backend, device, precision, threads))
    return found if isinstance(found, dict) and found.get("flops_per_s") else None


def remember(measured: dict) -> dict:
    """Keep a `training.worker.peak.measure` answer unless the cache holds a higher one.

    A peak is the best the device can do, and other work on the machine only ever
    slows a matrix product down, so the highest measurement of a key is kept.
    Returns what the cache now holds for the key.
    """
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    cache = read_json(path) or {}
    names = (measured["hostname"], measured["backend"], measured["device"], measured["precision"],
             measured.get("threads"))
    held = cache.get(key(*names))
    if not (isinstance(held, dict) and (held.get("flops_per_s") or 0) >= measured["flops_per_s"]):
        cache[key(*names)] = held = measured
        write_json_atomic(path, cache)
    return held
