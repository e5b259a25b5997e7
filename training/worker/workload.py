"""A run's model for its data: the published CNN, a Keras application, a saved file or a user's function.

    mnist-cnn                  worker/model.py's published network (28x28x1, 10 classes)
    keras:NAME                 keras.applications.<Name>(weights=None): no download, untrained;
                               its input is the data's image shape, resized on the device to
                               --image-size when that differs (MNIST's 28x28 to 32x32, say)
    path/to/model.keras        keras.saving.load_model(safe_mode=True, compile=False): a file that
                               needs unsafe deserialisation (a Python lambda, say) is refused; its
                               weights are re-initialised (keras.models.clone_model) unless
                               --keep-weights
    package.module:function    imported here, in the worker only, from the folder the run was
                               started in (or PYTHONPATH), and called as function(input_shape,
                               num_classes); it returns an uncompiled keras.Model

`python -m training check-workload` (`check`) builds the model in a short process before
a run folder exists (launch/workload.py asks it), so a bad file or function is refused at
the edge with one line. Imported only after the backend is chosen: it imports Keras.
"""

from __future__ import annotations

import importlib
import sys

import keras
from keras import layers

from training.config import (
    SYNTHETIC,
    SYNTHETIC_CLASSES,
    ConfigError,
    RunConfig,
    application,
    data_kind,
    model_kind,
)
from training.worker import data as datasets
from training.worker import model as published


def synthetic_shape(config: RunConfig) -> tuple[tuple[int, ...], int]:
    """The image shape and classes of synthetic data for a model that does not fix them itself."""
    kind = model_kind(config.model)
    if kind == "keras":
        side = config.image_size or application(config.model)[2]
        return (side, side, 3), SYNTHETIC_CLASSES
    if kind == "function" and config.image_size:
        return (config.image_size, config.image_size, 3), SYNTHETIC_CLASSES
    return datasets.MNIST_SHAPE, datasets.MNIST_CLASSES


def keras_application(config: RunConfig, shape: tuple[int, ...], classes: int) -> keras.Model:
    """keras.applications.<Name>(weights=None) on the data's images, resized to --image-size if asked."""
    name, low, _ = application(config.model)
    side = config.image_size or shape[0]
    if side < low or (config.image_size is None and shape[0] != shape[1]):
        raise ConfigError("image_size", f"{config.model} needs square images of at least {low}x{low}; the "
                          f"data's are {'x'.join(map(str, shape))}: give --image-size {low} or more")
    inputs = keras.Input(shape)
    resized = inputs if tuple(shape[:2]) == (side, side) else layers.Resizing(side, side)(inputs)
    return getattr(keras.applications, name)(weights=None, input_tensor=resized, classes=classes,
                                             classifier_activation="softmax")


def load_file(config: RunConfig) -> keras.Model:
    """A saved Keras 3 model, loaded safely; its weights fresh unless --keep-weights."""
    try:
        model = keras.saving.load_model(config.model, compile=False, safe_mode=True)
    except Exception as error:
        text = str(error)
        if "safe_mode" in text or "unsafe" in text.lower():
            raise ConfigError("model", f"{config.model} needs unsafe deserialisation (it holds Python code, "
                              "such as a Lambda layer's), which is refused: rebuild it with registered "
                              "layers, or pass it as a package.module:function") from error
        raise ConfigError("model", f"{config.model} could not be loaded as a Keras 3 model: "
                          f"{type(error).__name__}: {text.splitlines()[0] if text else ''}") from error
    if not isinstance(model, keras.Model):
        raise ConfigError("model", f"{config.model} holds a {type(model).__name__}, not a Keras model")
    if config.keep_weights:
        return model
    try:
        return keras.models.clone_model(model)  # new layers from the config: their initialisers run again
    except Exception as error:
        raise ConfigError("model", f"{config.model}'s weights cannot be re-initialised (clone_model: "
                          f"{type(error).__name__}); give --keep-weights to train from the saved "
                          "ones") from error


