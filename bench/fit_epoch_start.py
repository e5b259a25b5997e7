"""Is TensorFlow `fit`'s occasional wait before an epoch's first step the worker's doing?

A plain Keras `fit` of the published model (TensorFlow backend, CPU, batch 128, 6,000
training and 1,000 test images), none of the worker's code around it, with one callback
that times, per epoch: `on_epoch_begin` to the first `on_train_batch_begin` (Keras sets up
the epoch's data iterator), the first step, and the second. `--tensorboard` also writes the
worker's TensorBoard scalars at each epoch's end, as the worker does.
Run: .venv/bin/python bench/fit_epoch_start.py [--epochs 6] [--tensorboard]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.update(KERAS_BACKEND="tensorflow", CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="3")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--tensorboard", action="store_true")
    args = parser.parse_args()

    import keras
    import numpy as np

    from training.worker import mnist
    from training.worker.engines import make_tensorboard_writer
    from training.worker.model import build_model, make_optimizer

    data = mnist.load(6000, 1000)
    eye = np.eye(10, dtype="float32")
    x, y = (data.x_train.astype("float32") / 255.0)[..., None], eye[data.y_train]
    x_test, y_test = (data.x_test.astype("float32") / 255.0)[..., None], eye[data.y_test]
    model = build_model()
    model.compile(optimizer=make_optimizer(0.05, 0.9), loss="categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=False)
    tensorboard = make_tensorboard_writer(tempfile.mkdtemp(), "tensorflow") if args.tensorboard else None

    class Times(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.times = [time.perf_counter()]

        def on_train_batch_begin(self, batch, logs=None):
            if batch < 3:
                self.times.append(time.perf_counter())

        def on_test_begin(self, logs=None):
            t = self.times
            print(f"epoch begin to first batch {t[1] - t[0]:.3f} s   first step {t[2] - t[1]:.3f} s   "
                  f"second step {t[3] - t[2]:.3f} s", flush=True)

        def on_epoch_end(self, epoch, logs=None):
            if tensorboard:
                tensorboard({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})

    model.fit(x, y, batch_size=128, epochs=args.epochs, validation_data=(x_test, y_test), verbose=0,
              callbacks=[Times()])


if __name__ == "__main__":
    main()
