"""The terminal: a followed run's live progress, its summary, and what a failure prints.

`terminal.follow` runs here in this process against run folders written as a
worker writes them; the live bars are drawn on a `rich` console forced to act
as a terminal, so what a person sees is what is asserted. test_worker follows
one real foreground run through `python -m training run`.
"""

from __future__ import annotations

import io
import os
import re
import signal
import threading
import time

from conftest import finished_run
from rich.console import Console

from training.cli import terminal
from training.config import make_config
from training.launch import local
from training.store import RunLog, RunStore, process
from training.store.logwriter import append_record


def console(terminal_like: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal_like, width=160, color_system=None), out


def test_a_finished_run_prints_each_epoch_and_a_summary_off_a_terminal(runs_dir):
    run = finished_run(RunStore(runs_dir), "three epochs", epoch_s=(3.0, 2.0, 2.5), train=1000)
    screen, out = console(terminal_like=False)
    assert terminal.follow([run], console=screen, poll_s=0.01) == 0
    lines = out.getvalue().splitlines()
    assert [line.split(":")[1].split()[1] for line in lines[:3]] == ["1/3", "2/3", "3/3"]
    assert "val_accuracy 0.9900" in lines[1] and "625 images/s" in lines[1]  # 1,000 / (0.8 x 2 s)
    # Steady epoch: median of epochs 2-3 = 2.25 s; 0.99 is first reached at epoch 2, 5 s in.
    assert "three epochs" in lines[3] and "finished: 3 epochs, steady epoch 2.25 s" in lines[3]
    assert "time to 99% 5.00 s (epoch 2)" in lines[3]


def test_live_bars_show_epoch_batch_loss_throughput_and_eta(runs_dir):
    store = RunStore(runs_dir)
    run = local.create_local(store, make_config(epochs=3, limit_train=1280, name="live"))
    run.write_pid(process.identity())  # this test process stands in for the live worker
    run.set_status("running")
    append_record(run.metrics_path, {"type": "start"})
    append_record(run.metrics_path, {"type": "epoch", "epoch": 1, "loss": 0.5, "accuracy": 0.8,
                                     "val_accuracy": 0.9, "epoch_time_s": 4.0, "samples_per_s": 400.0,
                                     "elapsed_s": 4.0})
    append_record(run.metrics_path, {"type": "progress", "epoch": 2, "batch": 5, "batches": 10,
                                     "epoch_s": 1.0, "samples_per_s": 640.0, "loss": 0.25,
                                     "accuracy": 0.875, "elapsed_s": 5.0})
    screen, out = console(terminal_like=True)

    def finish_later() -> None:
        time.sleep(0.5)
        append_record(run.metrics_path, {"type": "end", "status": "finished"})
        run.set_status("finished")

    writer = threading.Thread(target=finish_later)
    writer.start()
    code = terminal.follow([run], console=screen, poll_s=0.05)
    writer.join()
    shown = out.getvalue()
    assert code == 0
    # ETA: 1 s more for this epoch (half done in 1 s) + one more epoch at the mean of 4 s = 5 s.
    assert "epoch 2/3  loss 0.2500  acc 0.8750  640 img/s  ETA 5 s" in shown
    assert "live [" in shown and "finished: 1 epochs" in shown


def test_a_failed_run_exits_1_with_its_cause_and_the_end_of_its_stderr(runs_dir):
    run = finished_run(RunStore(runs_dir), "broken", epoch_s=(2.0,), status="failed")
    run.stderr_path.write_text("noise\nTraceback (most recent call last):\nValueError: bad\n")
    screen, out = console(terminal_like=False)
    assert terminal.follow([run], console=screen, poll_s=0.01) == 1
    assert f"error: run {run.id} failed: boom" in out.getvalue()
    assert "Traceback (most recent call last):\nValueError: bad" in out.getvalue()


def test_a_group_is_followed_until_every_run_has_ended(runs_dir):
    store = RunStore(runs_dir)
    runs = [finished_run(store, f"repeat {i}", epoch_s=(2.0, 2.0)) for i in range(3)]
    screen, out = console(terminal_like=False)
    assert terminal.follow(runs, console=screen, poll_s=0.01) == 0
    assert sum("finished: 2 epochs" in line for line in out.getvalue().splitlines()) == 3


def test_no_eta_until_a_few_batches_after_the_first_are_timed(runs_dir):
    store = RunStore(runs_dir)
    run = local.create_local(store, make_config(epochs=2, limit_train=12800, name="warming up"))
    followed = terminal._Followed(run, RunLog(run.metrics_path), status="running")

    def shown_after(batch: int, epoch_s: float) -> str:
        append_record(run.metrics_path, {"type": "progress", "epoch": 1, "batch": batch, "batches": 100,
                                         "epoch_s": epoch_s, "samples_per_s": 128 * batch / epoch_s,
                                         "loss": 1.0, "accuracy": 0.5})
        followed.log.update()
        return terminal.live_detail(followed, 2)[0]

    # Batch 1 took 20 s: tracing and compiling. Its pace would say 3,980 s left; nothing is said.
    assert "ETA" not in shown_after(1, 20.0)
    assert "ETA" not in shown_after(1 + terminal.ETA_MIN_BATCHES - 1, 20.4)  # too few timed yet
    # Ten batches in 1 s since the first seen: 0.1 s a batch, 89 left here + 100 in epoch 2 = 18.9 s.
    assert shown_after(11, 21.0).endswith("ETA 19 s")


def without_control_codes(text: str) -> list[str]:
    """The lines a terminal would show: ANSI codes dropped, each line what follows its last \\r."""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    return [line.rsplit("\r", 1)[-1] for line in plain.split("\n")]


def test_the_stop_acknowledgement_gets_its_own_line_above_the_live_bar():
    screen, out = console(terminal_like=True)
    bars = terminal._progress(screen)
    with bars, terminal.Interrupts([], screen) as interrupts:  # no runs: nothing is really stopped
        bars.add_task("a run", total=10, completed=3, detail="epoch 1/3  loss 0.5000")
        bars.refresh()
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends; the handler only counts it
        interrupts.send_stops()  # the follow loop's next look acknowledges it
        bars.refresh()
    lines = without_control_codes(out.getvalue())
    assert terminal.STOP_ACK in lines, lines
    assert any("epoch 1/3" in line for line in lines[lines.index(terminal.STOP_ACK):])  # the bar goes on
