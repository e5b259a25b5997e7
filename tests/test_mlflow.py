"""MLflow export against a real `mlflow server` (SQLite store, in .venv-mlflow), read back with MlflowClient.

The server runs for the whole session in its own process group, which the fixture
ends. Fabricated finished run folders stand in where training is not the point;
one real tiny run streams live through a proxy that goes away mid-run, and one
streams to an address where nothing listens.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import ROOT, TINY, assert_well_formed, cli, only_run, records, wait_for

from training.store import FINISHED, RunStore
from training.store.layout import METRICS_FILE, SYSTEM_FILE
from training.store.logwriter import encode

MLFLOW_VENV = ROOT / ".venv-mlflow"
EPOCH_KEYS = {"loss", "accuracy", "val_loss", "val_accuracy", "train_s", "eval_s", "epoch_time_s",
              "samples_per_s", "elapsed_s", "cpu_s"}
slow = pytest.mark.slow
pytestmark = pytest.mark.xdist_group("mlflow")  # one server for the module, on one xdist worker
NO_CLIENT = "the MLflow client is missing: pip install -r requirements-mlflow.txt"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on a free port of 127.0.0.1; its process group is ended at the end."""
    executable = MLFLOW_VENV / "bin" / "mlflow"
    if not executable.exists():
        pytest.skip(f"no MLflow server venv at {MLFLOW_VENV}: `make test` builds it (python3.11 -m venv "
                    ".venv-mlflow && .venv-mlflow/bin/pip install -r requirements-mlflow-server.txt)")
    pytest.importorskip("mlflow", reason=NO_CLIENT)
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    with open(folder / "server.log", "wb") as server_log:
        server = subprocess.Popen(
            [str(executable), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
             "--artifacts-destination", str(folder / "artifacts")],
            cwd=folder, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    try:
        wait_for(lambda: server.poll() is not None or healthy(uri), timeout=240, interval=0.5,
                 what="mlflow server to answer /health")
        assert server.poll() is None, (folder / "server.log").read_text()[-3000:]
        yield uri
    finally:
        for signum in (signal.SIGTERM, signal.SIGKILL):  # the group: uvicorn's workers too
            try:
                os.killpg(server.pid, signum)
                server.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass


@pytest.fixture
def client(mlflow_server):
    from mlflow.tracking import MlflowClient

    return MlflowClient(mlflow_server)


def experiment_name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def fabricate(store: RunStore, epochs: int = 4, name: str = "cpu run", samples: int = 3, **group) -> str:
    """A finished local run folder as the worker leaves it: start, epochs, end, system samples."""
    t0 = 1_790_000_000.0 + len(store.ids()) * 10_000
    config = {"device": "cpu", "engine": "fit", "backend": "tensorflow", "epochs": epochs, "batch_size": 128,
              "lr": 0.05, "momentum": 0.9, "seed": 1, "limit_train": 1024, "limit_test": 512,
              "precision": "float32", "jit": "auto", "threads": None, "name": name, "concurrent": False,
              "system_metrics": True}
    start = {"type": "start", "time": t0, "config": config,
             "hardware": {"cpu_model": "AMD EPYC", "cpu_logical_cores": 2, "hostname": "box",
                          "gpu_names": []},
             "versions": {"python": "3.11.7", "keras": "3.15.1", "backend": "tensorflow",
                          "backend_version": "2.21.0"}}
    lines = [start]
    for epoch in range(1, epochs + 1):
        lines.append({"type": "epoch", "epoch": epoch, "loss": 1 / epoch, "accuracy": 1 - 0.5 / epoch,
                      "val_loss": 1.1 / epoch, "val_accuracy": 1 - 0.6 / epoch, "train_s": 2.0, "eval_s": 0.5,
                      "epoch_time_s": 2.5, "samples": 1024, "samples_per_s": 512.0, "elapsed_s": 2.5 * epoch,
                      "cpu_s": 4.0, "time": t0 + 3 + 2.5 * epoch, "seq": epoch + 1})
    lines.append({"type": "end", "status": FINISHED, "error": None, "wall_s": 3 + 2.5 * epochs,
                  "time": t0 + 3.5 + 2.5 * epochs})
    system = [{"type": "system", "elapsed_s": float(i), "process_cpu_percent": 150.0 + i,
               "system_cpu_percent": 90.0, "rss_mb": 1400.0, "time": t0 + 3 + i} for i in range(samples)]
    meta = {"name": name, "source": "local", "device": "cpu", "engine": "fit", "backend": "tensorflow",
            "epochs": epochs, "config": config, **group}
    files = {METRICS_FILE: b"".join(encode(r) for r in lines),
             SYSTEM_FILE: b"".join(encode(r) for r in system)}
    return store.create(meta, FINISHED, files=files).id


def ours(client, experiment: str) -> list:
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


def by_tag(runs: list, key: str, value: str):
    [match] = [r for r in runs if r.data.tags.get(key) == value]
    return match


@slow
def test_export_a_run_and_read_it_back(client, mlflow_server, runs_dir):
    store = RunStore(runs_dir)
    run_id = fabricate(store, epochs=4)
    experiment = experiment_name()
    result = cli("export", run_id, "--mlflow", mlflow_server, "--experiment", experiment, runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()  # one line per MLflow run, nothing of MLflow's own chatter
    [exported] = ours(client, experiment)
    assert line.startswith(f"{run_id}\t{exported.info.run_id}\t")
    info, data = exported.info, exported.data
    assert info.run_name == "cpu run" and info.status == "FINISHED"
    log = store.open(run_id).log(system=True)
    assert info.start_time == round(log.start["time"] * 1000)
    assert info.end_time == round(log.end["time"] * 1000)
    assert data.params["batch_size"] == "128" and data.params["lr"] == "0.05"
    assert data.params["threads"] == "null"
    assert set(data.params) == set(log.start["config"]) | {"model", "data"}  # the workload joins them
    tags = data.tags
    assert tags["training.run_id"] == run_id and tags["device"] == "cpu" and tags["backend"] == "tensorflow"
    assert tags["precision"] == "float32" and tags["where"] == "this machine" and tags["status"] == "finished"
    assert tags["hardware.cpu_model"] == "AMD EPYC" and tags["versions.keras"] == "3.15.1"
    assert set(data.metrics) >= EPOCH_KEYS
    for key in EPOCH_KEYS:
        history = client.get_metric_history(info.run_id, key)
        assert [(m.step, m.timestamp, m.value) for m in history] == [
            (e["epoch"], round(e["time"] * 1000), pytest.approx(e[key])) for e in log.epochs]
    cpu = client.get_metric_history(info.run_id, "system/cpu_utilization_percentage")
    assert [(m.step, m.timestamp) for m in cpu] == [(i, round(s["time"] * 1000))
                                                    for i, s in enumerate(log.system)]
    assert len(client.get_metric_history(info.run_id, "system/process_cpu_utilization_percentage")) == 3
    artifacts = {a.path for a in client.list_artifacts(info.run_id)}
    assert artifacts == {"report.html", "run"}
    files = {a.path for a in client.list_artifacts(info.run_id, "run")}
    assert files >= {"run/config.json", "run/metrics.jsonl", "run/system.jsonl"}


@slow
def test_a_group_is_a_parent_with_its_runs_nested_and_exporting_again_duplicates_nothing(
        client, mlflow_server, runs_dir):
    store = RunStore(runs_dir)
    group = "g-20261127-000000-000000-abcdef"
    members = [fabricate(store, epochs=3, name=f"repeat {i}", group=group, group_kind="repeats",
                         group_name="three", repeat=i, group_size=3) for i in range(3)]
    fabricate(store, epochs=2, name="not in the group")
    experiment = experiment_name()
    from training.exports.mlflow import Exporter

    exporter = Exporter(mlflow_server, experiment)
    for _ in range(2):  # the second export must update, never add
        results = exporter.export([store.open(i) for i in members], report=False)
        assert [r.run_id for r in results] == [group, *members]
        runs = ours(client, experiment)
        assert len(runs) == 4
        parent = by_tag(runs, "training.kind", "group")
        assert parent.data.tags["training.group_id"] == group and parent.info.run_name == "three"
        assert parent.data.params["batch_size"] == "128" and parent.data.params["group_size"] == "3"
        assert "name" not in parent.data.params  # the names differ: not a shared setting
        assert parent.info.status == "FINISHED"
        for run_id in members:
            child = by_tag(runs, "training.run_id", run_id)
            assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
            assert child.data.tags["training.group_id"] == group
            assert child.data.tags["group_kind"] == "repeats"
            assert [m.step for m in client.get_metric_history(child.info.run_id, "val_accuracy")] == [1, 2, 3]
    # One member again, on its own: still nested under the same parent, still no new run.
    exporter.export([store.open(members[1])], report=False)
    assert len(ours(client, experiment)) == 4


@slow
def test_more_values_than_one_request_may_carry_go_in_several_whole_epoch_batches(client, mlflow_server,
                                                                                  runs_dir, monkeypatch):
    from training.exports import mlflow

    store = RunStore(runs_dir)
    run_id = fabricate(store, epochs=250, samples=400)  # 2,500 epoch values, 400 samples of 3
    experiment = experiment_name()
    sizes = []
    send = mlflow.Exporter.send

    def counted(self, mlflow_id, metrics=(), params=None, tags=None):
        sizes.append((len(metrics), len(params or {}), len(tags or {})))
        return send(self, mlflow_id, metrics, params, tags)

    monkeypatch.setattr(mlflow.Exporter, "send", counted)
    [done] = mlflow.Exporter(mlflow_server, experiment).export([store.open(run_id)], report=False)
    assert (done.epochs_sent, done.system_sent) == (250, 400) and done.missing() == []
    assert [n for n, _, _ in sizes if n] == [1000, 1000, 500, 999, 201]  # whole epochs (10), samples (3)
    [exported] = ours(client, experiment)
    history = client.get_metric_history(exported.info.run_id, "loss")
    assert [m.step for m in history] == list(range(1, 251))
    assert len(client.get_metric_history(exported.info.run_id, "system/process_memory_rss_megabytes")) == 400


class DyingProxy:
    """An HTTP proxy to the MLflow server that goes away once the first epoch's metrics went through."""

    def __init__(self, target: str):
        port = int(target.rsplit(":", 1)[1])
        proxy = self
        self.metrics_arrived = threading.Event()

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers after shutdown

            def log_message(self, *args):
                pass

            def do_GET(self):
                self.forward()

            def do_POST(self):
                self.forward()

            def do_PUT(self):
                self.forward()

            def forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                if self.path.endswith("/runs/log-batch") and json.loads(body or b"{}").get("metrics"):
                    proxy.metrics_arrived.set()
                    threading.Thread(target=proxy.go_away, daemon=True).start()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def go_away(self):
        self.server.shutdown()
        self.server.server_close()


@slow
def test_a_server_that_goes_away_mid_run_leaves_the_run_intact_and_export_fills_in_the_rest(
        client, mlflow_server, runs_dir, mnist_cached):
    proxy = DyingProxy(mlflow_server)
    experiment = experiment_name()
    try:
        result = cli("run", "--epochs", "3", *TINY, "--name", "live", "--mlflow", proxy.uri,
                     "--experiment", experiment, runs_dir=runs_dir, timeout=300)
    finally:
        proxy.go_away()
    assert result.returncode == 0, result.stderr
    run_dir = only_run(runs_dir)
    assert_well_formed(run_dir, epochs=3, train=1024)
    assert not records(run_dir, "warning")
    assert proxy.metrics_arrived.is_set()
    assert f"not sent to {proxy.uri}" in result.stderr and f"export {run_dir.name} --mlflow" in result.stderr
    [live] = ours(client, experiment)
    arrived = [m.step for m in client.get_metric_history(live.info.run_id, "val_accuracy")]
    assert arrived and arrived == list(range(1, len(arrived) + 1))  # the first epoch(s), in order
    assert live.data.params["limit_train"] == "1024" and live.data.tags["training.run_id"] == run_dir.name
    # Sent again, now straight to the server: the same MLflow run gets the rest, nothing twice.
    again = cli("export", run_dir.name, "--mlflow", mlflow_server, "--experiment", experiment,
                runs_dir=runs_dir)
    assert again.returncode == 0, again.stderr
    [complete] = ours(client, experiment)
    assert complete.info.run_id == live.info.run_id and complete.info.status == "FINISHED"
    epochs = records(run_dir, "epoch")
    for key in ("loss", "val_accuracy", "epoch_time_s", "cpu_s"):
        history = client.get_metric_history(complete.info.run_id, key)
        assert [(m.step, m.timestamp) for m in history] == [(e["epoch"], round(e["time"] * 1000))
                                                            for e in epochs]
    assert client.get_metric_history(complete.info.run_id, "system/process_cpu_utilization_percentage")


def test_run_with_mlflow_at_a_dead_address_finishes_and_says_what_was_not_sent(runs_dir, mnist_cached):
    pytest.importorskip("mlflow", reason=NO_CLIENT)
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    result = cli("run", "--epochs", "2", *TINY, "--mlflow", dead, runs_dir=runs_dir, timeout=300)
    assert result.returncode == 0, result.stderr
    run_dir = only_run(runs_dir)
    assert_well_formed(run_dir, epochs=2, train=1024)
    kinds = [r["type"] for r in records(run_dir) if r["type"] != "progress"]
    assert kinds == ["start", "epoch", "epoch", "end"]  # what a run without --mlflow writes
    assert f"not sent to {dead}: the run itself, 2 of 2 epochs" in result.stderr
    assert f"send it later with: python -m training export {run_dir.name} --mlflow {dead}" in result.stderr
    assert result.stdout.split() == [run_dir.name]
    print(f"run with a dead MLflow address: {time.monotonic() - started:.1f} s")  # a figure, not a check


def test_mlflow_with_detach_is_refused_before_anything_is_queued(runs_dir):
    result = cli("run", "--detach", "--mlflow", "http://127.0.0.1:9", runs_dir=runs_dir)
    assert result.returncode == 2 and "drop --detach" in result.stderr
    assert not runs_dir.exists() or not any(p for p in runs_dir.iterdir() if not p.name.startswith("."))


def test_without_the_client_run_and_export_say_what_to_install(runs_dir, monkeypatch):
    from training.cli import exports
    from training.exports import mlflow

    monkeypatch.setattr(exports, "client_available", lambda: False)
    args = type("Args", (), {"mlflow": "http://127.0.0.1:9", "detach": False})()
    with pytest.raises(Exception, match="pip install -r requirements-mlflow.txt"):
        exports.check_live(args)
    pytest.importorskip("mlflow.tracking", reason=NO_CLIENT)  # whole first, or a half-import lingers
    monkeypatch.setitem(__import__("sys").modules, "mlflow.tracking", None)
    with pytest.raises(mlflow.ExportError, match="pip install -r requirements-mlflow.txt"):
        mlflow.Exporter("http://127.0.0.1:9")


def test_a_group_exports_only_to_mlflow(runs_dir):
    result = cli("export", "g-20261127-000000-000000-abcdef", runs_dir=runs_dir)
    assert result.returncode == 2 and "a group goes only to MLflow" in result.stderr


@slow
def test_the_compare_pages_button_sends_the_picked_runs(client, mlflow_server, runs_dir, monkeypatch):
    from streamlit.testing.v1 import AppTest

    store = RunStore(runs_dir)
    run_id = fabricate(store, epochs=3)
    experiment = experiment_name()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    at = AppTest.from_file(str(ROOT / "pages" / "compare.py"), default_timeout=60).run()
    assert not [b for b in at.button if b.key == "send_mlflow"]  # no server named: no button
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
    at = AppTest.from_file(str(ROOT / "pages" / "compare.py"), default_timeout=60).run()
    at.multiselect(key="compare_runs").set_value([run_id]).run()
    at.button(key="send_mlflow").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [exported] = ours(client, experiment)
    assert exported.data.tags["training.run_id"] == run_id
    assert any(exported.info.run_id in s.value for s in at.success)


def test_export_to_a_dead_address_fails_with_one_clear_line(runs_dir):
    pytest.importorskip("mlflow", reason=NO_CLIENT)
    dead = f"http://127.0.0.1:{free_port()}"
    result = cli("export", "ref-keras-cpu", "--mlflow", dead, runs_dir=runs_dir,
                 env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (f"error: MLflow at {dead}: connection refused: no MLflow server answers "
                             "at that address\n")
