"""bench/proctree.py: CPU-seconds of a changing process tree over a window (the observer bench's maths)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from proctree import TreeMeter, cpu_seconds  # noqa: E402


def test_an_ended_process_keeps_what_it_used_and_a_new_one_counts_from_its_first_sighting():
    meter = TreeMeter()
    meter.take(0.0, {(1, 0.0): 1.0, (2, 0.0): 0.5})
    meter.take(1.0, {(1, 0.0): 1.5, (2, 0.0): 1.0})
    meter.take(2.0, {(1, 0.0): 2.0, (3, 1.5): 0.2})  # pid 2 ended; pid 3 started
    meter.take(3.0, {(1, 0.0): 2.0, (2, 2.5): 0.1, (3, 1.5): 0.4})  # pid 2 reused: a new process
    assert [total for _, total in meter.samples] == pytest.approx([1.5, 2.5, 3.2, 3.5])
    assert cpu_seconds(meter.samples, 0.0, 3.0) == pytest.approx(2.0)


def test_the_window_is_read_between_samples_and_must_be_covered():
    samples = [(10.0, 0.0), (12.0, 1.0), (14.0, 3.0)]
    assert cpu_seconds(samples, 11.0, 13.0) == pytest.approx(1.5)  # 0.5 → 2.0
    with pytest.raises(ValueError, match="do not cover"):
        cpu_seconds(samples, 9.0, 13.0)
