"""Stop from the dashboard: it returns at once, the run shows `stopping`, and a run
that ended before the click is reported, not raised.

The "worker" here is a real process that ignores SIGTERM, as a stuck worker would,
so that the grace period and the SIGKILL really happen in the background.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from conftest import ROOT, wait_for
from streamlit.testing.v1 import AppTest

from training.config import make_config
from training.launch import local
from training.store import RunStore, process

IGNORES_SIGTERM = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                   "print('ready', flush=True); time.sleep(120)")


@pytest.fixture
def stuck_run(runs_dir):
    """A run whose recorded process is alive and ignores SIGTERM."""
    store = RunStore(runs_dir)
    run = local.create_local(store, make_config(epochs=3, name="stuck"))
    worker = subprocess.Popen([sys.executable, "-c", IGNORES_SIGTERM], start_new_session=True,
                              stdout=subprocess.PIPE, text=True)
    assert worker.stdout.readline().strip() == "ready"
    run.write_pid(process.identity(worker.pid))
    run.set_status("running")
    yield run, worker
    worker.kill()
    worker.wait()


def open_runs_page(run) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages/runs.py"), default_timeout=60).run()
    at.selectbox(key="detail_run").set_value(run.id).run()
    assert not at.exception
    return at


def test_stop_returns_at_once_and_the_kill_happens_in_the_background(stuck_run, monkeypatch):
    monkeypatch.setattr(local, "STOP_GRACE_S", 3.0)  # the dashboard's grace, shortened for the test
    run, worker = stuck_run
    at = open_runs_page(run)
    began = time.monotonic()
    at.button(key="detail_stop").click().run()
    took = time.monotonic() - began
    assert not at.exception, [e.value for e in at.exception]
    assert took < 1.0  # it did not wait out the 3 s grace period
    assert worker.poll() is None and run.status() == "stopping"
    assert at.button(key="detail_stop").disabled is True  # a second click would do nothing
    at = AppTest.from_file(str(ROOT / "pages/train.py"), default_timeout=60).run()
    assert any("`stopping…`" in m.value for m in at.markdown)
    # The detached stopper waits out the grace, kills, and writes the end record.
    end = wait_for(run.end_record, local.STOP_GRACE_S + 20, what="the stopper's end record")
    assert end["status"] == "stopped" and end["note"] == "killed after SIGTERM timeout"
    assert run.status() == "stopped" and run.recorded_state() == "stopped"
    assert worker.wait(timeout=5) == -9


@pytest.mark.parametrize(("path", "button"), [("pages/runs.py", "detail_stop"),
                                              ("pages/train.py", "stop_{id}")])
def test_stop_on_a_run_that_ended_after_the_page_was_drawn(stuck_run, path, button):
    run, worker = stuck_run
    at = AppTest.from_file(str(ROOT / path), default_timeout=60).run()
    if path == "pages/runs.py":
        at.selectbox(key="detail_run").set_value(run.id).run()
    # The run finishes between the page being drawn and the click.
    run.append_end("finished")
    run.set_status("finished")
    worker.kill()
    worker.wait()
    at.button(key=button.format(id=run.id)).click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("already ended" in w.value and "finished" in w.value for w in at.warning)
    assert run.status() == "finished"
