"""The progress route the Train cards ask (dashboard/progress.py), on a real server.

`streamlit run app.py` below a base path, as behind a proxy, and run folders made by hand.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from browser_support import start_streamlit

from training.config import make_config
from training.store import RunStore
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


def made_run(store: RunStore, name: str, records: list[dict]):
    config = make_config(device="cpu", batch_size=128, epochs=4, limit_train=4000)
    meta = {"name": name, "source": "local", "device": "cpu", "engine": "fit", "backend": "tensorflow",
            "epochs": 4, "train_samples": 4000, "config": config.to_dict()}
    return store.create(meta, "running", files={METRICS_FILE: b"".join(encode(r) for r in records)})


def test_a_runs_bars_follow_its_log_until_its_end_record(server, runs_dir):
    # The route reads the log only: the page's status (and its rerun when it changes) does the rest.
    run = made_run(RunStore(runs_dir), "routed", [{"type": "start", "time": time.time()}])
    status, answer = ask(server, run.id)
    assert status == 200 and answer["ended"] is False
    assert [bar["text"] for bar in answer["bars"]] == [
        "Epochs: 0 of 4", "Starting: loading TensorFlow, MNIST and the model"]
    with open(run.metrics_path, "ab") as log:
        log.write(encode({"type": "epoch", "epoch": 1, "loss": 1.0, "accuracy": 0.9, "val_loss": 1.0,
                          "val_accuracy": 0.9, "epoch_time_s": 2.0, "samples_per_s": 2000.0,
                          "elapsed_s": 2.0, "time": time.time()}))
        log.write(encode({"type": "progress", "epoch": 2, "batch": 8, "batches": 32, "epoch_s": 0.5,
                          "samples_per_s": 2048.0, "time": time.time()}))
    _, answer = ask(server, run.id)
    assert answer["bars"] == [{"value": 0.25, "text": "Epochs: 1 of 4"},
                              {"value": 0.25, "text": "Epoch 2: batch 8 of 32 · 2,048 samples/s so far"}]
    with open(run.metrics_path, "ab") as log:
        log.write(encode({"type": "progress", "epoch": 2, "batch": 0, "batches": 0, "epoch_s": 0.0,
                          "time": time.time()}))  # the schema allows an epoch of no batches
        log.write(encode({"type": "end", "status": "finished"}))
    status, answer = ask(server, run.id)
    assert status == 200 and answer["ended"] is True  # the card stops asking
    assert answer["bars"][1] == {"value": 0.0, "text": "Epoch 2: batch 0 of 0 · — samples/s so far"}


def test_ids_that_are_not_runs_are_refused_and_nothing_outside_the_store_is_read(server, runs_dir, tmp_path):
    for run_id in ("..%2F..%2Fetc", "no-such-run", ".hidden"):
        assert ask(server, run_id) == (404, {"error": "no such run"})  # and no server path in the answer
    # A run folder whose log is a link to a file outside the store: its records are not read.
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_bytes(encode({"type": "progress", "epoch": 3, "batch": 31, "batches": 32, "epoch_s": 9.0,
                                "samples_per_s": 31337.0, "time": time.time()}))
    run = made_run(RunStore(runs_dir), "linked", [])
    run.metrics_path.unlink()
    run.metrics_path.symlink_to(outside)
    status, answer = ask(server, run.id)
    assert status == 200
    assert not any("31,337" in bar["text"] or "batch 31" in bar["text"] for bar in answer["bars"])
