"""A run's data as the engines take it: float32 images (N, H, W, C) and one-hot labels.

    mnist       the published data (worker/mnist.py: cache and checksums), 28x28x1, 10 classes
    path.npz    a user's file (store/datafile.py: checked at the edge, loaded here)
    synthetic   random images and labels of the model's input shape and class count, for
                throughput alone: made on the host with numpy from the run's seed, as many
                as MNIST (or --limit-train / --limit-test), so an epoch is as long as MNIST's

numpy only; the worker imports Keras after this has chosen nothing.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from training.config import MNIST_TEST_SIZE, MNIST_TRAIN_SIZE, RunConfig, data_kind
from training.store import datafile
from training.worker import mnist

MNIST_SHAPE = (28, 28, 1)
MNIST_CLASSES = 10


class Images(NamedTuple):
    """Images and integer labels, before the labels are one-hot for a model's class count."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def load(config: RunConfig) -> Images:
    """MNIST or the .npz file (synthetic data needs the model's shape: `synthetic`)."""
    if data_kind(config.data) == "mnist":
        data = mnist.load(config.limit_train, config.limit_test)
        return Images((data.x_train.astype("float32") / 255.0)[..., None], data.y_train.astype("int64"),
                      (data.x_test.astype("float32") / 255.0)[..., None], data.y_test.astype("int64"))
    arrays = datafile.load(config.data, config.limit_train, config.limit_test)
    return Images(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"])


def synthetic(config: RunConfig, shape: tuple[int, ...], classes: int) -> Images:
    """Uniform random images in [0, 1) and uniform labels: the same from one seed."""
    rng = np.random.default_rng(config.seed)
    train, test = config.limit_train or MNIST_TRAIN_SIZE, config.limit_test or MNIST_TEST_SIZE
    return Images(rng.random((train, *shape), dtype=np.float32), rng.integers(0, classes, train),
                  rng.random((test, *shape), dtype=np.float32), rng.integers(0, classes, test))


def one_hot(images: Images, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) with labels one-hot over `classes` (the model's outputs)."""
    eye = np.eye(classes, dtype="float32")
    return images.x_train, eye[images.y_train], images.x_test, eye[images.y_test]
