"""Importers on logs captured from real runs (tests/fixtures) and the published text."""

from __future__ import annotations

import pytest
from conftest import FIXTURES

from training.analysis import comparison
from training.imports.parsers import (
    CSV_LOGGER,
    KERAS_CONSOLE,
    TENSORFLOW_LOOP,
    ImportFormatError,
    clean_terminal_text,
    parse,
)
from training.imports.runs import REFERENCE_TEXT, import_text, reference_logs
from training.store import RunStore

# What the captured runs printed at the end of each epoch, read off the CSVLogger
# file written by the same run as the terminal capture.
TERMINAL_VAL_ACCURACY = [0.9610, 0.9475, 0.9670]


def read(name: str) -> str:
    return (FIXTURES / name).read_bytes().decode()  # read_text would fold \r into \n


def test_keras3_terminal_capture_with_redraws_backspaces_and_colours():
    text = read("keras3-fit-terminal.txt")
    assert "\b" in text and "\r" in text and "\x1b[" in text  # the capture really is raw
    [log] = parse(text)
    assert log.format == KERAS_CONSOLE
    assert [e["epoch"] for e in log.epochs] == [1, 2, 3]
    assert [e["val_accuracy"] for e in log.epochs] == TERMINAL_VAL_ACCURACY
    assert all(e["epoch_time_s"] == 5 for e in log.epochs)
    assert [e["elapsed_s"] for e in log.epochs] == [5, 10, 15]


def test_csvlogger_of_the_same_run_agrees_with_its_console():
    [console] = parse(read("keras3-fit-terminal.txt"))
    [csv_log] = parse(read("keras3-csvlogger.csv"))
    assert csv_log.format == CSV_LOGGER
    assert [e["epoch"] for e in csv_log.epochs] == [1, 2, 3]  # CSVLogger counts from 0
    for a, b in zip(console.epochs, csv_log.epochs):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert a[key] == pytest.approx(b[key], abs=5e-5)  # the console rounds to 4 places
    assert csv_log.epochs[0]["epoch_time_s"] is None  # CSVLogger records no time


def test_keras3_verbose2_form():
    [log] = parse(read("keras3-fit-verbose2.txt"))
    assert [e["epoch_time_s"] for e in log.epochs] == [3, 3, 2]
    assert [e["elapsed_s"] for e in log.epochs] == [3, 6, 8]
    assert log.epochs[2]["val_loss"] == 0.2105


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_published_readme_gives_one_run_per_block_named_by_heading(ending):
    text = REFERENCE_TEXT.read_text().replace("\n", ending)
    logs = parse(text)
    assert [(log.name, log.format) for log in logs] == [
        ("Keras CPU", KERAS_CONSOLE), ("Tensorflow GPU", TENSORFLOW_LOOP)]
    keras, tf = logs
    assert keras.samples == 60_000  # "Train on 60000 samples"
    assert keras.epochs[0]["epoch_time_s"] == 112 and keras.epochs[0]["val_accuracy"] == 0.9846
    assert keras.epochs[0]["accuracy"] == 0.9733  # "acc" was normalised
    assert keras.epochs[11]["loss"] == pytest.approx(9.7481e-04)
    assert keras.epochs[-1]["elapsed_s"] == 3318
    # TensorFlow seconds are cumulative: per-epoch time is the difference.
    assert tf.epochs[0]["elapsed_s"] == 5.5 and tf.epochs[1]["epoch_time_s"] == pytest.approx(4.08)
    assert tf.epochs[-1]["elapsed_s"] == 118.17


def test_published_comparison_matches_the_published_figures():
    logs = reference_logs()
    cpu = comparison.measure(logs["Keras CPU"].epochs)
    gpu = comparison.measure(logs["Tensorflow GPU"].epochs)
    assert cpu["epochs_done"] == 30 and cpu["total_s"] == 3318
    assert cpu["steady_epoch_s"] == 110 and gpu["steady_epoch_s"] == pytest.approx(3.86, abs=0.005)
    assert (cpu["time_to_target_s"], gpu["time_to_target_s"]) == (229, 9.58)
    assert (cpu["best_val_accuracy"], gpu["best_val_accuracy"]) == (0.9939, 0.9938)
    speed = comparison.speedup(cpu, gpu)
    # No train/eval split in the published logs: work per epoch second, evaluation included.
    assert speed["basis"] == "epoch" and speed["images_per_s"] == pytest.approx(28.5, abs=0.05)


def test_clean_terminal_text_replays_the_cursor():
    assert clean_terminal_text("abc\b\bX") == ["aXc"]
    assert clean_terminal_text("12345\rab") == ["ab345"]
    assert clean_terminal_text("\x1b[1mbold\x1b[0m") == ["bold"]


def test_nothing_recognisable_is_a_clear_error_and_writes_nothing(tmp_path):
    store = RunStore(tmp_path / "runs")
    with pytest.raises(ImportFormatError, match="Expected Keras fit console output"):
        import_text(store, "hello\nworld\n", "notes.txt")
    with pytest.raises(ImportFormatError):
        import_text(store, "a,b\n1,2\n", "table.csv")
    assert not (tmp_path / "runs").exists()  # nothing written, not even the folder


