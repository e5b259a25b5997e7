"""The published CNN, in Keras 3, and the optimiser that trained it.

Imported only by the worker, after it has chosen the Keras backend and hidden
or checked the GPUs: importing Keras is what fixes both.

    Conv 5x5x24 -> BN -> ReLU -> MaxPool 2x2     (24, 24, 24) -> (12, 12, 24)
    Conv 5x5x48 -> BN -> ReLU -> MaxPool 2x2     (8, 8, 48)   -> (4, 4, 48)
    Flatten -> Dense 512 -> BN -> ReLU           768 -> 512
    Dense 10, softmax                            10 classes
Total 430,666 parameters: 429,498 trainable, 1,168 BatchNorm moving stats.
"""

from __future__ import annotations

import math

import keras
from keras import layers

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


def build_model() -> keras.Model:
    """The network of the published experiment, uncompiled."""
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            layers.Conv2D(24, 5, kernel_initializer="he_normal"),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(48, 5, kernel_initializer="he_normal"),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(512, kernel_initializer="he_normal"),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            # float32 output keeps softmax and the loss stable under mixed precision.
            layers.Dense(NUM_CLASSES, activation="softmax",
                         kernel_initializer="glorot_uniform", dtype="float32"),
        ],
        name="published_cnn",
    )


def make_optimizer(lr: float, momentum: float) -> keras.optimizers.Optimizer:
    """SGD with Nesterov momentum, as published (lr 0.05, momentum 0.9)."""
    return keras.optimizers.SGD(learning_rate=lr, momentum=momentum, nesterov=True)


def count_params(model: keras.Model) -> dict[str, int]:
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    non_trainable = sum(math.prod(w.shape) for w in model.non_trainable_weights)
    return {"total": trainable + non_trainable, "trainable": trainable, "non_trainable": non_trainable}


def _tensors(value) -> list:
    """A layer's input or output as a list: a merge layer (Add, Concatenate) has several."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _shape(tensor) -> list[int | None]:
    """Per image: the batch axis dropped; None where the model leaves a side open."""
    return [None if d is None else int(d) for d in tensor.shape[1:]]


def describe_layers(model: keras.Model) -> list[dict]:
    """Each layer's class and shapes (per image, batch axis dropped), for the start record.

    What `training.analysis.flops` counts FLOPs from: kernel size and bias of a
    convolution or dense layer, pool size of a pooling layer, and the activation.
    """
    described = []
    for layer in model.layers:
        outputs = _tensors(layer.output)
        inputs = _tensors(layer.input) or outputs  # an InputLayer has no input of its own
        entry = {"class": type(layer).__name__, "input": _shape(inputs[0]), "output": _shape(outputs[0])}
        if len(inputs) > 1:  # Add, Concatenate, Multiply: every input's shape
            entry["inputs"] = [_shape(tensor) for tensor in inputs]
        if hasattr(layer, "kernel_size"):
            entry["kernel"] = [int(k) for k in layer.kernel_size]
        if hasattr(layer, "pool_size"):
            entry["pool"] = [int(k) for k in layer.pool_size]
        if hasattr(layer, "use_bias"):
            entry["bias"] = bool(layer.use_bias)
        if getattr(layer, "activation", None) is not None:
            entry["activation"] = layer.activation.__name__
        described.append(entry)
    return described
