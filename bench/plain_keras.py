"""The baseline for bench/worker_overhead.py: the same model and data, no logging.

A plain Keras script: build the published CNN, `model.fit` with validation,
verbose=0, and one callback that only reads the clock at epoch begin/end.
Prints one JSON line per epoch: {"epoch": n, "epoch_time_s": seconds, "cpu_s": CPU seconds}.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from training.worker import mnist  # noqa: E402
from training.worker.model import build_model, make_optimizer  # noqa: E402


class EpochClock(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        print(json.dumps({"epoch": epoch + 1, "epoch_time_s": time.perf_counter() - self.started,
                          "cpu_s": time.process_time() - self.cpu_started}), flush=True)


def main(epochs: int) -> None:
    keras.utils.set_random_seed(1)
    data = mnist.load()
    eye = np.eye(10, dtype="float32")
    x_train = (data.x_train.astype("float32") / 255.0)[..., None]
    x_test = (data.x_test.astype("float32") / 255.0)[..., None]
    model = build_model()
    model.compile(optimizer=make_optimizer(0.05, 0.9), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, eye[data.y_train], batch_size=128, epochs=epochs,
              validation_data=(x_test, eye[data.y_test]), shuffle=True, verbose=0,
              callbacks=[EpochClock()])


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
