"""Saying after an import what the log did not: images per epoch and device (Runs page and CLI)."""

from __future__ import annotations

import statistics

from conftest import FIXTURES, ROOT, cli
from streamlit.testing.v1 import AppTest

from training.imports.runs import import_file
from training.store import RunStore


def page(path: str) -> AppTest:
    return AppTest.from_file(str(ROOT / path), default_timeout=60)


def no_exceptions(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def imported(runs_dir) -> tuple[RunStore, str]:
    """A Keras 3 console log: it times its epochs but says neither its images per epoch nor its device."""
    store = RunStore(runs_dir)
    [run_id] = import_file(store, str(FIXTURES / "keras3-fit-verbose2.txt"), name="keras 3 run", device="cpu")
    assert not store.open(run_id).meta.get("train_samples")
    return store, run_id


def test_runs_page_sets_images_per_epoch_and_device_and_compare_shows_images_per_s(runs_dir):
    store, run_id = imported(runs_dir)
    at = page("pages/runs.py").run()
    at.selectbox(key="detail_run").set_value(run_id).run()
    no_exceptions(at)
    assert any("not in this log, so images/s and speedups are —" in e.label for e in at.expander)
    at.number_input(key=f"annotate_samples_{run_id}").set_value(6000)
    at.selectbox(key=f"annotate_device_{run_id}").set_value("gpu")
    no_exceptions(at.button(key=f"annotate_{run_id}").click().run())
    run = store.open(run_id)
    assert run.meta["train_samples"] == 6000 and run.meta["device"] == "gpu"
    epochs = run.log().epochs
    assert all(e["samples"] == 6000 for e in epochs)
    assert epochs[1]["samples_per_s"] == round(6000 / epochs[1]["epoch_time_s"], 2)
    assert any("Saved for keras 3 run" in s.value for s in at.success)

    compare = page("pages/compare.py").run()
    compare.multiselect(key="compare_runs").set_value([run_id]).run()
    no_exceptions(compare)
    [row] = compare.dataframe[0].value.to_dict("records")
    steady = statistics.median(6000 / e["epoch_time_s"] for e in epochs[1:])  # epoch 1 is warm-up
    assert row["Images/s (epoch, eval incl.)"] == f"{steady:,.0f}"


def test_annotate_command_sets_samples_and_refuses_bad_input_and_other_runs(runs_dir):
    store, run_id = imported(runs_dir)
    before = (store.open(run_id).folder / "metrics.jsonl").read_bytes()
    bad = cli("annotate", run_id, "--samples", "0", runs_dir=runs_dir)
    assert bad.returncode == 2 and "--samples: must be a whole number from 1 to 1,000,000,000" in bad.stderr
    assert (store.open(run_id).folder / "metrics.jsonl").read_bytes() == before  # nothing written
    reference = cli("annotate", "ref-keras-cpu", "--samples", "100", runs_dir=runs_dir)
    assert reference.returncode == 1 and "only an imported run" in reference.stderr
    done = cli("annotate", run_id, "--samples", "5000", "--device", "cpu", runs_dir=runs_dir)
    assert done.returncode == 0, done.stderr
    assert "train samples 5,000, device cpu" in done.stdout
    run = store.open(run_id)
    assert run.meta["train_samples"] == 5000 and run.log().start["train_samples"] == 5000
    assert [p.name for p in run.folder.iterdir() if p.name.startswith(".")] == []  # no temp files left
