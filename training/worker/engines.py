"""How a run trains: `EpochClock` and the two engines that share it.

  fit    the published "Keras" system: `model.fit` with a recording callback
  loop   the published low-level "TensorFlow" system: GradientTape in tf.function

Both time training and evaluation separately and write the same progress and
epoch records, so their runs compare like for like.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import statistics
import time

from training.config import PROFILE_EPOCH, PROFILE_FIRST_BATCH, RunConfig
from training.store.logwriter import LogWriter
from training.store.queue import StopRequested

PROGRESS_INTERVAL_S = 1.0  # one progress record about every second
STOP_ACK = b"stop requested: the run stops after its current batch; signal again to kill it now\n"
UNASKED_ACK = (b"SIGTERM without a stop request (a scheduler's time limit or a cancel from outside): "
               b"left to the scheduler, whose launcher records why the run ended\n")


class StopFlag:
    """Set by SIGTERM/SIGINT; training checks it between batches.

    A second signal restores the default action and re-raises it, so a
    second Ctrl-C kills a run that is stuck outside the training loop.

    `asked`, when given, tells a stop that was asked for (the run folder says
    `stopping`) from any other signal: a Slurm job's worker ignores the others,
    so a time limit or a cancel from outside ends in the scheduler's kill and
    its launcher names that cause, instead of the run looking stopped on request.
    """

    def __init__(self, asked=None) -> None:
        self.requested = False
        self.asked = asked

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.asked is not None and not self.requested and not self.asked():
            os.write(2, UNASKED_ACK)
            return
        if self.requested:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        self.requested = True
        # os.write, not print: a buffered stream may be mid-write when the signal lands.
        os.write(2, STOP_ACK)

    def check(self) -> None:
        if self.requested:
            raise StopRequested("stop requested")


# -- records -----------------------------------------------------------------
class EpochClock:
    """Times epochs and writes progress and epoch records; shared by both engines.

    Epoch time = training seconds + evaluation seconds, as the published logs
    count it; elapsed time runs from the start of training and never pauses.

    Where the time goes (docs/log-format.md, "Where the time goes"): the clock
    notes when each batch's begin hook runs, one `perf_counter` and one list
    append a batch, and at the epoch's end splits its time into
      first_step_wait_s  epoch begin to the first batch's hook, plus how much
                         longer the first step took than the median step: the
                         input pipeline's start and first host-to-device copy
                         (in epoch 1 also tracing and compilation)
      steps_s            the rest of the training pass, less the worker's own time
      eval_s             evaluation, as before
      outside_s          the worker's own time inside the pass: writing progress
                         records, starting and stopping the profiler
    which sum to epoch_time_s. Nothing syncs per batch: the pass ends after
    `sync`, the engine's read of the metrics as numbers, which waits for the
    device, so work still queued by asynchronous dispatch (JAX, a GPU) counts
    in steps_s rather than in the evaluation after it. One sync an epoch, and
    one on each side of a profile.
    """

    def __init__(self, writer: LogWriter, config: RunConfig, stop: StopFlag,
                 tensorboard=None, profiler=None, samples: int | None = None, contention=None):
        self.writer = writer
        self.contention = contention  # sampler.ContentionMeter.lap: who else used the machine, per epoch
        self.config = config
        self.stop = stop
        self.tensorboard = tensorboard
        self.samples = samples or config.train_samples  # training images per epoch (an .npz file's own)
        self.batches = math.ceil(self.samples / config.batch_size)
        self.later: list[tuple[str, str]] = []  # warnings from other threads, written from this one
        self.t0 = self.epoch_t0 = self.eval_t0 = self.epoch_cpu0 = 0.0
        self.train_s = self.eval_s = 0.0
        self.next_progress = 0.0
        self.epoch = 0
        self.batch_starts: list[float] = []  # perf_counter at each batch hook's entry
        self.outside_s = 0.0
        # --profile-steps: the backend's profiler from batch `profile_from` to `profile_to` of PROFILE_EPOCH.
        self.profiler = profiler if config.profile_steps else None
        self.profile_from = PROFILE_FIRST_BATCH
        self.profile_to = PROFILE_FIRST_BATCH + (config.profile_steps or 0)
        self.profile_s: float | None = None
        self.profiling_epoch = False
        self.sync = lambda: None  # the engine's: waits for the device (a metrics read)

    def begin_training(self) -> None:
        self.t0 = time.perf_counter()

    def begin_epoch(self) -> None:
        self.epoch += 1
        self.profiling_epoch = self.profiler is not None and self.epoch == PROFILE_EPOCH
        self.batch_starts = []
        self.outside_s = 0.0
        self.profile_s = None
        self.epoch_t0 = time.perf_counter()
        self.epoch_cpu0 = time.process_time()  # all of this process's threads
        self.next_progress = self.epoch_t0 + PROGRESS_INTERVAL_S
        self.train_s = self.eval_s = 0.0

    def batch(self, epoch: int, batches_done: int, read_metrics) -> None:
        """Called before each batch: honour a stop, note the time, and about once a second report."""
        self.stop.check()
        now = time.perf_counter()
        self.batch_starts.append(now)
        if self.profiling_epoch:
            self._profile(batches_done)
        if now < self.next_progress or batches_done == 0:
            return
        self.next_progress = now + PROGRESS_INTERVAL_S
        # Reading the metrics waits for the device's queued steps: that is step time, not ours.
        metrics = {k: float(v) for k, v in read_metrics().items()}
        ours = time.perf_counter()
        seconds = now - self.epoch_t0
        samples = min(batches_done * self.config.batch_size, self.samples)
        record = {"type": "progress", "epoch": epoch, "batch": batches_done,
                  "batches": self.batches, "epoch_s": round(seconds, 4),
                  "samples_per_s": round(samples / seconds, 2) if seconds > 0 else None,
                  "elapsed_s": round(now - self.t0, 4)}
        record.update(metrics)
        self.writer.write(record)
        self._write_later()
        self.outside_s += time.perf_counter() - ours

    def _profile(self, batch: int) -> None:
        """Start the profiler before batch `profile_from`, stop it before `profile_to`."""
        if batch == self.profile_from:
            self._profiler_call(self.profiler.start, "could not start")
        elif batch == self.profile_to:
            self._profiler_call(self.profiler.stop, "could not write its trace")

    def _profiler_call(self, call, failure: str) -> None:
        """Sync first (the device's queued steps are not ours to time), then time the call."""
        self.sync()
        began = time.perf_counter()
        try:
            call()
        except Exception as error:  # a profiler that fails is never the run's end
            self.profiler = None
            self.profiling_epoch = False
            self.warn("profiler", f"the {self.config.backend} profiler {failure}: "
                      f"{type(error).__name__}: {error}")
        took = time.perf_counter() - began
        self.outside_s += took
        self.profile_s = (self.profile_s or 0.0) + took

    def end_pass(self) -> None:
        """The training pass is over: stop a profile that ran to its last batch."""
        if self.profiling_epoch and self.profiler is not None and self.profiler.running:
            self._profiler_call(self.profiler.stop, "could not write its trace")

    def begin_eval(self) -> None:
        self.sync()  # the pass ends when the device has done its queued steps
        self.end_pass()
        self.eval_t0 = time.perf_counter()
        self.train_s = self.eval_t0 - self.epoch_t0

    def end_eval(self) -> None:
        self.eval_s = time.perf_counter() - self.eval_t0

    def split(self, train_end: float) -> dict:
        """The epoch's training pass as first_step_wait_s + steps_s + outside_s (see the class)."""
        starts = self.batch_starts
        if not starts:
            return {}
        intervals = [b - a for a, b in zip(starts, [*starts[1:], train_end])]
        middle = intervals[1:-1] or intervals[1:]  # the last also holds the end-of-pass sync
        excess = max(0.0, intervals[0] - statistics.median(middle)) if middle else 0.0
        return {"steps_s": round(train_end - starts[0] - self.outside_s - excess, 6),
                "first_step_wait_s": round(starts[0] - self.epoch_t0 + excess, 6),
                "outside_s": round(self.outside_s, 6)}

    def end_epoch(self, epoch: int, metrics: dict) -> None:
        now = time.perf_counter()
        if not self.train_s:  # no evaluation ran
            self.sync()
            self.end_pass()
            now = time.perf_counter()
            self.train_s = now - self.epoch_t0
        record = {"type": "epoch", "epoch": epoch}
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            record[key] = float(metrics[key]) if metrics.get(key) is not None else None
        record.update({
            "train_s": round(self.train_s, 6), "eval_s": round(self.eval_s, 6),
            "epoch_time_s": round(self.train_s + self.eval_s, 6),
            "samples": self.samples,
            "samples_per_s": round(self.samples / self.train_s, 2),
            "elapsed_s": round(now - self.t0, 6),
            # CPU seconds the whole process used this epoch: cpu_s / epoch_time_s = cores kept busy.
            "cpu_s": round(time.process_time() - self.epoch_cpu0, 4),
            **self.split(self.epoch_t0 + self.train_s),
            **(self.contention() if self.contention else {}),
        })
        if self.profile_s is not None:  # the profiled epoch: not a steady one
            record.update({"profiled": True, "profile_s": round(self.profile_s, 6)})
        self.writer.write(record, sync=True)  # a finished epoch survives a crash
        self._write_later()
        if self.tensorboard:
            try:
                self.tensorboard(record)
            except Exception as error:  # a full disk, a TF I/O error: never the run's end
                self.tensorboard = None  # stop trying; metrics.jsonl stays the record
                self.warn("tensorboard", f"TensorBoard events are no longer written: {error}")

    def warn(self, source: str, message: str) -> None:
        """Record a problem that does not stop training, in the run's own log.

        If the log itself cannot take it, the write error is raised: that one
        does end the run, as `failed` with its cause.
        """
        self.writer.write({"type": "warning", "source": source, "message": message}, sync=True)

    def warn_later(self, source: str, message: str) -> None:
        """`warn` from another thread (the system sampler): written at the next progress record."""
        self.later.append((source, message))  # list.append is atomic under the GIL

    def _write_later(self) -> None:
        while self.later:
            self.warn(*self.later.pop(0))


TENSORBOARD_SCALARS = ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_time_s", "samples_per_s")


def make_tensorboard_writer(logdir: str):
    """Per-epoch scalars for `tensorboard --logdir runs`; None if the tensorboard package is absent.

    Written with the tensorboard package's own record framing and protos into a plain file,
    not tf.summary (nor tensorboard's EventFileWriter, which opens files through TensorFlow
    when it is installed), so a JAX or torch run never imports TensorFlow (seconds of
    start-up, and a second framework reaching for the GPU), and a machine without
    TensorFlow still gets its events. Written synchronously, one flush per epoch: a write
    error reaches EpochClock, which turns it into a warning.
    """
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter
    except ImportError:
        return None
    os.makedirs(logdir, exist_ok=True)
    name = f"events.out.tfevents.{time.time():.0f}.{socket.gethostname()}.{os.getpid()}"
    records = RecordWriter(open(os.path.join(logdir, name), "ab"))  # noqa: SIM115 - open for the run
    records.write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())

    def write(record: dict) -> None:
        values = [summary_pb2.Summary.Value(tag=key, simple_value=float(record[key]))
                  for key in TENSORBOARD_SCALARS if record.get(key) is not None]
        event = event_pb2.Event(wall_time=time.time(), step=record["epoch"],
                                summary=summary_pb2.Summary(value=values))
        records.write(event.SerializeToString())
        records.flush()

    return write


# -- engines -----------------------------------------------------------------
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
            clock.begin_eval()  # syncs first (below): queued steps count as training, not evaluation

        def on_test_end(self, logs=None):
            clock.end_eval()

        def on_epoch_end(self, epoch, logs=None):
            clock.end_epoch(epoch + 1, logs or {})

    def sync() -> None:
        """Wait for the device: JAX's state back into the model, then its metrics read as numbers."""
        if hasattr(model, "jax_state_sync"):
            model.jax_state_sync()
        for value in model.get_metrics_result().values():
            float(value)

    x_train, y_train, x_test, y_test = data
    clock.sync = sync  # at the end of each training pass and around a profile: never per batch
    clock.begin_training()
    model.fit(x_train, y_train, batch_size=config.batch_size, epochs=config.epochs,
              validation_data=(x_test, y_test), shuffle=True, verbose=0,
              callbacks=[Recorder()])


def train_loop(model, data, config: RunConfig, clock: EpochClock) -> None:
    """The published low-level "TensorFlow" system: GradientTape in tf.function."""
    import keras
    import tensorflow as tf

    from training.worker.model import make_optimizer

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

    clock.sync = lambda: float(train_loss.result())
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


