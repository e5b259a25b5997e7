"""Run configuration: one frozen dataclass, validated in one place.

Each field carries its own rules in its metadata: the help text, the allowed
choices or range. `validate` checks every field from those rules, and the
command line builds its `run` options from them (`cli.add_config_options`),
so adding a setting touches this file and the dashboard's widget, nothing
else. This module imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

DEVICES = ("cpu", "gpu")
ENGINES = ("fit", "loop")
BACKENDS = ("tensorflow", "jax", "torch")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
JIT_MODES = ("auto", "on", "off")

MNIST_TRAIN_SIZE = 60_000
MNIST_TEST_SIZE = 10_000
MAX_IMAGES = 10_000_000  # training or test images of an .npz file or synthetic data
MAX_EPOCHS = 1000
MAX_SEED = 2**31 - 1
MAX_NAME_LENGTH = 100
MAX_THREADS = 256  # more than any single machine this runs on; a typo like 1000 is refused
MAX_REPEATS = 50  # runs of one configuration in a group
# Training steps Keras runs per call into the compiled function: 469 is one full MNIST epoch at
# batch 128, so 1000 covers any useful value; a bigger number is a typo.
MAX_STEPS_PER_EXECUTION = 1000
MAX_PROFILE_STEPS = 200  # a trace of more steps is large and slow to write, and shows nothing new
PROFILE_EPOCH = 2  # --profile-steps records in this epoch: the first after warm-up
PROFILE_FIRST_BATCH = 1  # ...from its second batch (0-based 1): the first waits for the input pipeline
# What a sweep may vary; the workload (model, data) first, so groups and sweeps key on it as on the device.
SWEEP_FIELDS = ("model", "data", "device", "backend", "batch_size", "precision", "threads")

# -- the workload: a model plus its data (training/worker/workload.py builds it) --------------------
DEFAULT_MODEL = "mnist-cnn"  # the published 2018 network (training/worker/model.py)
DEFAULT_DATA = "mnist"
KERAS_PREFIX = "keras:"
MODEL_FILE_SUFFIX = ".keras"
DATA_FILE_SUFFIX = ".npz"
SYNTHETIC = "synthetic"
# Keras Applications by their --model name: (keras.applications function, smallest input side, default
# side). Minimums are the applications' own (`imagenet_utils.obtain_input_shape(min_size=...)`); the
# default side is what the application is built for, used for synthetic data without --image-size.
KERAS_APPLICATIONS = {
    "mobilenet": ("MobileNet", 32, 224), "mobilenet_v2": ("MobileNetV2", 32, 224),
    "mobilenet_v3_small": ("MobileNetV3Small", 32, 224), "mobilenet_v3_large": ("MobileNetV3Large", 32, 224),
    "resnet50": ("ResNet50", 32, 224), "resnet101": ("ResNet101", 32, 224),
    "resnet152": ("ResNet152", 32, 224),
    "resnet50_v2": ("ResNet50V2", 32, 224), "vgg16": ("VGG16", 32, 224), "vgg19": ("VGG19", 32, 224),
    "densenet121": ("DenseNet121", 32, 224), "efficientnet_b0": ("EfficientNetB0", 32, 224),
    "efficientnet_b1": ("EfficientNetB1", 32, 240), "efficientnet_v2_b0": ("EfficientNetV2B0", 32, 224),
    "convnext_tiny": ("ConvNeXtTiny", 32, 224), "inception_v3": ("InceptionV3", 75, 299),
    "xception": ("Xception", 71, 299), "nasnet_mobile": ("NASNetMobile", 32, 224),
}
MAX_IMAGE_SIZE = 512  # pixels a side: a 512x512x3 float32 image is 3 MiB; a bigger one is a typo here
SYNTHETIC_CLASSES = 10  # synthetic labels for a model the data does not fix (a keras: model, a function)


class ConfigError(ValueError):
    """A setting outside its allowed range; `field` names the setting."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    @property
    def option(self) -> str:
        """The command-line spelling of the field, e.g. `--batch-size`."""
        return "--" + self.field.replace("_", "-")


