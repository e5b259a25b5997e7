"""The published network: layer structure and parameter counts (imports Keras)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # imports Keras and TensorFlow into the test process


def test_layers_and_parameter_counts_match_the_published_summary():
    from training.worker.model import build_model, count_params

    model = build_model()
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Conv2D", "BatchNormalization", "Activation", "MaxPooling2D",
                     "Conv2D", "BatchNormalization", "Activation", "MaxPooling2D",
                     "Flatten", "Dense", "BatchNormalization", "Activation", "Dense"]
    shapes = [tuple(layer.output.shape[1:]) for layer in model.layers]
    assert shapes[0] == (24, 24, 24) and shapes[3] == (12, 12, 24)
    assert shapes[4] == (8, 8, 48) and shapes[7] == (4, 4, 48)
    assert shapes[8] == (768,) and shapes[9] == (512,) and shapes[12] == (10,)
    # The published per-layer counts.
    assert [layer.count_params() for layer in model.layers] == [
        624, 96, 0, 0, 28848, 192, 0, 0, 0, 393728, 2048, 0, 5130]
    assert count_params(model) == {"total": 430_666, "trainable": 429_498, "non_trainable": 1_168}
    conv1, dense1, dense2 = model.layers[0], model.layers[9], model.layers[12]
    assert conv1.kernel_initializer.__class__.__name__ == "HeNormal"
    assert dense1.kernel_initializer.__class__.__name__ == "HeNormal"
    assert dense2.kernel_initializer.__class__.__name__ == "GlorotUniform"
    assert dense2.activation.__name__ == "softmax"


def test_optimizer_is_nesterov_sgd():
    from training.worker.model import make_optimizer

    optimizer = make_optimizer(0.05, 0.9)
    assert optimizer.nesterov and optimizer.momentum == 0.9
    assert float(optimizer.learning_rate) == pytest.approx(0.05)


def test_the_worker_describes_the_layers_the_published_runs_carry():
    # The published runs' layers are typed from the 2018 summary; the worker's come from the
    # built model. FLOPs per image are counted from these, so the two must agree.
    from training.imports.runs import PUBLISHED_LAYERS
    from training.worker.model import build_model, describe_layers

    assert describe_layers(build_model()) == PUBLISHED_LAYERS
