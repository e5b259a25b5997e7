"""One run, from its turn in the queue to its end record, in this process.

`work(run)`:
  1. record its (pid, start time), catch SIGTERM/SIGINT as "stop after this batch";
  2. wait for its turn in the run queue (unless the run is concurrent);
  3. pin the device and pick the Keras backend *before* importing Keras;
  4. find the device's peak FLOP/s (cached per machine, else measured: worker/peak.py);
  5. load the data and build the model (worker/workload.py: the published CNN on MNIST by default),
     train with `fit` or a custom loop;
  6. append start / progress / epoch / end records to metrics.jsonl;
  7. with --profile-steps, leave the backend's trace in the run's profile/ folder.

Exit codes: 0 finished or stopped on request, 1 failed.
"""

from __future__ import annotations

import contextlib
import sys
import time
import traceback

from training.config import SYNTHETIC, RunConfig, data_kind, model_kind
from training.store import END_STATES, FAILED, FINISHED, RUNNING, STOPPED, STOPPING, Run, process, queue
from training.store.logwriter import DISK_ERRNOS, LogWriteError, LogWriter, describe_write_error
from training.store.queue import StopRequested
from training.system import hardware
from training.worker.device import backend_devices, check_device, limit_threads, pin_device, versions
from training.worker.engines import (
    JIT_FLAGS,
    EpochClock,
    StopFlag,
    make_tensorboard_writer,
    train_fit,
    train_loop,
)
from training.worker.peak import peak_for


