"""Run configuration: one frozen dataclass, validated in one place.

The command line, the dashboard and the worker all build a `RunConfig` through
`make_config`, so a bad value is refused with the same message everywhere and
never reaches a run folder. This module imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

DEVICES = ("cpu", "gpu")
ENGINES = ("fit", "loop")
BACKENDS = ("tensorflow", "jax", "torch")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
JIT_MODES = ("auto", "on", "off")

MNIST_TRAIN_SIZE = 60_000
MNIST_TEST_SIZE = 10_000
MAX_EPOCHS = 1000
MAX_SEED = 2**31 - 1
MAX_NAME_LENGTH = 100


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


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides what a training run does.

    Defaults reproduce the published experiment: SGD lr 0.05, momentum 0.9
    (Nesterov), batch 128, 30 epochs on full MNIST.
    """

    device: str = "cpu"
    engine: str = "fit"
    backend: str = "tensorflow"
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    seed: int = 1
    limit_train: int | None = None  # first N training images; None = all 60,000
    limit_test: int | None = None  # first N test images; None = all 10,000
    precision: str = "float32"
    jit: str = "auto"
    name: str = ""
    concurrent: bool = False  # True: skip the one-at-a-time queue
    system_metrics: bool = True  # sample CPU/RSS/GPU about once a second

    @property
    def train_samples(self) -> int:
        return self.limit_train or MNIST_TRAIN_SIZE

    @property
    def test_samples(self) -> int:
        return self.limit_test or MNIST_TEST_SIZE

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.train_samples / self.batch_size)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        """Rebuild a config from JSON, ignoring keys a newer version added."""
        known = {f.name for f in dataclasses.fields(cls)}
        return make_config(**{k: v for k, v in data.items() if k in known})


def make_config(**values) -> RunConfig:
    """Build and validate a config; raises `ConfigError` naming the field."""
    config = RunConfig(**values)
    validate(config)
    return config


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


def validate(config: RunConfig) -> None:
    """Check every field; the first bad one raises `ConfigError`."""
    _check_choice("device", config.device, DEVICES)
    _check_choice("engine", config.engine, ENGINES)
    _check_choice("backend", config.backend, BACKENDS)
    _check_choice("precision", config.precision, PRECISIONS)
    _check_choice("jit", config.jit, JIT_MODES)
    if config.engine == "loop" and config.backend != "tensorflow":
        raise ConfigError("engine", "loop is a TensorFlow custom loop; use --engine fit with "
                          f"--backend {config.backend}")
    _check_int("epochs", config.epochs, 1, MAX_EPOCHS)
    if config.limit_train is not None:
        _check_int("limit_train", config.limit_train, 1, MNIST_TRAIN_SIZE)
    if config.limit_test is not None:
        _check_int("limit_test", config.limit_test, 1, MNIST_TEST_SIZE)
    _check_int("batch_size", config.batch_size, 1, config.train_samples)
    _check_float("lr", config.lr, 0.0, 10.0, low_open=True)
    _check_float("momentum", config.momentum, 0.0, 0.999, low_open=False)
    _check_int("seed", config.seed, 0, MAX_SEED)
    if not isinstance(config.name, str) or len(config.name) > MAX_NAME_LENGTH:
        raise ConfigError("name", f"must be text of at most {MAX_NAME_LENGTH} characters")
    if any(not ch.isprintable() for ch in config.name):
        raise ConfigError("name", "must not contain control characters")