def setting(default, help: str, *, choices: tuple | None = None, low=None, high=None,
            low_open: bool = False, flag: str | None = None):
    """A RunConfig field with its rules.

    Args:
        default: the value when nothing is given.
        help: one line for `--help` and the dashboard's tooltips.
        choices: the allowed values of a text setting.
        low, high: the allowed range of a number (`high=None` for batch_size,
            whose bound is the training set's size, checked in `validate`).
        low_open: True when `low` itself is not allowed (a learning rate of 0).
        flag: the command-line switch of a boolean, e.g. `--no-system-metrics`.
    """
    rules = {"help": help, "choices": choices, "low": low, "high": high, "low_open": low_open,
             "flag": flag}
    return field(default=default, metadata=rules)


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides what a training run does.

    Defaults reproduce the published experiment: SGD lr 0.05, momentum 0.9
    (Nesterov), batch 128, 30 epochs on full MNIST.
    """

    device: str = setting("cpu", "where to train", choices=DEVICES)
    engine: str = setting("fit", "fit: Keras model.fit; loop: a TensorFlow GradientTape loop",
                          choices=ENGINES)
    backend: str = setting("tensorflow", "the Keras backend", choices=BACKENDS)
    epochs: int = setting(30, "passes over the training set", low=1, high=MAX_EPOCHS)
    batch_size: int = setting(128, "images per training step", low=1)
    lr: float = setting(0.05, "SGD learning rate", low=0.0, high=10.0, low_open=True)
    momentum: float = setting(0.9, "Nesterov momentum", low=0.0, high=0.999)
    seed: int = setting(1, "random seed for weights and shuffling", low=0, high=MAX_SEED)
    limit_train: int | None = setting(None, "use the first N training images (default: all 60,000)",
                                      low=1, high=MNIST_TRAIN_SIZE)
    limit_test: int | None = setting(None, "use the first N test images (default: all 10,000)",
                                     low=1, high=MNIST_TEST_SIZE)
    precision: str = setting("float32", "Keras dtype policy", choices=PRECISIONS)
    jit: str = setting("auto", "XLA / jit compilation", choices=JIT_MODES)
    steps_per_execution: int = setting(1, "training steps per call into the compiled step (fit engine); "
                                       "more cuts per-step Python and launch overhead, the maths is the "
                                       "same", low=1, high=MAX_STEPS_PER_EXECUTION)
    threads: int | None = setting(None, "CPU threads the backend may use for its ops "
                                  "(default: all cores)", low=1, high=MAX_THREADS)
    name: str = setting("", f"a label for the run (at most {MAX_NAME_LENGTH} characters)")
    concurrent: bool = setting(False, "do not wait for other runs (their timings then compete)",
                               flag="--concurrent")
    system_metrics: bool = setting(True, "do not sample CPU/GPU about once a second",
                                   flag="--no-system-metrics")
    model: str = setting(DEFAULT_MODEL, "the network: mnist-cnn (the published CNN), keras:NAME (a Keras "
                         "Applications architecture, untrained), path/to/model.keras (a saved model), or "
                         "package.module:function (returns an uncompiled model for (input_shape, "
                         "num_classes))")
    data: str = setting(DEFAULT_DATA, "the data: mnist, synthetic (random images for throughput only: no "
                        "accuracy), or path/to/data.npz with x_train, y_train, x_test, y_test")
    image_size: int | None = setting(None, "with --model keras:NAME: the side of the square images the "
                                     "application sees (MNIST is resized to it; default: the data's own, "
                                     "for synthetic data the application's default)", low=1,
                                     high=MAX_IMAGE_SIZE)
    keep_weights: bool = setting(False, "with a .keras model file: train from its saved weights instead of "
                                 "re-initialised ones", flag="--keep-weights")
    profile_steps: int | None = setting(None, f"record N training steps of epoch {PROFILE_EPOCH} with the "
                                        "backend's own profiler into the run's profile/ folder "
                                        "(default: no profile); that epoch leaves the steady state",
                                        low=1, high=MAX_PROFILE_STEPS)

    @property
    def train_samples(self) -> int | None:
        """Training images per epoch; None for an .npz file without --limit-train (the file says)."""
        if self.limit_train or data_kind(self.data) != "file":
            return self.limit_train or MNIST_TRAIN_SIZE  # synthetic data is as many images as MNIST
        return None

    @property
    def batches_per_epoch(self) -> int | None:
        return math.ceil(self.train_samples / self.batch_size) if self.train_samples else None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        """Rebuild a config from JSON, ignoring keys a newer version added."""
        known = {f.name for f in dataclasses.fields(cls)}
        return make_config(**{k: v for k, v in data.items() if k in known})


def model_kind(model: str | None) -> str:
    """What --model names: "cnn" (the published one), "keras" (keras:NAME), "file" (.keras), "function".

    None (a log from before workloads were recorded) is the published CNN.
    """
    model = model or DEFAULT_MODEL
    if model == DEFAULT_MODEL:
        return "cnn"
    if model.startswith(KERAS_PREFIX):
        return "keras"
    if model.endswith(MODEL_FILE_SUFFIX):
        return "file"
    return "function"


def data_kind(data: str | None) -> str:
    """What --data names: "mnist", "synthetic" or "file" (.npz); None (an older log) is MNIST."""
    data = data or DEFAULT_DATA
    return data if data in (DEFAULT_DATA, SYNTHETIC) else "file"


def workload_of(config: dict | None) -> tuple[str, str]:
    """(model, data) of a run's config dict; a run recorded before workloads existed is the published one."""
    config = config or {}
    return config.get("model") or DEFAULT_MODEL, config.get("data") or DEFAULT_DATA


