"""Every validation rule, in-process and through the command line's exit code 2."""

from __future__ import annotations

import pytest
from conftest import cli

from training.config import ConfigError, RunConfig, make_config

BAD = [
    ({"epochs": 0}, "epochs", "from 1 to 1000"),
    ({"epochs": 1001}, "epochs", "from 1 to 1000"),
    ({"batch_size": 0}, "batch_size", "from 1 to 60000"),
    ({"batch_size": 2000, "limit_train": 1000}, "batch_size", "from 1 to 1000"),
    ({"lr": 0.0}, "lr", "(0, 10]"),
    ({"lr": float("nan")}, "lr", "finite"),
    ({"lr": float("inf")}, "lr", "finite"),
    ({"momentum": 1.0}, "momentum", "[0, 0.999]"),
    ({"limit_train": 0}, "limit_train", "from 1 to 60000"),
    ({"limit_train": 60001}, "limit_train", "from 1 to 60000"),
    ({"limit_test": 10001}, "limit_test", "from 1 to 10000"),
    ({"device": "tpu"}, "device", "cpu, gpu"),
    ({"engine": "eager"}, "engine", "fit, loop"),
    ({"backend": "mxnet"}, "backend", "tensorflow, jax, torch"),
    ({"precision": "float64"}, "precision", "float32"),
    ({"jit": "maybe"}, "jit", "auto, on, off"),
    ({"engine": "loop", "backend": "jax"}, "engine", "TensorFlow custom loop"),
    ({"seed": -1}, "seed", "from 0"),
    ({"name": "x" * 101}, "name", "at most 100"),
    ({"epochs": 2.5}, "epochs", "whole number"),
    ({"steps_per_execution": 0}, "steps_per_execution", "from 1 to 1000"),
    ({"steps_per_execution": 1001}, "steps_per_execution", "from 1 to 1000"),
    ({"engine": "loop", "steps_per_execution": 4}, "steps_per_execution", "must be 1 with --engine loop"),
]


@pytest.mark.parametrize(("values", "field", "text"), BAD)
def test_bad_value_names_field_and_range(values, field, text):
    with pytest.raises(ConfigError) as caught:
        make_config(**values)
    assert caught.value.field == field
    assert text in str(caught.value)


def test_defaults_are_the_published_settings():
    config = make_config()
    assert (config.epochs, config.batch_size, config.lr, config.momentum) == (30, 128, 0.05, 0.9)
    assert config.train_samples == 60_000 and config.batches_per_epoch == 469


def test_round_trip_ignores_unknown_keys():
    config = make_config(epochs=3, limit_train=512)
    assert RunConfig.from_dict({**config.to_dict(), "added_later": 1}) == config


CLI_BAD = [
    (["--epochs", "0"], "--epochs", "from 1 to 1000"),
    (["--epochs", "1001"], "--epochs", "from 1 to 1000"),
    (["--batch-size", "0"], "--batch-size", "from 1 to"),
    (["--batch-size", "2048", "--limit-train", "1024"], "--batch-size", "from 1 to 1024"),
    (["--lr", "0"], "--lr", "(0, 10]"),
    (["--lr", "nan"], "--lr", "finite"),
    (["--limit-train", "60001"], "--limit-train", "from 1 to 60000"),
    (["--limit-test", "0"], "--limit-test", "from 1 to 10000"),
    (["--device", "tpu"], "--device", "invalid choice"),
    (["--engine", "eager"], "--engine", "invalid choice"),
    (["--epochs", "abc"], "--epochs", "invalid int"),
    (["--engine", "loop", "--backend", "torch"], "--engine", "TensorFlow"),
    (["--steps-per-execution", "0"], "--steps-per-execution", "from 1 to 1000"),
]


@pytest.mark.parametrize(("args", "option", "text"), CLI_BAD)
def test_cli_rejects_bad_option_with_one_line_and_no_run_folder(args, option, text, tmp_path):
    runs = tmp_path / "runs"
    result = cli("run", *args, runs_dir=runs)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert option in lines[0] and text in lines[0]
    assert not runs.exists() or not any(runs.iterdir())


def test_profile_steps_with_several_steps_per_call_is_refused_naming_why():
    with pytest.raises(ConfigError, match="steps-per-execution 1") as refused:
        make_config(epochs=3, profile_steps=5, steps_per_execution=4)
    assert refused.value.field == "profile_steps"
    assert make_config(epochs=3, profile_steps=5).profile_steps == 5
