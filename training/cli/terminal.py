"""Following runs on the terminal: one live progress line per run, a summary at the end.

Keras, Ray and pip show one live line per task and keep library chatter out of
the user's terminal. Here a followed run's worker writes its own stderr
(TensorFlow's C++ log lines, tracebacks) to the run's stderr.log; `--verbose`
copies it through as it grows, and a failed run's last lines are printed.

On a terminal the lines are `rich` progress bars: epoch n/N, the batch bar,
loss, accuracy, images/s and the ETA of the whole run. Elsewhere (a pipe, a CI
log) each finished epoch prints one plain line instead, as Keras's verbose=2.

The ETA waits until a few batches are timed: the first batch of a run also
traces and compiles the model, so a pace taken from it is wrong by 10-100x.

Ctrl-C (or SIGTERM) asks every followed run to stop after its current batch,
through the launcher that started it, and keeps following until each has
recorded its end; a second signal ends the local workers at once. The
acknowledgement goes through the console, so it gets a line of its own above
the live bars instead of being written into the middle of one.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from training.analysis import comparison, workload
from training.analysis.display import number
from training.launch import current_status, launcher_of, queued_note
from training.store import (
    END_STATES,
    FAILED,
    LOST,
    STOPPING,
    Run,
    RunError,
    RunLog,
    process,
)

POLL_S = 0.25  # how often the logs are read; a progress record arrives about once a second
ASK_S = 2.0  # a run that looks lost (a pending Slurm job) is asked of its launcher at most this often
STDERR_TAIL_LINES = 30  # printed when a run fails: the traceback's end
log = logging.getLogger(__name__)
# Batches timed between two progress records before the ETA is shown (the first is never timed).
ETA_MIN_BATCHES = 5
STOP_ACK = "stop requested: runs stop after their current batch; press Ctrl-C again to kill them now"


@dataclass
class _Followed:
    run: Run
    log: RunLog
    stderr_offset: int = 0
    shown_epochs: int = 0
    task: int | None = None
    status: str = "queued"
    seen_states: set = field(default_factory=set)
    asked: float = -ASK_S  # when its launcher was last asked (time.monotonic)
    pace_from: dict | None = None  # the first progress record seen of the current epoch


class Interrupts:
    """First SIGINT/SIGTERM: stop the runs gracefully. Second: kill local workers and die by it.

    The handler itself only counts and acknowledges: asking a launcher to stop can take
    seconds (squeue, Ray's API) and raise anything, which must not happen inside a signal
    handler. The follow loop, which looks every POLL_S, sends the stop requests.
    """

    def __init__(self, runs: list[Run], console: Console):
        self.runs = runs
        self.console = console
        self.count = 0
        self.requested = False
        self.previous: dict[int, object] = {}

    def __enter__(self) -> Interrupts:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame) -> None:
        self.count += 1
        if self.count == 1:
            return  # send_stops acknowledges it, from the follow loop, within POLL_S
        os.write(2, b"\n")  # the live bar's line has no newline yet; the shell's prompt comes next
        for run in self.runs:  # the second signal: no more waiting; the stopper records the end
            elsewhere = run.meta.get("cluster") or run.meta.get("slurm")  # their schedulers kill them
            if not elsewhere and (ident := run.pid()):
                process.kill_group(ident)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    def send_stops(self) -> None:
        """After the first signal, once: ask each followed run's launcher to stop it."""
        if not self.count or self.requested:
            return
        self.requested = True
        self.console.print(STOP_ACK, highlight=False, soft_wrap=True, markup=False)
        for run in self.runs:
            try:
                launcher_of(run).request_stop(run)
            except RunError:
                pass  # it ended already, or is stopping
            except Exception as error:  # noqa: BLE001 - a cluster that does not answer: say so, go on
                log.warning("run %s: could not ask it to stop: %s", run.id, error)


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(bar_width=24),
                    TextColumn("{task.fields[detail]}"), console=console, transient=False,
                    refresh_per_second=4)


def epoch_line(run: Run, record: dict, epochs: int | None) -> str:
    """One finished epoch, as a plain line."""
    return (f"{run.name}: epoch {record['epoch']}/{epochs or '?'}  loss {number(record.get('loss'), '.4f')}"
            f"  accuracy {number(record.get('accuracy'), '.4f')}"
            f"  val_accuracy {number(record.get('val_accuracy'), '.4f')}"
            f"  {number(record.get('epoch_time_s'), '.2f', ' s')}"
            f"  {number(record.get('samples_per_s'), ',.0f', ' images/s')}")


def live_detail(followed: _Followed, now_epochs: int | None) -> tuple[str, float, float]:
    """(text, batches done, batches) for the live bar from the latest progress or epoch record."""
    log, epochs = followed.log, now_epochs or "?"
    if followed.status == "queued":
        meta = followed.run.meta
        waits = queued_note(followed.run) if meta.get("slurm") or meta.get("cluster") else \
            "waiting for the run before it"
        return f"queued: {waits}", 0, 1
    progress = log.progress
    if progress:
        if followed.pace_from is None or followed.pace_from["epoch"] != progress["epoch"]:
            followed.pace_from = progress
        eta = _eta(log, now_epochs, progress, followed.pace_from)
        text = (f"epoch {progress['epoch']}/{epochs}  loss {number(progress.get('loss'), '.4f')}  "
                f"acc {number(progress.get('accuracy'), '.4f')}  "
                f"{number(progress.get('samples_per_s'), ',.0f', ' img/s')}{eta and f'  ETA {eta}'}")
        return text, progress["batch"], progress["batches"]
    if log.epochs:
        last = log.epochs[-1]
        return (f"epoch {last['epoch']}/{epochs} done  val_acc {number(last.get('val_accuracy'), '.4f')}",
                1, 1)
    return "starting: loading the backend, MNIST and the model", 0, 1