def test_import_writes_read_only_finished_runs(tmp_path):
    store = RunStore(tmp_path / "runs")
    ids = import_text(store, REFERENCE_TEXT.read_text(), "results.md")
    assert [store.open(i).meta["name"] for i in ids] == ["Keras CPU", "Tensorflow GPU"]
    assert [store.open(i).meta["device"] for i in ids] == ["cpu", "gpu"]
    assert [store.open(i).meta["engine"] for i in ids] == ["fit", "loop"]
    assert all(store.open(i).status() == "finished" for i in ids)
    assert store.open(ids[0]).log().epochs_done == 30
    [csv_id] = import_text(store, read("keras3-csvlogger.csv"), "run.csv", name="Mine", device="cpu")
    assert store.open(csv_id).meta["name"] == "Mine" and store.open(csv_id).meta["device"] == "cpu"


# Real captures of Keras 2.15 (tf.keras) and Keras 3.15 fits of the same 2-epoch run,
# with the validation accuracy each epoch's CSVLogger file recorded (tests/fixtures/README.md).
KERAS2_VAL = [0.9160, 0.8360]
KERAS3_VAL = [0.9170, 0.8420]
CAPTURES = [
    ("keras2-fit-verbose2.txt", KERAS2_VAL, [0.9083, 0.9845], [7, 5]),
    ("keras2-fit-terminal.txt", KERAS2_VAL, [0.9083, 0.9845], [7, 4]),
    ("keras2-fit-summary-acc-verbose2.txt", KERAS2_VAL, [0.9083, 0.9845], [5, 3]),  # acc / val_acc
    ("keras3-fit-summary-terminal.txt", KERAS3_VAL, [0.9083, 0.9857], [5, 4]),
    ("keras3-fit-summary-verbose2.txt", KERAS3_VAL, [0.9083, 0.9857], [6, 5]),
]


@pytest.mark.parametrize(("name", "val_accuracy", "accuracy", "seconds"), CAPTURES,
                         ids=[c[0] for c in CAPTURES])
def test_real_keras2_and_keras3_console_logs_in_both_verbose_modes(name, val_accuracy, accuracy, seconds):
    [log] = parse(read(name))  # a model summary before the log is no second log
    assert log.format == KERAS_CONSOLE
    assert [e["epoch"] for e in log.epochs] == [1, 2]
    assert [e["val_accuracy"] for e in log.epochs] == val_accuracy
    assert [e["accuracy"] for e in log.epochs] == accuracy
    assert [e["epoch_time_s"] for e in log.epochs] == seconds
    assert [e["elapsed_s"] for e in log.epochs] == [seconds[0], seconds[0] + seconds[1]]
    assert all(e["loss"] > 0 and e["val_loss"] > 0 for e in log.epochs)


def test_samples_given_at_import_give_samples_per_second(tmp_path):
    store = RunStore(tmp_path / "runs")
    [run_id] = import_text(store, read("keras2-fit-verbose2.txt"), "k2.txt", samples=6000)
    epochs = store.open(run_id).log().epochs
    assert [e["samples_per_s"] for e in epochs] == [round(6000 / 7, 2), round(6000 / 5, 2)]
    assert store.open(run_id).meta["train_samples"] == 6000


@pytest.mark.parametrize("samples", [0, -5, 10**10, 2.5, True])
def test_bad_sample_counts_are_refused_before_anything_is_written(tmp_path, samples):
    from training.config import ConfigError

    store = RunStore(tmp_path / "runs")
    with pytest.raises(ConfigError, match="samples: must be a whole number from 1 to"):
        import_text(store, read("keras2-fit-verbose2.txt"), "k2.txt", samples=samples)
    assert not (tmp_path / "runs").exists()  # nothing written, not even the folder


def test_the_shipped_reference_runs_are_what_the_published_text_builds(tmp_path):
    import json

    from training.imports.runs import build_reference_runs
    from training.store.runs import BUILTIN_DIR, builtin_ids

    built = build_reference_runs(tmp_path)
    assert built == builtin_ids() == ["ref-keras-cpu", "ref-tensorflow-gpu"]
    for run_id in built:
        for name in ("config.json", "metrics.jsonl"):
            shipped = (BUILTIN_DIR / run_id / name).read_text()
            fresh = (tmp_path / run_id / name).read_text()
            if name == "config.json":
                shipped, fresh = json.loads(shipped), json.loads(fresh)
            assert shipped == fresh, f"{run_id}/{name}: rebuild with python -m training.imports.runs"


def test_reference_runs_appear_in_every_store_without_being_written(tmp_path):
    store = RunStore(tmp_path / "runs")
    assert store.ids() == ["ref-keras-cpu", "ref-tensorflow-gpu"]
    assert store.open("ref-keras-cpu").log().epochs_done == 30
    assert store.open("ref-keras-cpu").status() == "finished"
    assert not (tmp_path / "runs").exists()