def train(config: RunConfig, run: Run, writer: LogWriter, stop: StopFlag, echo: bool = False) -> None:
    pin_device(config)
    limit_threads(config)  # --threads: before the backend runs any op
    backend_version, gpu_names = backend_devices(config.backend)
    check_device(config, gpu_names)
    stop.check()
    peak = peak_for(config)  # cached, else a few seconds now: before the start record and its clocks
    stop.check()

    import keras

    from training.worker import data as datasets
    from training.worker.flopcount import count_flops
    from training.worker.model import count_params, describe_layers, make_optimizer
    from training.worker.workload import io_of, materialise

    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_dtype_policy(config.precision)
    model, images = materialise(config, (run.meta.get("workload") or {}).get("search", []))
    input_shape, classes = io_of(model)
    data = datasets.one_hot(images, classes)
    if config.engine == "fit":
        model.compile(optimizer=make_optimizer(config.lr, config.momentum),
                      loss="categorical_crossentropy", metrics=["accuracy"],
                      jit_compile="auto" if JIT_FLAGS[config.jit] is None else JIT_FLAGS[config.jit],
                      steps_per_execution=config.steps_per_execution)
    tensorboard = make_tensorboard_writer(str(run.tensorboard_dir))
    writer.write({
        "type": "start", "config": config.to_dict(),
        "hardware": {**hardware.describe(), "device": config.device,
                     "gpu_names": gpu_names if config.device == "gpu" else []},
        "versions": versions(config, backend_version),
        "params": count_params(model),
        "layers": describe_layers(model), "peak": peak,
        "flops": count_flops(model, images.shape, config.backend),  # the backend's own count, per image
        "train_samples": len(data[0]), "test_samples": len(data[2]),
        "batches_per_epoch": -(-len(data[0]) // config.batch_size),
        "workload": workload_record(config, input_shape, classes, images.shape),
        "jit_compile": model.jit_compile if config.engine == "fit" else JIT_FLAGS[config.jit],
        # What Keras itself took (the loop engine runs one step per call).
        "steps_per_execution": model.steps_per_execution if config.engine == "fit" else 1,
        "tensorboard": tensorboard is not None,
    }, sync=True)
    profiler = None
    if config.profile_steps:
        from training.worker.profiler import TraceProfiler
        profiler = TraceProfiler(config.backend, config.device, run.profile_dir, run.torch_trace_path)
    from training.worker.sampler import ContentionMeter, SystemSampler
    meter = ContentionMeter()  # from here: each epoch record says who else used the machine
    clock = EpochClock(writer, config, stop, tensorboard, profiler, samples=len(data[0]),
                       contention=meter.lap)
    engine = train_fit if config.engine == "fit" else train_loop
    try:
        if config.system_metrics:
            with SystemSampler(run.system_path, use_gpus=config.device == "gpu",
                               on_error=lambda message: clock.warn_later("system", message),
                               echo="system" if echo else None, contention=meter):
                engine(model, data, config, clock)
        else:
            engine(model, data, config, clock)
    finally:
        if profiler is not None and profiler.running:  # stopped or failed mid-profile: keep what it has
            with contextlib.suppress(Exception):
                profiler.stop()


def workload_record(config: RunConfig, input_shape: list, classes: int, data_shape: tuple) -> dict:
    """The start record's `workload` (docs/log-format.md): what trained on what."""
    return {"model": config.model, "data": config.data, "model_kind": model_kind(config.model),
            "data_kind": data_kind(config.data), "input_shape": input_shape, "classes": classes,
            "data_shape": list(data_shape), "image_size": config.image_size,
            "keep_weights": config.keep_weights, "synthetic": data_kind(config.data) == SYNTHETIC}


def _turn(run: Run, config: RunConfig, stop: StopFlag):
    """This run's slot in the one-at-a-time queue, or no wait for a concurrent run."""
    if config.concurrent:
        return contextlib.nullcontext()
    return queue.turn(run.store.root, lambda: queue.older_run_waiting(run.store, run.id),
                      lambda: stop.requested,
                      on_wait=lambda: print("queued: waiting for the run before it",
                                            file=sys.stderr, flush=True))


def _record_end(run: Run, writer: LogWriter, status: str, error: str | None, wall_s: float) -> None:
    """The end record and the status, written even on a disk that just filled up.

    The space reserve is given back first, so both small writes fit; if one
    still fails, the other is tried, and the failure goes to stderr (the
    terminal of a foreground run) rather than hiding the run's own cause.
    """
    run.release_space()
    record = {"type": "end", "status": status, "error": error, "wall_s": round(wall_s, 3)}
    for write in (lambda: writer.write(record, sync=True), lambda: run.set_status(status, error=error)):
        try:
            write()
        except OSError as failure:
            print(f"could not record the run's end ({status}: {error}): {failure}", file=sys.stderr)


def _disk_failure(error: BaseException) -> bool:
    """A full disk, a read-only remount, an I/O error: the cause is the storage, not the code."""
    return isinstance(error, LogWriteError) or (isinstance(error, OSError) and error.errno in DISK_ERRNOS)


def work(run: Run, echo: bool = False, asked_stops_only: bool = False) -> int:
    """Train the run in this process; returns the exit code.

    `echo=True` also prints every record on stdout as a marked line: how a
    worker on a Ray cluster node sends its records home. `asked_stops_only=True`
    (a Slurm job) stops on SIGTERM only once the run folder says `stopping`
    (see StopFlag); other signals are the scheduler's, and so is the end then.
    """
    stop = StopFlag(asked=(lambda: run.recorded_state() == STOPPING) if asked_stops_only else None)
    stop.install()
    run.write_pid(process.identity())
    if run.recorded_state() in (*END_STATES, STOPPING):
        return 0  # cancelled before this process got going; the stopper writes the end
    config = RunConfig.from_dict(run.meta["config"])
    run.reserve_space()
    started = time.perf_counter()
    with LogWriter(run.metrics_path, numbered=True, echo="metrics" if echo else None) as writer:
        def end(status: str, error: str | None = None) -> None:
            _record_end(run, writer, status, error, time.perf_counter() - started)

        try:
            with _turn(run, config, stop):
                run.set_status(RUNNING)
                started = time.perf_counter()  # end() reports seconds from here
                train(config, run, writer, stop, echo)
        except StopRequested:
            end(STOPPED)
            return 0
        except BaseException as error:  # noqa: BLE001 - every failure must reach the log
            if _disk_failure(error):  # the run's own files could not be written: no traceback needed
                end(FAILED, describe_write_error(error))
                print(f"error: {describe_write_error(error)}", file=sys.stderr, flush=True)
                return 1
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            end(FAILED, f"{type(error).__name__}: {error}")
            return 1
        end(FINISHED)
        return 0
