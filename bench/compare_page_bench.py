"""How long one rerun of the Compare page takes with 50 runs x 30 epochs picked.

Builds a temporary runs folder of 50 imported 30-epoch runs (from the
published Keras log, renamed), renders pages/compare.py under Streamlit's
AppTest with all 50 picked, and times 5 reruns after a warm-up.
That covers reading every log (incrementally, as the page does), the summary
maths, the verdict's bootstrap intervals, building the charts chosen (the default
one, or every chart with --all-charts) and serialising them to the front end; the
browser's own drawing is not included (bench/observer_cost.py measures that). Goal: under 1 s per rerun.
Run: .venv/bin/python bench/compare_page_bench.py [--all-charts]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

RUNS = 50
RERUNS = 5


def main() -> None:
    from conftest import chart_specs
    from streamlit.testing.v1 import AppTest
    all_charts = "--all-charts" in sys.argv[1:]

    from training.imports.runs import REFERENCE_TEXT, import_text
    from training.store import RunStore

    keras_block = REFERENCE_TEXT.read_text().split("### Tensorflow GPU")[0]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TRAINING_RUNS_DIR"] = tmp
        store = RunStore(tmp)
        ids = [import_text(store, keras_block, f"run{i}.md", name=f"run {i}",
                           device="cpu" if i % 2 else "gpu")[0] for i in range(RUNS)]
        at = AppTest.from_file(str(ROOT / "pages" / "compare.py"), default_timeout=120)
        at.run()
        at.toggle(key="show_refs").set_value(False).run()
        at.multiselect(key="compare_runs").set_value(ids)
        if all_charts:  # every chart the runs view offers, in one more rerun before the timed ones
            at.run()
            at.button_group(key="charts").set_value(["val_acc_time", "val_acc_epoch", "val_loss_time",
                                                     "val_loss_epoch", "loss_epoch", "acc_epoch",
                                                     "epoch_time", "throughput", "time_split", "system"])
        started = time.perf_counter()
        at.run()  # first render: every log read from byte 0
        first = time.perf_counter() - started
        assert not at.exception, [e.value for e in at.exception]
        assert len(at.dataframe[0].value) == RUNS
        timings = []
        for _ in range(RERUNS):
            started = time.perf_counter()
            at.run()
            timings.append(time.perf_counter() - started)
    drawn = len(chart_specs(at))
    print(f"Compare page, {RUNS} runs x 30 epochs, {drawn} chart{'s' * (drawn != 1)}: "
          f"first render {first * 1000:.0f} ms; "
          f"rerun median {statistics.median(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms "
          f"over {RERUNS} (goal < 1000 ms)")


if __name__ == "__main__":
    main()
