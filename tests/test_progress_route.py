"""The progress route the Train cards ask (dashboard/progress.py), on a real server.

`streamlit run app.py` below a base path, as behind a proxy; a run folder made by hand
and a real process standing in for its worker, so the run is running.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from browser_support import start_streamlit

from training.config import make_config
from training.store import RunStore, process
from training.store.layout import METRICS_FILE
from training.store.logwriter import encode

pytestmark = pytest.mark.slow
BASE = "dash"  # server.baseUrlPath: the route must be below it, where the page's cards ask


@pytest.fixture
def server(runs_dir, tmp_path):
    proc, url = start_streamlit(runs_dir, tmp_path / "streamlit.log", base=BASE)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def ask(url: str, run_id: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{url}/api/progress?run={run_id}", timeout=10) as answer:
            assert answer.headers["Cache-Control"] == "no-store"  # every ask reads the log again
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def running_run(store: RunStore, name: str, records: list[dict]) -> tuple:
    config = make_config(device="cpu", batch_size=128, epochs=4, limit_train=4000)
    meta = {"name": name, "source": "local", "device": "cpu", "engine": "fit", "backend": "tensorflow",
            "epochs": 4, "train_samples": 4000, "config": config.to_dict()}
    run = store.create(meta, "running", files={METRICS_FILE: b"".join(encode(r) for r in records)})
    worker = subprocess.Popen(["sleep", "120"], start_new_session=True)  # stands in for the worker
    run.write_pid(process.identity(worker.pid))
    return run, worker


def test_a_running_runs_bars_follow_its_log_and_stop_when_it_ends(server, runs_dir):
    store = RunStore(runs_dir)
    run, worker = running_run(store, "routed", [{"type": "start", "time": time.time()}])
    try:
        status, answer = ask(server, run.id)
        assert status == 200 and answer["active"] is True
        assert [bar["text"] for bar in answer["bars"]] == [
            "Epochs: 0 of 4", "Starting: loading TensorFlow, MNIST and the model"]
        with open(run.metrics_path, "ab") as log:
            log.write(encode({"type": "epoch", "epoch": 1, "loss": 1.0, "accuracy": 0.9, "val_loss": 1.0,
                              "val_accuracy": 0.9, "epoch_time_s": 2.0, "samples_per_s": 2000.0,
                              "elapsed_s": 2.0, "time": time.time()}))
            log.write(encode({"type": "progress", "epoch": 2, "batch": 8, "batches": 32, "epoch_s": 0.5,
                              "samples_per_s": 2048.0, "time": time.time()}))
        _, answer = ask(server, run.id)  # only the appended bytes are read: the same follower
        assert answer["bars"] == [{"value": 0.25, "text": "Epochs: 1 of 4"},
                                  {"value": 0.25, "text": "Epoch 2: batch 8 of 32 · 2,048 samples/s so far"}]
    finally:
        worker.kill()
        worker.wait()
    with open(run.metrics_path, "ab") as log:
        log.write(encode({"type": "end", "status": "finished"}))
    run.set_status("finished")
    status, answer = ask(server, run.id)
    assert status == 200 and answer["active"] is False  # the card stops asking


def test_ids_that_are_not_runs_are_refused_and_nothing_outside_the_store_is_read(server, runs_dir, tmp_path):
    status, answer = ask(server, "..%2F..%2Fetc")
    assert status == 404 and "invalid run id" in answer["error"]
    status, answer = ask(server, "no-such-run")
    assert status == 404 and "no run 'no-such-run'" in answer["error"]
    # A run folder whose log is a link to a file outside the store: its records are not read.
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_bytes(encode({"type": "progress", "epoch": 3, "batch": 31, "batches": 32, "epoch_s": 9.0,
                                "samples_per_s": 31337.0, "time": time.time()}))
    store = RunStore(runs_dir)
    run, worker = running_run(store, "linked", [])
    try:
        run.metrics_path.unlink()
        run.metrics_path.symlink_to(outside)
        status, answer = ask(server, run.id)
        assert status == 200
        assert not any("31,337" in bar["text"] or "batch 31" in bar["text"] for bar in answer["bars"])
    finally:
        worker.kill()
        worker.wait()