def application(model: str) -> tuple[str, int, int]:
    """(keras.applications function name, smallest side, default side) of keras:NAME."""
    return KERAS_APPLICATIONS[model[len(KERAS_PREFIX):]]


_FUNCTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")


def _check_model(config: RunConfig) -> None:
    model = config.model
    if not isinstance(model, str) or not model.strip():
        raise ConfigError("model", "must name a model: mnist-cnn, keras:NAME, a .keras file or "
                          "package.module:function")
    kind = model_kind(model)
    if kind == "keras" and model[len(KERAS_PREFIX):] not in KERAS_APPLICATIONS:
        raise ConfigError("model", f"{model!r} is not a Keras application this tool builds; one of "
                          + ", ".join(KERAS_PREFIX + name for name in KERAS_APPLICATIONS))
    if kind == "function" and not _FUNCTION.fullmatch(model):
        raise ConfigError("model", f"{model!r} is neither mnist-cnn, keras:NAME, a path ending in "
                          f"{MODEL_FILE_SUFFIX} nor package.module:function")
    if config.image_size is not None and kind not in ("keras", "function"):
        raise ConfigError("image_size", f"goes with --model keras:NAME (or a function on synthetic data); "
                          f"{model} fixes its own input shape")
    if config.image_size is not None and kind == "function" and data_kind(config.data) != "synthetic":
        raise ConfigError("image_size", "with a model function, only sets synthetic data's shape; "
                          f"--data {config.data} fixes its own")
    if kind == "keras" and config.image_size is not None:
        name, low, _ = application(model)
        if config.image_size < low:
            raise ConfigError("image_size", f"{model} needs images of at least {low}x{low} "
                              f"(keras.applications.{name}), got {config.image_size}")
    if config.keep_weights and kind != "file":
        raise ConfigError("keep_weights", f"goes with a {MODEL_FILE_SUFFIX} model file; {model} has no "
                          "saved weights")


def _check_data(config: RunConfig) -> None:
    data = config.data
    if not isinstance(data, str) or not data.strip():
        raise ConfigError("data", f"must be {DEFAULT_DATA}, {SYNTHETIC} or a path ending in "
                          f"{DATA_FILE_SUFFIX}")
    if data_kind(data) == "file" and not data.endswith(DATA_FILE_SUFFIX):
        raise ConfigError("data", f"must be {DEFAULT_DATA}, {SYNTHETIC} or a path ending in "
                          f"{DATA_FILE_SUFFIX}, got {data!r}")


def fitted_to_model(values: dict) -> dict:
    """A sweep's settings for one of its models: --image-size only where the model takes one.

    So `sweep --model mnist-cnn,keras:resnet50 --image-size 64` sizes the application and
    leaves the published CNN at 28x28, instead of refusing the whole sweep.
    """
    takes = model_kind(values.get("model")) == "keras" or (
        model_kind(values.get("model")) == "function" and data_kind(values.get("data")) == SYNTHETIC)
    return values if takes else {**values, "image_size": None}


def make_config(**values) -> RunConfig:
    """Build and validate a config; raises `ConfigError` naming the field."""
    config = RunConfig(**values)
    validate(config)
    return config


