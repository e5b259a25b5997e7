"""A user's data set as an `.npz` file (`--data path/to/data.npz`): checked, then loaded.

The file holds `x_train`, `y_train`, `x_test`, `y_test`: images as (N, H, W) or
(N, H, W, C) in uint8 (scaled by 1/255 when loaded) or float16/32/64 (taken as they
are), and integer class labels as (N,). `inspect` reads only the arrays' headers for
the images (a multi-gigabyte file is checked in milliseconds) and the labels in full
(their range decides the class count), so the launchers can refuse a bad file before
a run folder exists; the worker loads it with `load`. numpy only: no framework.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

KEYS = ("x_train", "y_train", "x_test", "y_test")
IMAGE_DTYPES = ("uint8", "float16", "float32", "float64")
MAX_FILE_BYTES = 8 * 2**30  # 8 GiB: more than any data set this tool should hold in memory
MAX_CLASSES = 100_000


class DataFileError(ValueError):
    """The file is not a usable data set; the message says what is wrong with it."""


def _header(archive: zipfile.ZipFile, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """An array's shape and dtype from its .npy header, without reading its data."""
    with archive.open(f"{key}.npy") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    return tuple(int(d) for d in shape), dtype


def _labels(path: Path, key: str) -> np.ndarray:
    with np.load(path, allow_pickle=False) as npz:
        return npz[key]


def _check_images(key: str, shape: tuple, dtype: np.dtype) -> None:
    if len(shape) not in (3, 4):
        raise DataFileError(f"{key} has shape {shape}; expected (N, height, width) or (N, height, width, "
                            "channels)")
    if dtype.name not in IMAGE_DTYPES:
        raise DataFileError(f"{key} has dtype {dtype.name}; expected one of {', '.join(IMAGE_DTYPES)}")
    if shape[0] == 0 or 0 in shape[1:]:
        raise DataFileError(f"{key} has shape {shape}: no images")


def _check_labels(key: str, labels: np.ndarray, images: int) -> None:
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataFileError(f"{key} has shape {labels.shape} and dtype {labels.dtype}; expected integer "
                            "class labels of shape (N,)")
    if len(labels) != images:
        raise DataFileError(f"{key} has {len(labels):,} labels for {images:,} images")
    if labels.min() < 0:
        raise DataFileError(f"{key} has label {int(labels.min())}: labels are classes from 0")
    if labels.max() >= MAX_CLASSES:
        raise DataFileError(f"{key} has label {int(labels.max())}: at most {MAX_CLASSES:,} classes")


def inspect(path: str | Path) -> dict:
    """The data set's image shape (per image, channels last), class count and sizes; raises DataFileError.

    classes: the largest label + 1 over both splits.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"no such file: {path}")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DataFileError(f"{path} is {path.stat().st_size / 2**30:.1f} GiB; at most "
                            f"{MAX_FILE_BYTES / 2**30:.0f} GiB")
    try:
        with zipfile.ZipFile(path) as archive:
            missing = [key for key in KEYS if f"{key}.npy" not in archive.namelist()]
            if missing:
                raise DataFileError(f"{path} lacks {', '.join(missing)}; an .npz needs {', '.join(KEYS)}")
            headers = {key: _header(archive, key) for key in ("x_train", "x_test")}
        labels = {key: _labels(path, key) for key in ("y_train", "y_test")}
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        if isinstance(error, DataFileError):
            raise
        raise DataFileError(f"{path} is not a readable .npz file: {error}") from error
    for key, (shape, dtype) in headers.items():
        _check_images(key, shape, dtype)
    train_shape, test_shape = (image_shape(headers[key][0]) for key in ("x_train", "x_test"))
    if train_shape != test_shape:
        raise DataFileError(f"x_train's images are {train_shape} but x_test's are {test_shape}")
    for key, images in (("y_train", "x_train"), ("y_test", "x_test")):
        _check_labels(key, labels[key], headers[images][0][0])
    classes = int(max(labels["y_train"].max(), labels["y_test"].max())) + 1
    return {"image_shape": list(train_shape), "classes": classes, "train": headers["x_train"][0][0],
            "test": headers["x_test"][0][0], "dtype": headers["x_train"][1].name}


def image_shape(shape: tuple) -> tuple[int, ...]:
    """(N, H, W) -> (H, W, 1); (N, H, W, C) -> (H, W, C)."""
    return (*shape[1:], 1) if len(shape) == 3 else tuple(shape[1:])


def load(path: str | Path, limit_train: int | None = None, limit_test: int | None = None) -> dict:
    """The arrays, cut to the first `limit_*` images: images float32 (uint8 / 255) with a channel axis."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in KEYS}
    out = {}
    for split, limit in (("train", limit_train), ("test", limit_test)):
        x = arrays[f"x_{split}"][:limit]
        x = x.astype("float32") / 255.0 if x.dtype == np.uint8 else x.astype("float32")
        out[f"x_{split}"] = x[..., None] if x.ndim == 3 else x
        out[f"y_{split}"] = arrays[f"y_{split}"][:limit].astype("int64")
    return out
