"""TensorBoard import on real event files (tests/fixtures/tensorboard, made by make_tensorboard_logs.py).

Each fixture log has, beside it, what the training loop itself saw (Keras's History or
the loop's own numbers, and the time each epoch ended): the import must agree with it.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zipfile

import pytest
from conftest import FIXTURES, cli

from training.config import ConfigError
from training.imports import tensorboard
from training.imports.parsers import ImportFormatError
from training.imports.runs import import_file, import_upload
from training.store import RunStore

LOGS = FIXTURES / "tensorboard"
FIELDS = {"loss": ("loss",), "accuracy": ("accuracy", "acc"), "val_loss": ("val_loss",),
          "val_accuracy": ("val_accuracy", "val_acc")}


def expected(name: str) -> list[dict]:
    return json.loads((LOGS / f"{name}.expected.json").read_text())["epochs"]


def truth(row: dict, key: str) -> float:
    return next(row[alias] for alias in FIELDS[key] if alias in row)


def records(store: RunStore, run_id: str) -> list[dict]:
    return [json.loads(line) for line in store.open(run_id).metrics_path.read_text().splitlines()]


def imported(tmp_path, source, **options):
    store = RunStore(tmp_path / "runs")
    ids = import_file(store, source, **options)
    return store, ids


def assert_matches_truth(store, run_id, name, epochs=3):
    run = store.open(run_id)
    log = run.log().check()
    truth_rows = expected(name)[:epochs]
    assert [e["epoch"] for e in log.epochs] == list(range(1, epochs + 1))
    for record, row in zip(log.epochs, truth_rows):
        for key in FIELDS:
            assert record[key] == pytest.approx(truth(row, key), rel=1e-6), (key, record["epoch"])
        # The epoch's scalars were written just before the loop noted the time.
        assert record["time"] == pytest.approx(row["time"], abs=0.5)
    start = log.start["time"]
    assert start <= log.epochs[0]["time"]
    previous = start
    for record in log.epochs:
        assert record["elapsed_s"] == pytest.approx(record["time"] - start, abs=1e-3)
        assert record["epoch_time_s"] == pytest.approx(record["time"] - previous, abs=1e-3)
        previous = record["time"]
    assert log.start["format"] == "tensorboard" and log.start["imported"] is True
    assert log.end["status"] == "finished" and run.status() == "finished"
    return run, log


def test_keras_callback_log_folder_is_one_run_with_train_and_validation(tmp_path):
    store, [run_id] = imported(tmp_path, LOGS / "keras3-callback")
    run, log = assert_matches_truth(store, run_id, "keras3-callback")
    assert run.name == "keras3-callback" and run.meta["engine"] == "fit"
    assert run.meta["source"] == "imported" and run.meta["format"] == "tensorboard"
    [note] = [w["message"] for w in log.warnings]
    assert "train/epoch_learning_rate" in note and "validation/evaluation_loss_vs_iterations" in note
    assert "--map TAG=field" in note


def test_keras_acc_spelling_is_accuracy(tmp_path):
    store, [run_id] = imported(tmp_path, LOGS / "keras3-acc")
    assert_matches_truth(store, run_id, "keras3-acc")


def test_pytorch_summarywriter_steps_are_epochs(tmp_path):
    store, [run_id] = imported(tmp_path, LOGS / "pytorch-summarywriter")
    run, log = assert_matches_truth(store, run_id, "pytorch-summarywriter")
    assert run.meta["engine"] == "loop"
    [note] = [w["message"] for w in log.warnings]
    assert "lr" in note and "Accuracy/val_top1" in note


def test_tf_summary_per_batch_steps_with_an_epoch_scalar_take_each_epochs_last_value(tmp_path):
    store, [run_id] = imported(tmp_path, LOGS / "tf-summary-batches")
    _, log = assert_matches_truth(store, run_id, "tf-summary-batches")
    assert log.warnings == []  # every tag understood, `epoch` included


def test_one_event_file_given_alone(tmp_path):
    [file] = (LOGS / "keras3-callback" / "validation").glob("events.*")
    store, [run_id] = imported(tmp_path, file)
    run = store.open(run_id)
    assert run.name == "keras3-callback"  # the log root above validation/
    epochs = run.log().epochs
    assert [e["val_accuracy"] for e in epochs] == pytest.approx(
        [row["val_accuracy"] for row in expected("keras3-callback")], rel=1e-6)
    assert all(e["loss"] is None for e in epochs)  # the train/ file was not given


def test_a_folder_of_log_roots_is_one_run_per_root(tmp_path):
    store, ids = imported(tmp_path, LOGS, name="mine")
    names = sorted(store.open(i).name for i in ids)
    assert names == [f"mine – {n}" for n in (
        "keras3-2fits-samedir fit 1", "keras3-2fits-samedir fit 2", "keras3-acc", "keras3-callback",
        "pytorch-add-scalars", "pytorch-restart fit 1", "pytorch-restart fit 2", "pytorch-summarywriter",
        "pytorch-truncated", "tf-summary-batches")]


def test_truncated_event_file_imports_the_epochs_before_the_damage_and_says_so(tmp_path):
    runs_dir = tmp_path / "runs"
    result = cli("import", str(LOGS / "pytorch-truncated"), runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr
    [run_id] = result.stdout.split()
    store = RunStore(runs_dir)
    assert_matches_truth(store, run_id, "pytorch-truncated", epochs=2)
    assert "is damaged after 13 records (a record truncated); imported what came before the damage" \
        in result.stderr
    notes = [w["message"] for w in store.open(run_id).log().warnings]
    assert any("damaged" in note for note in notes)


def test_a_record_failing_its_checksum_keeps_what_came_before(tmp_path):
    [source] = (LOGS / "pytorch-summarywriter").glob("events.*")
    data = bytearray(source.read_bytes())
    data[-30] ^= 0xFF  # inside the last record (lr of epoch 3)
    folder = tmp_path / "log"
    folder.mkdir()
    (folder / source.name).write_bytes(bytes(data))
    store, [run_id] = imported(tmp_path, folder)
    _, log = assert_matches_truth(store, run_id, "pytorch-summarywriter")  # lr was last
    assert any("fails its checksum" in w["message"] for w in log.warnings)


def test_map_reads_a_tag_as_a_field(tmp_path):
    store, [run_id] = imported(tmp_path, LOGS / "pytorch-summarywriter",
                               maps=["accuracy/VAL_top1=val_accuracy"])
    _, log = assert_matches_truth(store, run_id, "pytorch-summarywriter")
    [note] = [w["message"] for w in log.warnings]
    assert "Accuracy/val (also means val_accuracy, taken from Accuracy/val_top1)" in note


@pytest.mark.parametrize(("maps", "message"), [
    (["nosuch=loss"], "no scalar tag nosuch in the log"),
    (["lr=learning_rate"], "expected TAG=field"),
    (["lr"], "expected TAG=field"),
])
def test_bad_maps_are_refused_before_anything_is_written(tmp_path, maps, message):
    store = RunStore(tmp_path / "runs")
    with pytest.raises(ConfigError, match=message):
        import_file(store, LOGS / "pytorch-summarywriter", maps=maps)
    assert not (tmp_path / "runs").exists()


def first_record(path) -> bytes:
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return data[:12 + length + 4]


def test_a_log_with_no_scalars_is_refused_and_nothing_is_created(tmp_path):
    [source] = (LOGS / "pytorch-summarywriter").glob("events.*")
    folder = tmp_path / "empty-log"
    folder.mkdir()
    (folder / source.name).write_bytes(first_record(source))  # what a writer that logged nothing leaves
    runs_dir = tmp_path / "runs"
    result = cli("import", str(folder), runs_dir=runs_dir)
    assert result.returncode == 1
    assert "no scalars in the TensorBoard log" in result.stderr and "nothing imported" in result.stderr
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_a_folder_without_event_files_and_a_binary_file_are_refused(tmp_path):
    store = RunStore(tmp_path / "runs")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ImportFormatError, match="no TensorBoard event files"):
        import_file(store, tmp_path / "nothing")
    binary = tmp_path / "weights.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(ImportFormatError, match="binary file"):
        import_file(store, binary)
    assert not (tmp_path / "runs").exists()


def test_size_caps_hold(tmp_path, monkeypatch):
    monkeypatch.setattr(tensorboard, "MAX_EVENTS_BYTES", 1000)
    with pytest.raises(ImportFormatError, match="at most 0 MiB"):
        import_file(RunStore(tmp_path / "runs"), LOGS / "tf-summary-batches")
    monkeypatch.setattr(tensorboard, "MAX_EVENT_FILES", 3)
    with pytest.raises(ImportFormatError, match="at most 3 are read"):
        import_file(RunStore(tmp_path / "runs"), LOGS)
    assert not (tmp_path / "runs").exists()


def zipped(folder, prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + str(path.relative_to(folder.parent)))
    return buffer.getvalue()


def test_a_zip_of_a_log_folder_imports_like_the_folder(tmp_path):
    store = RunStore(tmp_path / "runs")
    [run_id] = import_upload(store, zipped(LOGS / "keras3-callback"), "logs.zip")
    assert_matches_truth(store, run_id, "keras3-callback")
    assert store.open(run_id).name == "keras3-callback" and store.open(run_id).meta["origin"] == "logs.zip"


@pytest.mark.parametrize(("members", "message"), [
    ({"../evil/events.out.tfevents.1.host": b"x"}, "unsafe path"),
    ({"/abs/events.out.tfevents.1.host": b"x"}, "unsafe path"),
    ({"readme.txt": b"hello"}, "no TensorBoard event files"),
])
def test_bad_zips_are_refused_and_nothing_is_written(tmp_path, members, message):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    store = RunStore(tmp_path / "runs")
    with pytest.raises(ImportFormatError, match=message):
        import_upload(store, buffer.getvalue(), "upload.zip")
    assert not (tmp_path / "runs").exists()


def test_an_uploaded_event_file_asks_for_a_zip(tmp_path):
    [source] = (LOGS / "pytorch-summarywriter").glob("events.*")
    with pytest.raises(ImportFormatError, match="upload a zip of its log folder"):
        import_upload(RunStore(tmp_path / "runs"), source.read_bytes(), "events.bin")


@pytest.mark.parametrize(("tag", "field"), [
    ("loss", "loss"), ("train/loss", "loss"), ("Loss/train", "loss"), ("val/loss", "val_loss"),
    ("validation/loss", "val_loss"), ("Loss/val", "val_loss"), ("val_loss", "val_loss"),
    ("validation/epoch_loss", "val_loss"), ("train/epoch_acc", "accuracy"), ("ACCURACY/Val", "val_accuracy"),
    ("Acc/validation", "val_accuracy"), ("train/epoch_sparse_categorical_accuracy", "accuracy"),
    ("epoch", "epoch"), ("Epoch", "epoch"),
    ("lr", None), ("train/epoch_learning_rate", None), ("validation/evaluation_loss_vs_iterations", None),
    ("loss/accuracy", None), ("train/val/loss", None), ("batch_loss", None),
])
def test_tag_spellings(tag, field):
    assert tensorboard.field_of(tag) == field


def test_without_the_tensorboard_package_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard.compat.proto", None)
    with pytest.raises(tensorboard.TensorBoardMissing, match="pip install tensorboard"):
        import_file(RunStore(tmp_path / "runs"), LOGS / "pytorch-summarywriter")


def test_the_fixture_script_documents_every_fixture_log():
    script = (FIXTURES / "make_tensorboard_logs.py").read_text()
    readme = (FIXTURES / "README.md").read_text()
    for folder in (p for p in LOGS.iterdir() if p.is_dir()):
        assert f"tensorboard/{folder.name}/" in script and folder.name in readme


def test_map_on_the_command_line(tmp_path):
    runs_dir = tmp_path / "runs"
    bad = cli("import", str(LOGS / "pytorch-summarywriter"), "--map", "lr=learning_rate", runs_dir=runs_dir)
    assert bad.returncode == 2 and "error: --map: expected TAG=field" in bad.stderr
    good = cli("import", str(LOGS / "pytorch-summarywriter"), "--map", "Accuracy/val_top1=val_accuracy",
               "--map", "LR=loss", runs_dir=runs_dir)
    assert good.returncode == 0, good.stderr
    [run_id] = good.stdout.split()
    epochs = RunStore(runs_dir).open(run_id).log().epochs
    assert [e["loss"] for e in epochs] == pytest.approx([0.1] * 3)  # what lr held, as asked
    assert "Loss/train (also means loss, taken from lr)" in good.stderr


def fits(name: str) -> list[list[dict]]:
    return json.loads((LOGS / f"{name}.expected.json").read_text())["fits"]


def assert_fit_matches(log, truth_rows):
    assert [e["epoch"] for e in log.epochs] == [row["epoch"] for row in truth_rows]
    for record, row in zip(log.epochs, truth_rows):
        for key in FIELDS:
            assert record[key] == pytest.approx(truth(row, key), rel=1e-6), (key, record["epoch"])


def test_two_fits_into_one_keras_log_folder_are_two_runs_with_their_own_times(tmp_path):
    store, ids = imported(tmp_path, LOGS / "keras3-2fits-samedir")
    assert [store.open(i).name for i in ids] == ["keras3-2fits-samedir fit 1", "keras3-2fits-samedir fit 2"]
    for run_id, truth_rows in zip(ids, fits("keras3-2fits-samedir")):
        log = store.open(run_id).log()
        assert_fit_matches(log, truth_rows)
        start = log.start["time"]
        # Each fit's times count from its own start: the first epoch ended when the loop said.
        assert log.epochs[0]["time"] == pytest.approx(truth_rows[0]["time"], abs=0.5)
        assert 0 < log.epochs[0]["epoch_time_s"] < 30 and start <= log.epochs[0]["time"]
        assert any("each fit is its own run" in w["message"] for w in log.warnings)


def test_a_step_counter_that_goes_back_inside_one_file_starts_a_new_run(tmp_path):
    store, ids = imported(tmp_path, LOGS / "pytorch-restart")
    [first, second] = [store.open(i).log() for i in ids]
    truth_fits = fits("pytorch-restart")
    assert_fit_matches(first, truth_fits[0])
    assert_fit_matches(second, truth_fits[1])
    assert first.epochs[0]["epoch_time_s"] > 0
    # The second training's start is not in the file: its epoch 1 time is unknown, not 0.
    assert second.epochs[0]["epoch_time_s"] is None and second.epochs[-1]["elapsed_s"] is None
    assert second.epochs[1]["epoch_time_s"] == pytest.approx(
        truth_fits[1][1]["time"] - truth_fits[1][0]["time"], abs=0.5)


def test_add_scalars_subfolders_are_one_run_with_loss_and_val_loss(tmp_path):
    store, [run_id] = imported(tmp_path, LOGS / "pytorch-add-scalars")
    log = store.open(run_id).log()
    assert store.open(run_id).name == "pytorch-add-scalars"
    assert_fit_matches(log, expected("pytorch-add-scalars"))
    # add_scalars makes its files at the first value: when training began is not in the log.
    assert log.epochs[0]["epoch_time_s"] is None and all(e["elapsed_s"] is None for e in log.epochs)
    assert log.epochs[1]["epoch_time_s"] > 0
    assert any("does not say when this training began" in w["message"] for w in log.warnings)


def write_events(folder, scalars: dict[str, list[float]]) -> None:
    """An event file written by tensorboard's own writer: tag -> a value per step from 0."""
    import time

    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(folder))
    started = time.time()
    for step in range(max(len(values) for values in scalars.values())):
        values = [summary_pb2.Summary.Value(tag=tag, simple_value=v[step]) for tag, v in scalars.items()
                  if step < len(v)]
        writer.add_event(event_pb2.Event(step=step, wall_time=started + step + 1,
                                         summary=summary_pb2.Summary(value=values)))
    writer.close()


def test_tensorboard_values_no_training_produces_are_refused(tmp_path):
    folder = tmp_path / "log"
    folder.mkdir()
    write_events(folder, {"loss": [0.9, 0.7, 0.5], "accuracy": [0.6, 99.0, 0.8]})
    store, [run_id] = imported(tmp_path, folder)
    log = store.open(run_id).log()
    assert [e["accuracy"] for e in log.epochs] == [pytest.approx(0.6), None, pytest.approx(0.8)]
    assert [e["loss"] for e in log.epochs] == [pytest.approx(0.9), pytest.approx(0.7), pytest.approx(0.5)]
    assert any("accuracy 99 is outside 0-1" in w["message"] for w in log.warnings)
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    write_events(only_bad, {"accuracy": [55.0, 61.0]})
    with pytest.raises(ImportFormatError, match="nothing sane left"):
        import_file(RunStore(tmp_path / "runs2"), only_bad)
    assert not (tmp_path / "runs2").exists()