def check_repeats(repeats: int) -> None:
    """Runs of one configuration in a group: 1 to MAX_REPEATS."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= MAX_REPEATS:
        raise ConfigError("repeats", f"must be from 1 to {MAX_REPEATS}, got {repeats!r}")


def _check_int(field: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"must be a whole number from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(field, f"must be from {low} to {high}, got {value}")


def _check_choice(field: str, value, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(field, f"must be one of {', '.join(choices)}, got {value!r}")


def _check_float(field: str, value, low: float, high: float, low_open: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(field, f"must be a finite number, got {value!r}")
    below = value <= low if low_open else value < low
    if below or value > high:
        bracket = "(" if low_open else "["
        raise ConfigError(field, f"must be in {bracket}{low:g}, {high:g}], got {value:g}")


def _check_field(spec: dataclasses.Field, value, config: RunConfig) -> None:
    rules = spec.metadata
    if value is None and spec.default is None:
        return  # an optional limit left unset
    if rules["choices"]:
        _check_choice(spec.name, value, rules["choices"])
    elif spec.type in ("int", "int | None"):
        high = (config.train_samples or MAX_IMAGES) if rules["high"] is None else rules["high"]
        if spec.name in ("limit_train", "limit_test") and data_kind(config.data) != "mnist":
            high = MAX_IMAGES  # the .npz file's size is checked at the edge (launch/workload.py)
        _check_int(spec.name, value, rules["low"], high)
    elif spec.type == "float":
        _check_float(spec.name, value, rules["low"], rules["high"], rules["low_open"])
    elif spec.type == "bool" and not isinstance(value, bool):
        raise ConfigError(spec.name, f"must be true or false, got {value!r}")


def _check_profile(config: RunConfig) -> None:
    """--profile-steps N fits in epoch PROFILE_EPOCH, after its first batch."""
    if config.epochs < PROFILE_EPOCH:
        raise ConfigError("profile_steps", f"needs --epochs {PROFILE_EPOCH} or more: the profile is taken "
                          f"in epoch {PROFILE_EPOCH}, after epoch 1's warm-up (tracing, compilation)")
    if config.steps_per_execution != 1:
        raise ConfigError("profile_steps", "needs --steps-per-execution 1: with N steps per call Keras "
                          "calls back only every Nth batch, so the profile could not start at a step")
    if config.batches_per_epoch is None:
        return  # an .npz file's size: the worker's profiler stops at the epoch's end anyway
    room = config.batches_per_epoch - PROFILE_FIRST_BATCH
    if config.profile_steps > room:
        raise ConfigError("profile_steps", f"must be at most {room}: an epoch has {config.batches_per_epoch} "
                          "batches and the first is not profiled (it waits for the input pipeline), "
                          f"got {config.profile_steps}")


def validate(config: RunConfig) -> None:
    """Check every field against its rules; the first bad one raises `ConfigError`."""
    for spec in dataclasses.fields(config):
        if spec.name != "batch_size":  # its bound needs the limits checked first
            _check_field(spec, getattr(config, spec.name), config)
    _check_field(next(f for f in dataclasses.fields(config) if f.name == "batch_size"),
                 config.batch_size, config)
    if config.engine == "loop" and config.backend != "tensorflow":
        raise ConfigError("engine", "loop is a TensorFlow custom loop; use --engine fit with "
                          f"--backend {config.backend}")
    if config.engine == "loop" and config.steps_per_execution != 1:
        raise ConfigError("steps_per_execution", "must be 1 with --engine loop (the custom loop runs "
                          f"one step per call), got {config.steps_per_execution}")
    if config.profile_steps:
        _check_profile(config)
    _check_data(config)
    _check_model(config)
    if not isinstance(config.name, str) or len(config.name) > MAX_NAME_LENGTH:
        raise ConfigError("name", f"must be text of at most {MAX_NAME_LENGTH} characters")
    check_name("name", config.name)


def check_name(option: str, name: str) -> None:
    """The one name rule for `run --name` and `import --name`: printable text, nothing else.

    A name is shown in tables, terminals and HTML: an ESC or a newline would redraw a
    terminal, and a byte that is not UTF-8 (a surrogate) cannot even be encoded."""
    if any(not ch.isprintable() for ch in name):
        raise ConfigError(option, "must not contain control characters or bytes that are not UTF-8")


def clean_name(text: str) -> str:
    """A name taken from a file or a folder from elsewhere, made fit to show: each character
    `check_name` refuses (control characters; a byte that was not UTF-8, which Python holds as a
    surrogate) becomes U+FFFD."""
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in text)
