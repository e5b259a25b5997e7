"""The training worker: the only module that imports TensorFlow / Keras.

`work(store, run_id)` trains one run folder to completion, in this process:

  1. record its (pid, start time), catch SIGTERM/SIGINT as "stop after this batch";
  2. wait for its turn in the run queue (unless the run is concurrent);
  3. pin the device and pick the Keras backend *before* importing Keras;
  4. load MNIST, build the published CNN, train with `fit` or a custom loop;
  5. append start / progress / epoch / end records to metrics.jsonl.

Exit codes: 0 finished or stopped on request, 1 failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import traceback

from training import hardware, mnist, process, runqueue
from training.config import RunConfig
from training.metricslog import MetricsWriter
from training.runlog import METRICS_FILE, SYSTEM_FILE
from training.runqueue import StopRequested
from training.runstore import (
    CONFIG_FILE,
    FAILED,
    FINISHED,
    QUEUED,
    RUNNING,
    STATUS_FILE,
    STOPPED,
    TENSORBOARD_DIR,
    RunStore,
    read_json,
)

PROGRESS_INTERVAL_S = 1.0  # one progress record about every second


class GpuUnavailable(RuntimeError):
    """--device gpu, but the backend sees no GPU. Never fall back to the CPU."""


class StopFlag:
    """Set by SIGTERM/SIGINT; training checks it between batches.

    A second signal restores the default action and re-raises it, so a
    second Ctrl-C kills a run that is stuck outside the training loop.
    """

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise StopRequested("stop requested")


# -- device and backend ------------------------------------------------------
def pin_device(config: RunConfig) -> None:
    """Choose the Keras backend and hide GPUs for --device cpu. Before any import."""
    os.environ["KERAS_BACKEND"] = config.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep stderr for real errors
    if config.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
        os.environ["JAX_PLATFORMS"] = "cpu"


def backend_devices(backend: str) -> tuple[str, list[str]]:
    """(backend version, names of the GPUs the backend itself can use)."""
    if backend == "tensorflow":
        import tensorflow as tf
        gpus = tf.config.list_physical_devices("GPU")
        names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
        return tf.__version__, names
    if backend == "jax":
        import jax
        try:
            names = [d.device_kind for d in jax.devices("gpu")]
        except RuntimeError:
            names = []
        return jax.__version__, names
    import torch
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return torch.__version__, names


def check_device(config: RunConfig, gpu_names: list[str]) -> None:
    if config.device == "gpu" and not gpu_names:
        hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
        note = f" (CUDA_VISIBLE_DEVICES={hidden!r})" if hidden is not None else ""
        raise GpuUnavailable(
            f"--device gpu: the {config.backend} backend sees no GPU{note}. Check the NVIDIA "
            f"driver (nvidia-smi) and that a CUDA build of {config.backend} is installed. "
            "Not falling back to the CPU.")


def versions(config: RunConfig, backend_version: str) -> dict:
    import keras
    import numpy
    found = {"python": sys.version.split()[0], "keras": keras.__version__,
             "numpy": numpy.__version__, "backend": config.backend,
             "backend_version": backend_version}
    try:
        import tensorflow as tf
        found["tensorflow"] = tf.__version__
    except ImportError:
        found["tensorflow"] = None
    return found


# -- records -----------------------------------------------------------------
class EpochClock:
    """Times epochs and writes progress and epoch records; shared by both engines.

    Epoch time = training seconds + evaluation seconds, as the published logs
    count it; elapsed time runs from the start of training and never pauses.
    """

    def __init__(self, writer: MetricsWriter, config: RunConfig, stop: StopFlag,
                 tensorboard=None):
        self.writer = writer
        self.config = config
        self.stop = stop
        self.tensorboard = tensorboard
        self.batches = config.batches_per_epoch
        self.t0 = self.epoch_t0 = self.eval_t0 = self.epoch_cpu0 = 0.0
        self.train_s = self.eval_s = 0.0
        self.next_progress = 0.0

    def begin_training(self) -> None:
        self.t0 = time.perf_counter()

    def begin_epoch(self) -> None:
        self.epoch_t0 = time.perf_counter()
        self.epoch_cpu0 = time.process_time()  # all of this process's threads
        self.next_progress = self.epoch_t0 + PROGRESS_INTERVAL_S
        self.train_s = self.eval_s = 0.0

    def batch(self, epoch: int, batches_done: int, read_metrics) -> None:
        """Called before each batch: honour a stop, and about once a second report."""
        self.stop.check()
        now = time.perf_counter()
        if now < self.next_progress or batches_done == 0:
            return
        self.next_progress = now + PROGRESS_INTERVAL_S
        seconds = now - self.epoch_t0
        samples = min(batches_done * self.config.batch_size, self.config.train_samples)
        record = {"type": "progress", "epoch": epoch, "batch": batches_done,
                  "batches": self.batches, "epoch_s": round(seconds, 4),
                  "samples_per_s": round(samples / seconds, 2) if seconds > 0 else None,
                  "elapsed_s": round(now - self.t0, 4)}
        record.update({k: float(v) for k, v in read_metrics().items()})
        self.writer.write(record)

    def begin_eval(self) -> None:
        self.eval_t0 = time.perf_counter()
        self.train_s = self.eval_t0 - self.epoch_t0

    def end_eval(self) -> None:
        self.eval_s = time.perf_counter() - self.eval_t0

    def end_epoch(self, epoch: int, metrics: dict) -> None:
        now = time.perf_counter()
        if not self.train_s:  # no evaluation ran
            self.train_s = now - self.epoch_t0
        record = {"type": "epoch", "epoch": epoch}
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            record[key] = float(metrics[key]) if metrics.get(key) is not None else None
        record.update({
            "train_s": round(self.train_s, 6), "eval_s": round(self.eval_s, 6),
            "epoch_time_s": round(self.train_s + self.eval_s, 6),
            "samples": self.config.train_samples,
            "samples_per_s": round(self.config.train_samples / self.train_s, 2),
            "elapsed_s": round(now - self.t0, 6),
            # CPU seconds the whole process used this epoch: cpu_s / epoch_time_s = cores kept busy.
            "cpu_s": round(time.process_time() - self.epoch_cpu0, 4),
        })
        self.writer.write(record, sync=True)  # a finished epoch survives a crash
        if self.tensorboard:
            self.tensorboard(record)


def make_tensorboard_writer(logdir: str, backend: str):
    """Per-epoch scalars for `tensorboard --logdir runs`; None if TF is absent."""
    try:
        import tensorboard  # noqa: F401 - tf.summary needs it to write
        import tensorflow as tf
    except ImportError:
        return None
    if backend != "tensorflow":
        tf.config.set_visible_devices([], "GPU")  # TF must not grab the GPU JAX/torch use
    summary = tf.summary.create_file_writer(logdir)

    def write(record: dict) -> None:
        with summary.as_default():
            for key in ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_time_s", "samples_per_s"):
                if record.get(key) is not None:
                    tf.summary.scalar(key, record[key], step=record["epoch"])
        summary.flush()

    return write


# -- engines -----------------------------------------------------------------
def prepare_data(config: RunConfig):
    """MNIST as float32 in [0, 1], shape (N, 28, 28, 1), with one-hot labels."""
    import numpy as np
    data = mnist.load(config.limit_train, config.limit_test)
    eye = np.eye(10, dtype="float32")
    x_train = (data.x_train.astype("float32") / 255.0)[..., None]
    x_test = (data.x_test.astype("float32") / 255.0)[..., None]
    return x_train, eye[data.y_train], x_test, eye[data.y_test]


# --jit on|off|auto as a jit_compile flag; None ("auto") leaves the choice to Keras / TensorFlow.
JIT_FLAGS = {"on": True, "off": False, "auto": None}


def train_fit(model, data, config: RunConfig, clock: EpochClock) -> None:
    """The published "Keras" system: model.fit with a recording callback."""
    import keras

    class Recorder(keras.callbacks.Callback):
        # Only *_begin hooks and epoch/test ends are overridden: overriding
        # on_train_batch_end would make Keras convert every batch's logs to
        # Python numbers and turn off its async dispatch.
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch + 1
            clock.begin_epoch()

        def on_train_batch_begin(self, batch, logs=None):
            clock.batch(self.epoch, batch, self.model.get_metrics_result)

        def on_test_begin(self, logs=None):
            clock.begin_eval()

        def on_test_end(self, logs=None):
            clock.end_eval()

        def on_epoch_end(self, epoch, logs=None):
            clock.end_epoch(epoch + 1, logs or {})

    x_train, y_train, x_test, y_test = data
    clock.begin_training()
    model.fit(x_train, y_train, batch_size=config.batch_size, epochs=config.epochs,
              validation_data=(x_test, y_test), shuffle=True, verbose=0,
              callbacks=[Recorder()])


def train_loop(model, data, config: RunConfig, clock: EpochClock) -> None:
    """The published low-level "TensorFlow" system: GradientTape in tf.function."""
    import keras
    import tensorflow as tf

    from training.model import make_optimizer

    x_train, y_train, x_test, y_test = data
    optimizer = make_optimizer(config.lr, config.momentum)
    if config.precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    loss_fn = keras.losses.CategoricalCrossentropy()
    train_loss, train_acc = keras.metrics.Mean(), keras.metrics.CategoricalAccuracy()
    val_loss, val_acc = keras.metrics.Mean(), keras.metrics.CategoricalAccuracy()
    jit = JIT_FLAGS[config.jit]

    @tf.function(jit_compile=jit)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            loss = loss_fn(y, probs)
            scaled = optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        train_loss.update_state(loss)
        train_acc.update_state(y, probs)

    @tf.function(jit_compile=jit)
    def eval_step(x, y):
        probs = model(x, training=False)
        val_loss.update_state(loss_fn(y, probs))
        val_acc.update_state(y, probs)

    train_ds = (tf.data.Dataset.from_tensor_slices((x_train, y_train))
                .shuffle(len(x_train), seed=config.seed, reshuffle_each_iteration=True)
                .batch(config.batch_size).prefetch(tf.data.AUTOTUNE))
    test_ds = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(config.batch_size)

    def running():
        return {"loss": train_loss.result(), "accuracy": train_acc.result()}

    clock.begin_training()
    for epoch in range(1, config.epochs + 1):
        for metric in (train_loss, train_acc, val_loss, val_acc):
            metric.reset_state()
        clock.begin_epoch()
        for batch, (x, y) in enumerate(train_ds):
            clock.batch(epoch, batch, running)
            train_step(x, y)
        clock.stop.check()
        clock.begin_eval()
        for x, y in test_ds:
            eval_step(x, y)
        float(val_loss.result())  # wait for the last step before stopping the clock
        clock.end_eval()
        clock.end_epoch(epoch, {"loss": train_loss.result(), "accuracy": train_acc.result(),
                                "val_loss": val_loss.result(), "val_accuracy": val_acc.result()})


# -- the whole run -----------------------------------------------------------
def train(config: RunConfig, folder, writer: MetricsWriter, stop: StopFlag) -> None:
    pin_device(config)
    backend_version, gpu_names = backend_devices(config.backend)
    check_device(config, gpu_names)
    stop.check()

    import keras

    from training.model import build_model, count_params, make_optimizer

    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_dtype_policy(config.precision)
    data = prepare_data(config)
    model = build_model()
    if config.engine == "fit":
        model.compile(optimizer=make_optimizer(config.lr, config.momentum),
                      loss="categorical_crossentropy", metrics=["accuracy"],
                      jit_compile="auto" if JIT_FLAGS[config.jit] is None else JIT_FLAGS[config.jit])
    tensorboard = make_tensorboard_writer(str(folder / TENSORBOARD_DIR), config.backend)
    writer.write({
        "type": "start", "config": config.to_dict(),
        "hardware": {**hardware.describe(), "device": config.device,
                     "gpu_names": gpu_names if config.device == "gpu" else []},
        "versions": versions(config, backend_version),
        "params": count_params(model),
        "train_samples": len(data[0]), "test_samples": len(data[2]),
        "batches_per_epoch": config.batches_per_epoch,
        "jit_compile": model.jit_compile if config.engine == "fit" else JIT_FLAGS[config.jit],
        "tensorboard": tensorboard is not None,
    }, sync=True)
    clock = EpochClock(writer, config, stop, tensorboard)
    engine = train_fit if config.engine == "fit" else train_loop
    if config.system_metrics:
        from training.sysmetrics import SystemSampler
        with SystemSampler(folder / SYSTEM_FILE, use_gpus=config.device == "gpu"):
            engine(model, data, config, clock)
    else:
        engine(model, data, config, clock)


def _older_waiting(store: RunStore, run_id: str):
    """True while an older, non-concurrent run is still queued."""
    def check() -> bool:
        for other in store.ids():
            if other >= run_id:
                return False
            folder = store.root / other
            if (read_json(folder / STATUS_FILE) or {}).get("state") != QUEUED:
                continue  # cheap filter before the process check
            meta = read_json(folder / CONFIG_FILE) or {}
            if (meta.get("config") or {}).get("concurrent"):
                continue
            try:
                if store.status(other) == QUEUED:
                    return True
            except Exception:
                continue  # deleted meanwhile
        return False
    return check


def _turn(store: RunStore, run_id: str, config: RunConfig, stop: StopFlag):
    """This run's slot in the one-at-a-time queue, or no wait for a concurrent run."""
    if config.concurrent:
        return contextlib.nullcontext()
    return runqueue.turn(store.root, _older_waiting(store, run_id), lambda: stop.requested,
                         on_wait=lambda: print("queued: waiting for the run before it",
                                               file=sys.stderr, flush=True))


def work(store: RunStore, run_id: str) -> int:
    """Train the run in this process; returns the exit code."""
    stop = StopFlag()
    stop.install()
    folder = store.path(run_id)
    store.write_pid(run_id, process.identity())
    if store.status(run_id) in (STOPPED, FAILED, FINISHED):
        return 0  # cancelled before this process got going
    config = RunConfig.from_dict(store.meta(run_id)["config"])
    started = time.perf_counter()
    with MetricsWriter(folder / METRICS_FILE) as writer:
        def end(status: str, error: str | None = None) -> None:
            writer.write({"type": "end", "status": status, "error": error,
                          "wall_s": round(time.perf_counter() - started, 3)}, sync=True)
            store.set_status(run_id, status, error=error)

        try:
            with _turn(store, run_id, config, stop):
                store.set_status(run_id, RUNNING)
                started = time.perf_counter()  # end() reports seconds from here
                train(config, folder, writer, stop)
        except StopRequested:
            end(STOPPED)
            return 0
        except BaseException as error:  # noqa: BLE001 - every failure must reach the log
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            end(FAILED, f"{type(error).__name__}: {error}")
            return 1
        end(FINISHED)
        return 0
