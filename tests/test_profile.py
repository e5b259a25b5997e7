"""`--profile-steps 5` for real: each backend's trace, read back with that backend's own reader.

What "readable" means here, as strongly as the installed packages allow:
  tensorflow  the `.xplane.pb` parses with TensorFlow's own XSpace schema
              (`tensorflow.tsl.profiler.protobuf.xplane_pb2`, the proto TensorBoard's
              profile plugin reads; the plugin itself is not installed), and it holds
              exactly N training steps: 2 N conv-filter gradients (two conv layers);
  torch       the Chrome trace is JSON that torch wrote for chrome://tracing and Perfetto,
              with exactly N steps' conv backward ops;
  jax         the Perfetto trace (gzipped Chrome JSON) holds the jitted train step N
              times or more, and the `.xplane.pb` parses like TensorFlow's.
Each also checks the profiled epoch's record and that it left the steady state.
"""

from __future__ import annotations

import collections
import gzip
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, TINY, cli, only_run, records

from training.analysis import comparison, timesplit
from training.analysis.series import load_series
from training.store import RunStore

STEPS = 5
SPLIT = ("steps_s", "first_step_wait_s", "eval_s", "outside_s")

# Run in a child: the test process never imports TensorFlow.
READ_XPLANE = """
import collections, json, sys
from tensorflow.tsl.profiler.protobuf import xplane_pb2
space = xplane_pb2.XSpace()
with open(sys.argv[1], "rb") as handle:
    space.ParseFromString(handle.read())
names = collections.Counter()
for plane in space.planes:
    for line in plane.lines:
        for event in line.events:
            names[plane.event_metadata[event.metadata_id].name] += 1
print(json.dumps({"planes": [plane.name for plane in space.planes], "names": names}))
"""


def read_xplane(path) -> dict:
    result = subprocess.run([sys.executable, "-c", READ_XPLANE, str(path)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def profiled_run(runs_dir, backend: str, engine: str = "fit", epochs: int = 3):
    result = cli("run", "--backend", backend, "--engine", engine, "--epochs", str(epochs), *TINY,
                 "--profile-steps", str(STEPS), runs_dir=runs_dir, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = only_run(runs_dir)
    epochs_logged = records(run_dir, "epoch")
    assert not records(run_dir, "warning"), records(run_dir, "warning")
    assert [bool(e.get("profiled")) for e in epochs_logged] == [e["epoch"] == 2 for e in epochs_logged]
    profiled = epochs_logged[1]
    assert 0 < profiled["profile_s"] <= profiled["outside_s"] + 1e-6
    for record in epochs_logged:
        assert sum(record[k] for k in SPLIT) == pytest.approx(record["epoch_time_s"], abs=1e-5)
        assert all(record[k] >= 0 for k in SPLIT)
    if epochs >= 3:
        assert comparison.steady_epoch_s(epochs_logged) == pytest.approx(
            comparison.steady_epoch_s([e for e in epochs_logged if e["epoch"] != 2]))
    return run_dir


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["fit", "loop"])
def test_tensorflow_leaves_an_xplane_that_holds_the_profiled_steps(engine, runs_dir, mnist_cached):
    run_dir = profiled_run(runs_dir, "tensorflow", engine)
    [xplane] = (run_dir / "profile" / "plugins" / "profile").glob("*/*.xplane.pb")
    assert xplane.stat().st_size > 0
    space = read_xplane(xplane)
    assert "/host:CPU" in space["planes"]
    filter_grads = sum(n for name, n in space["names"].items()
                       if "published_cnn" in name and "Conv2DBackpropFilter" in name)
    assert filter_grads == 2 * STEPS  # two conv layers, one filter gradient each per step
    # The stacked bar of this real run: epoch 3 alone is steady (epoch 2 was profiled).
    store = RunStore(runs_dir)
    series = load_series([store.open(run_dir.name), store.open("ref-keras-cpu")])
    figure = timesplit.make_time_split_figure(series)
    third = records(run_dir, "epoch")[2]
    assert [bar.x[0] for bar in figure.data if bar.type == "bar"] == [third[k] for k in SPLIT]
    assert [note.text for note in figure.layout.annotations] == [timesplit.NOT_RECORDED]
    report = runs_dir.parent / "report.html"
    assert cli("report", run_dir.name, "ref-keras-cpu", "-o", str(report), runs_dir=runs_dir).returncode == 0
    assert "Where the time goes: steady-state epoch" in report.read_text()


@pytest.mark.slow
def test_torch_leaves_a_chrome_trace_of_the_profiled_steps(runs_dir, mnist_cached):
    run_dir = profiled_run(runs_dir, "torch", epochs=2)
    trace = json.loads((run_dir / "profile" / "torch_trace.json").read_text())
    ops = collections.Counter(e["name"] for e in trace["traceEvents"] if e.get("cat") == "cpu_op")
    assert ops["aten::convolution_backward"] == 2 * STEPS
    assert all({"ph", "ts", "name"} <= e.keys() for e in trace["traceEvents"] if e.get("cat") == "cpu_op")


@pytest.mark.slow
def test_jax_leaves_a_perfetto_trace_and_an_xplane(runs_dir, mnist_cached):
    run_dir = profiled_run(runs_dir, "jax", epochs=2)
    folder = run_dir / "profile" / "plugins" / "profile"
    [perfetto] = folder.glob("*/perfetto_trace.json.gz")
    with gzip.open(perfetto, "rt") as handle:
        events = json.load(handle)["traceEvents"]
    steps = sum(1 for e in events if e.get("ph") == "X" and e.get("name") == "PjitFunction(train_step)")
    assert steps >= STEPS
    [xplane] = folder.glob("*/*.xplane.pb")
    assert "/host:CPU" in read_xplane(xplane)["planes"]


def test_the_profile_folder_is_named_by_the_layout_only():
    from training.store import layout
    assert layout.PROFILE_DIR == "profile" and layout.TORCH_TRACE_FILE == "torch_trace.json"
    owners = [p for p in (ROOT / "training").rglob("*.py") if '"torch_trace.json"' in p.read_text()]
    assert owners == [ROOT / "training" / "store" / "layout.py"]
