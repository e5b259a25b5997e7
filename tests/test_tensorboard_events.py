"""The worker's TensorBoard events: written without TensorFlow, read back by TensorBoard itself."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

WRITE_TWO_EPOCHS = """
import sys
from training.worker.engines import make_tensorboard_writer
write = make_tensorboard_writer(sys.argv[1])
write({"epoch": 1, "loss": 0.5, "val_accuracy": 0.9, "samples_per_s": 1234.5})
write({"epoch": 2, "loss": 0.25, "val_accuracy": 0.95, "samples_per_s": None})
print(sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras", "jax", "torch"}))
"""


@pytest.mark.slow  # TensorBoard's reader imports TensorFlow when it is installed
def test_events_are_written_without_tensorflow_and_tensorboard_reads_them(tmp_path):
    done = subprocess.run([sys.executable, "-c", WRITE_TWO_EPOCHS, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # no framework was imported to write them
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"loss", "val_accuracy", "samples_per_s"}
    assert [(e.step, e.value) for e in events.Scalars("loss")] == [(1, 0.5), (2, 0.25)]
    assert [e.step for e in events.Scalars("samples_per_s")] == [1]  # a missing value is not written