def call_function(config: RunConfig, shape: tuple[int, ...], classes: int, search: list[str]) -> keras.Model:
    """`package.module:function`(input_shape, num_classes), imported from `search` then sys.path."""
    module_name, function_name = config.model.rsplit(":", 1)
    sys.path[:0] = [folder for folder in search if folder not in sys.path]
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise ConfigError("model", f"could not import {module_name}: "
                          f"{type(error).__name__}: {error}") from error
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError("model", f"{module_name} has no function {function_name}")
    try:
        model = function(tuple(shape), classes)
    except Exception as error:
        raise ConfigError("model", f"{config.model}({tuple(shape)}, {classes}) raised "
                          f"{type(error).__name__}: {error}") from error
    if not isinstance(model, keras.Model):
        raise ConfigError("model", f"{config.model} returned {type(model).__name__}, not a keras.Model")
    return model


def build(config: RunConfig, shape: tuple[int, ...], classes: int, search: list[str]) -> keras.Model:
    """The run's model, uncompiled, for images of `shape` and `classes` classes."""
    kind = model_kind(config.model)
    if kind == "cnn":
        return published.build_model()
    if kind == "keras":
        return keras_application(config, shape, classes)
    if kind == "file":
        return load_file(config)
    return call_function(config, shape, classes, search)


def io_of(model: keras.Model) -> tuple[list[int | None], int | None]:
    """The model's input shape per image and its number of outputs (classes)."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConfigError("model", f"has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                          "a classifier here takes one image input and gives one output")
    shape = [None if d is None else int(d) for d in model.inputs[0].shape[1:]]
    out = model.outputs[0].shape
    return shape, (int(out[-1]) if len(out) == 2 and out[-1] is not None else None)


def check_fit(config: RunConfig, model: keras.Model, shape: tuple[int, ...], classes: int) -> None:
    """The model takes the data's images and has an output for every label; else ConfigError naming both."""
    want, outputs = io_of(model)
    if len(want) != len(shape) or any(w is not None and w != s for w, s in zip(want, shape)):
        raise ConfigError("model", f"{config.model} takes images of shape {tuple(want)} but --data "
                          f"{config.data} has {tuple(shape)}")
    if outputs is None:
        raise ConfigError("model", f"{config.model}'s output has shape {tuple(model.outputs[0].shape[1:])}; "
                          "a classifier here ends in one probability per class")
    if outputs < classes:
        raise ConfigError("model", f"{config.model} has {outputs} outputs but --data {config.data}'s labels "
                          f"go up to {classes - 1} ({classes} classes)")


def materialise(config: RunConfig, search: list[str]) -> tuple[keras.Model, datasets.Images]:
    """The model and its data, each fitted to the other (synthetic data to the model's shape)."""
    if data_kind(config.data) == SYNTHETIC:
        shape, classes = synthetic_shape(config)
        if model_kind(config.model) == "file":
            model = load_file(config)
            want, classes = io_of(model)
            if None in want or classes is None:
                raise ConfigError("model", f"{config.model} has input {tuple(want)} and {classes} outputs: "
                                  "synthetic data needs a fixed image shape and class count")
            return model, datasets.synthetic(config, tuple(want), classes)
        model = build(config, shape, classes, search)
        return model, datasets.synthetic(config, shape, classes)
    images = datasets.load(config)
    model = build(config, images.shape, images.classes, search)
    check_fit(config, model, images.shape, images.classes)
    return model, images


def check(config: RunConfig, shape: tuple[int, ...], classes: int, search: list[str]) -> dict:
    """`check-workload`: build the model for data of `shape` and `classes` and say what it takes.

    Raises ConfigError for a model that cannot be built or does not fit the data.
    """
    if data_kind(config.data) == SYNTHETIC and model_kind(config.model) == "file":
        model = load_file(config)
    else:
        model = build(config, shape, classes, search)
        check_fit(config, model, shape, classes)
    want, outputs = io_of(model)
    return {"input_shape": want, "classes": outputs, "params": published.count_params(model)["total"]}
