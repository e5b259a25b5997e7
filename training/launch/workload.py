"""Is a run's workload (its model and data) trainable? Answered before its run folder exists.

`check(config)` refuses, with a `ConfigError` naming the option and the problem, a data
file that is missing or malformed (store/datafile.py: shapes, dtypes, labels, size), a
function whose module is not in the current folder or on PYTHONPATH, a model that does
not take the data's images or has too few outputs for its labels, and synthetic data
too large for memory. A `.keras` file or a user's function can be judged only by Keras,
which only the worker imports, so for those one short process does it: `python -m
training check-workload` (worker/workload.check, reached through cli/runs.py like
`probe`), on the CPU with the run's backend, the answer cached per process. The
published CNN and the Keras applications need no Keras to check: their shapes follow
from the config.

`resolve` makes a model file's, a data file's and a module's folder absolute, because
the worker runs in the project's folder, not the caller's. What it returns goes into
the run's config.json as `workload` (its `search` folders are where the worker imports
a function from).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

from training import PROJECT_ROOT
from training.config import (
    MNIST_TEST_SIZE,
    MNIST_TRAIN_SIZE,
    SYNTHETIC,
    SYNTHETIC_CLASSES,
    ConfigError,
    RunConfig,
    application,
    data_kind,
    model_kind,
)
from training.store import datafile

CHECK_TIMEOUT_S = 300  # importing a backend on a busy machine takes tens of seconds
MAX_SYNTHETIC_BYTES = 4 * 2**30  # synthetic images are float32 in memory, train and test together
MNIST_SHAPE, MNIST_CLASSES = (28, 28, 1), 10
_answers: dict[tuple, dict] = {}  # check-workload's answers in this process, by what they depend on


def search_folders(cwd: str | None = None) -> list[str]:
    """Where a `package.module:function` is imported from: the current folder, then PYTHONPATH."""
    folders = [cwd or os.getcwd(), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    return [str(Path(folder).resolve()) for folder in folders if folder]


def module_root(module: str, folders: list[str]) -> str | None:
    """The first folder holding `a/b.py` or `a/b/__init__.py` for module `a.b` (nothing is imported)."""
    parts = module.split(".")
    for folder in folders:
        base = Path(folder, *parts)
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return folder
    return None


def resolve(config: RunConfig, cwd: str | None = None) -> RunConfig:
    """The config with a model file's and a data file's paths made absolute (from `cwd`)."""
    base = Path(cwd or os.getcwd())
    changes = {}
    if model_kind(config.model) == "file":
        changes["model"] = str((base / config.model).expanduser().resolve())
    if data_kind(config.data) == "file":
        changes["data"] = str((base / config.data).expanduser().resolve())
    return dataclasses.replace(config, **changes) if changes else config


def data_shape(config: RunConfig) -> tuple[tuple[int, ...] | None, int | None, int | None]:
    """(image shape, classes, training images) of the data; None for synthetic (the model says)."""
    kind = data_kind(config.data)
    if kind == "mnist":
        return MNIST_SHAPE, MNIST_CLASSES, MNIST_TRAIN_SIZE
    if kind == SYNTHETIC:
        return None, None, config.limit_train or MNIST_TRAIN_SIZE
    try:
        found = datafile.inspect(config.data)
    except datafile.DataFileError as error:
        raise ConfigError("data", str(error)) from error
    return tuple(found["image_shape"]), found["classes"], found["train"]


def _shape_text(shape) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


def _fit(config: RunConfig, want, outputs: int | None, shape, classes: int) -> None:
    if tuple(want) != tuple(shape):
        raise ConfigError("model", f"{config.model} takes images of {_shape_text(want)} but --data "
                          f"{config.data} has {_shape_text(shape)}")
    if outputs is not None and outputs < classes:
        raise ConfigError("model", f"{config.model} has {outputs} outputs but --data {config.data}'s labels "
                          f"go up to {classes - 1} ({classes} classes)")


def keras_input(config: RunConfig, shape) -> tuple[int, int, int]:
    """The image a keras:NAME application sees: --image-size a side (else the data's), the data's channels."""
    name, low, default = application(config.model)
    if shape is None:  # synthetic: three channels, the application's own size unless told
        side = config.image_size or default
        return side, side, 3
    side = config.image_size or shape[0]
    if side < low or (config.image_size is None and shape[0] != shape[1]):
        raise ConfigError("image_size", f"{config.model} needs square images of at least {low}x{low} "
                          f"(keras.applications.{name}); --data {config.data} has {_shape_text(shape)}: "
                          f"give --image-size {max(low, side)} or more")
    return side, side, shape[2]


def ask_worker(config: RunConfig, shape, classes: int, search: list[str]) -> dict:
    """`python -m training check-workload`: the model built by Keras in its own process, on the CPU."""
    files = [p for p in (config.model, config.data) if os.path.isfile(p)]
    key = (config.model, config.data, config.image_size, config.keep_weights, config.backend,
           tuple(shape or ()), classes, tuple(search), tuple(os.stat(p).st_mtime_ns for p in files))
    if key in _answers:
        return _answers[key]
    command = [sys.executable, "-m", "training", "check-workload", "--config", json.dumps(config.to_dict()),
               "--shape", ",".join(map(str, shape or ())), "--classes", str(classes or 0),
               *[arg for folder in search for arg in ("--search", folder)]]
    try:
        result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True,
                                timeout=CHECK_TIMEOUT_S, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    except subprocess.TimeoutExpired as error:
        raise ConfigError("model", f"checking {config.model} took over {CHECK_TIMEOUT_S} s "
                          "(python -m training check-workload)") from error
    lines = result.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError("model", f"could not be checked (check-workload exited {result.returncode}): "
                          f"{tail}") from None
    if "field" in answer:
        raise ConfigError(answer["field"], answer["message"])
    _answers[key] = answer
    return answer


def _memory(config: RunConfig, shape) -> None:
    train, test = config.limit_train or MNIST_TRAIN_SIZE, config.limit_test or MNIST_TEST_SIZE
    per_image = 4 * math.prod(shape)
    if (train + test) * per_image > MAX_SYNTHETIC_BYTES:
        fits = max(1, MAX_SYNTHETIC_BYTES // per_image - test)
        raise ConfigError("limit_train", f"synthetic data of {train + test:,} images of {_shape_text(shape)} "
                          f"would take {(train + test) * per_image / 2**30:.1f} GiB; at most "
                          f"{MAX_SYNTHETIC_BYTES / 2**30:.0f} GiB: give --limit-train {fits:,} or fewer")


def _sizes(config: RunConfig, train: int | None) -> None:
    if train is None:
        return
    if config.limit_train and config.limit_train > train:
        raise ConfigError("limit_train", f"must be at most {train:,}: --data {config.data} has {train:,} "
                          f"training images, got {config.limit_train:,}")
    if config.batch_size > (config.limit_train or train):
        raise ConfigError("batch_size", f"must be at most {config.limit_train or train:,}, the training "
                          f"images, got {config.batch_size:,}")


def check(config: RunConfig, cwd: str | None = None) -> dict:
    """What the workload trains on, for the run's config.json; raises ConfigError naming the option.

    The config's paths must be absolute (`resolve`). Returns {"search": folders a
    function is imported from, "input_shape": the model's, "classes": its outputs}.
    """
    shape, classes, train = data_shape(config)
    _sizes(config, train)
    kind, search = model_kind(config.model), []
    if kind == "file" and not os.path.isfile(config.model):
        raise ConfigError("model", f"no such file: {config.model}")
    if kind == "function":
        module = config.model.rsplit(":", 1)[0]
        folders = search_folders(cwd)
        root = module_root(module, folders)
        if root is None:
            raise ConfigError("model", f"no module {module} in the current folder ({folders[0]}) or on "
                              "PYTHONPATH")
        search = [root]
    if kind == "cnn":
        want, outputs = MNIST_SHAPE, MNIST_CLASSES
        if shape is not None:
            _fit(config, want, outputs, shape, classes)
    elif kind == "keras":
        want = keras_input(config, shape)
        outputs = classes or SYNTHETIC_CLASSES
        want = shape if shape is not None else want  # the model takes the data's images (then resizes)
    else:
        synthetic_in = (config.image_size, config.image_size, 3) if config.image_size else MNIST_SHAPE
        answer = ask_worker(config, shape or synthetic_in, classes or SYNTHETIC_CLASSES, search)
        want, outputs = answer["input_shape"], answer["classes"]
        if None in want:
            want = shape or synthetic_in
    if shape is None:
        _memory(config, want)
    return {"search": search, "input_shape": list(want), "classes": outputs,
            "train_samples": config.limit_train or train}