def _eta(log: RunLog, epochs: int | None, progress: dict, pace_from: dict) -> str:
    """Seconds left for the whole run, from the mean epoch so far and this epoch's pace; "" if unknown.

    Before any epoch has ended, the pace is the batches timed since `pace_from` (an earlier
    progress record of this epoch), never the first batch's, which includes compiling:
    nothing is shown until ETA_MIN_BATCHES of them are timed.
    """
    if not epochs or not progress.get("batch"):
        return ""
    done = [e["epoch_time_s"] for e in log.epochs if e.get("epoch_time_s")]
    if done:
        this_epoch = progress["epoch_s"] / progress["batch"] * progress["batches"]
        per_epoch = sum(done) / len(done)
    else:
        timed = progress["batch"] - pace_from["batch"]
        if timed < ETA_MIN_BATCHES:
            return ""
        per_batch = (progress["epoch_s"] - pace_from["epoch_s"]) / timed
        per_epoch = per_batch * progress["batches"]
        this_epoch = progress["epoch_s"] + per_batch * (progress["batches"] - progress["batch"])
    left = this_epoch - progress["epoch_s"] + per_epoch * (epochs - progress["epoch"])
    return f"{max(left, 0):,.0f} s"


def summary(run: Run, log: RunLog, status: str) -> str:
    """The end of a run in one line: its status, steady epoch, best accuracy, time to target."""
    m = comparison.measure(log.epochs)
    if note := workload.accuracy_note(run.meta, log.start):  # synthetic data: images/s only
        return (f"{run.name} [{run.id}] {status}: {m['epochs_done']} epochs, steady epoch "
                f"{number(m['steady_epoch_s'], ',.2f', ' s')}, {number(m['steady_samples_per_s'], ',.0f')} "
                f"images/s; {note}")
    reached = ("not reached" if m["time_to_target_s"] is None
               else f"{m['time_to_target_s']:,.2f} s (epoch {m['time_to_target_epoch']})")
    return (f"{run.name} [{run.id}] {status}: {m['epochs_done']} epochs, steady epoch "
            f"{number(m['steady_epoch_s'], ',.2f', ' s')}, {number(m['steady_samples_per_s'], ',.0f')} "
            f"images/s, best val_accuracy {number(m['best_val_accuracy'], '.4f')}, "
            f"time to {comparison.DEFAULT_TARGET:.0%} {reached}")


def _copy_stderr(followed: _Followed, out) -> None:
    """--verbose: whatever the worker added to its stderr.log since the last look."""
    try:
        with open(followed.run.stderr_path, "rb") as handle:
            handle.seek(followed.stderr_offset)
            data = handle.read()
    except FileNotFoundError:
        return
    followed.stderr_offset += len(data)
    if data:
        out.write(data.decode(errors="replace"))
        out.flush()


def follow(runs: list[Run], verbose: bool = False, console: Console | None = None,
           poll_s: float = POLL_S) -> int:
    """Show the runs' progress until every one has ended; 0 if all finished or stopped, else 1.

    Args:
        runs: the runs to follow (one run, or a group's).
        verbose: copy each worker's stderr (the backend's own log lines) through.
        console: where to draw (stderr by default); a terminal gets live bars.
        poll_s: seconds between looks at the logs.
    """
    console = console or Console(stderr=True)
    followed = [_Followed(run, RunLog(run.metrics_path)) for run in runs]
    live = console.is_terminal
    bars = _progress(console) if live else None
    with Interrupts(runs, console) as interrupts, (bars or _nothing()):
        while True:
            interrupts.send_stops()
            for item in followed:
                _look(item, bars, console, verbose)
            if all(item.status in END_STATES or item.status == LOST for item in followed):
                break
            time.sleep(poll_s)
    return _finish(followed, console)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def _look(item: _Followed, bars: Progress | None, console: Console, verbose: bool) -> None:
    item.log.update()
    status = item.run.status()
    if status == LOST:  # a pending Slurm job or a dead Ray follower: its launcher knows better
        now = time.monotonic()
        if now - item.asked >= ASK_S:
            item.asked = now
            status = current_status(item.run)
        else:
            status = item.status
    item.status = status
    epochs = item.run.meta.get("epochs")
    if verbose:
        _copy_stderr(item, sys.stderr)
    if bars is not None:
        text, done, total = live_detail(item, epochs)
        if item.task is None:
            item.task = bars.add_task(item.run.name, total=total, completed=done, detail=text)
        bars.update(item.task, total=total, completed=done, detail=text)
        return
    for record in item.log.epochs[item.shown_epochs:]:
        console.print(epoch_line(item.run, record, epochs), highlight=False, soft_wrap=True)
    item.shown_epochs = len(item.log.epochs)
    if item.status == STOPPING and STOPPING not in item.seen_states:
        item.seen_states.add(STOPPING)
        console.print(f"{item.run.name}: stopping after its current batch", highlight=False)


def _finish(followed: list[_Followed], console: Console) -> int:
    code = 0
    for item in followed:
        item.log.update()
        console.print(summary(item.run, item.log, item.status), highlight=False, soft_wrap=True)
        if item.status in (FAILED, LOST):
            code = 1
            cause = item.run.cause(item.status, item.log) or "no cause recorded"
            console.print(f"error: run {item.run.id} {item.status}: {cause}", highlight=False,
                          soft_wrap=True, markup=False)
            if tail := item.run.stderr_tail(STDERR_TAIL_LINES):
                console.print(tail, highlight=False, soft_wrap=True, markup=False)
    return code
