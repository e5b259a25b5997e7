"""Importers on the forms real training logs take (tests/fixtures/console, lightning-console.log).

Each test names the case of issue 25 it covers. The fixtures are written in the formats
of the versions named (tests/fixtures/README.md); the numbers a test expects are the ones
printed in the fixture's text, so a test fails when the importer reads something else.
"""

from __future__ import annotations

import json

import pytest
from conftest import FIXTURES

from training.imports.parsers import (
    CSV_LOGGER,
    KERAS_CONSOLE,
    LIGHTNING_CONSOLE,
    TENSORFLOW_LOOP,
    ImportFormatError,
    parse,
)
from training.imports.runs import import_text
from training.store import RunStore

CONSOLE = FIXTURES / "console"


def logs_of(name: str):
    return parse((CONSOLE / name).read_text(), name)


def column(log, key):
    return [record[key] for record in log.epochs]


# 1. An evaluate line after fit is the run's test result, never an epoch.

def test_evaluate_after_fit_is_the_test_result_not_the_last_epoch(tmp_path):
    [log] = logs_of("keras2-fit-then-evaluate.md")
    assert column(log, "epoch") == [1, 2, 3]
    last = log.epochs[-1]  # epoch 3's own line, with its validation values and time
    assert (last["loss"], last["val_loss"], last["val_accuracy"]) == (0.1031, 0.0954, 0.9702)
    assert last["epoch_time_s"] == 5
    assert log.test == {"loss": 0.0954, "accuracy": 0.9702, "line": 13}
    assert any("line 13" in note and "test result" in note for note in log.notes)
    store = RunStore(tmp_path / "runs")
    [run_id] = import_text(store, (CONSOLE / "keras2-fit-then-evaluate.md").read_text(), "readme.md")
    records = [json.loads(line) for line in store.open(run_id).metrics_path.read_text().splitlines()]
    assert records[-1]["type"] == "end" and records[-1]["test"]["accuracy"] == 0.9702
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [1, 2, 3]


def test_evaluate_with_the_same_step_total_right_after_the_last_epoch_does_not_replace_it():
    [log] = logs_of("keras3-fit-then-evaluate-verbose2.txt")
    assert column(log, "loss") == [0.4418, 0.2605]  # not the evaluate line's 0.2107
    assert column(log, "val_accuracy") == [0.9213, 0.9344]
    assert log.test["loss"] == 0.2107 and log.test["line"] == 5
    assert any("line 6" in note and "not read" in note for note in log.notes)


def test_an_evaluate_line_between_epochs_is_no_test_result():
    text = ("Epoch 1/2\n469/469 - 4s - loss: 0.44 - val_loss: 0.27\n"
            "79/79 - 0s - loss: 0.30 - accuracy: 0.91\n"
            "Epoch 2/2\n469/469 - 3s - loss: 0.26 - val_loss: 0.22\n")
    [log] = parse(text, "x.txt")
    assert column(log, "loss") == [0.44, 0.26] and log.test is None
    assert any("line 3: an evaluate line between epochs" in note for note in log.notes)


# 2. CSVLogger(append=True): where the epoch column starts again, a new run begins.

def test_csvlogger_append_gives_one_run_per_fit(tmp_path):
    logs = logs_of("csvlogger-append-3fits.csv")
    assert [log.format for log in logs] == [CSV_LOGGER] * 3
    assert [column(log, "epoch") for log in logs] == [[1, 2, 3], [1, 2], [1, 2, 3, 4]]
    assert [log.epochs[0]["loss"] for log in logs] == [1.20, 1.31, 1.25]
    store = RunStore(tmp_path / "runs")
    ids = import_text(store, (CONSOLE / "csvlogger-append-3fits.csv").read_text(), "training_log.csv")
    assert [store.open(i).name for i in ids] == [f"training_log #{n}" for n in (1, 2, 3)]


# 5. Values no training produces are refused per field, with the line; a log with nothing
#    sane left is refused whole.

def test_insane_csv_values_are_refused_per_field_with_their_line():
    [log] = logs_of("csvlogger-insane-values.csv")
    second, third = log.epochs[1], log.epochs[2]
    assert second["accuracy"] is None and second["loss"] == 0.90  # accuracy 99 refused, loss kept
    assert third["val_accuracy"] is None and third["accuracy"] == 0.72  # -5 refused
    assert all(record["epoch_time_s"] >= 0 for record in log.epochs)  # -3 s refused
    elapsed = column(log, "elapsed_s")
    assert elapsed == sorted(elapsed) and elapsed[-1] == 50.2  # the falling 20.0 was refused
    [note] = [n for n in log.notes if n.startswith("refused")]
    for part in ("line 3: accuracy 99", "line 3: epoch time -3", "line 4: val_accuracy -5",
                 "line 4: elapsed 20 s falls below the 25.1 s"):
        assert part in note


def test_a_log_with_nothing_sane_left_is_refused_whole(tmp_path):
    store = RunStore(tmp_path / "runs")
    with pytest.raises(ImportFormatError, match=r"nothing sane left .*accuracy 97.5 is outside 0-1"):
        import_text(store, (CONSOLE / "csvlogger-percent-accuracy.csv").read_text(), "pct.csv")
    assert not (tmp_path / "runs").exists()


def test_a_refused_epoch_time_leaves_later_elapsed_unknown_rather_than_summed_around_the_hole():
    text = "Epoch 1/3\n10/10 - 5s - loss: 0.5\nEpoch 2/3\n10/10 - 4s - loss: 0.4 - accuracy: 7\n" \
           "Epoch 3/3\n10/10 - 4s - loss: 0.3\n"
    [log] = parse(text, "x.txt")
    assert log.epochs[1]["accuracy"] is None and log.epochs[1]["loss"] == 0.4
    assert column(log, "elapsed_s") == [5, 9, 13]  # times themselves were sane
    negative = "epoch,loss,epoch_time\n0,0.5,5\n1,0.4,-1\n2,0.3,4\n"
    [log] = parse(negative, "t.csv")
    assert column(log, "epoch_time_s") == [5, None, 4]
    assert column(log, "elapsed_s") == [5, None, None]  # never 5 + 4 = 9 for epoch 3


# 6. Hyphenated metric names.

def test_hyphenated_metric_names_are_read_whole():
    [log] = logs_of("keras3-top5-hyphenated.txt")
    assert column(log, "top-5-accuracy") == [0.1816, 0.3650]
    assert column(log, "val_top-5-accuracy") == [0.3922, 0.4711]
    assert column(log, "accuracy") == [0.0541, 0.1377]  # not top-5's value
    assert column(log, "val_accuracy") == [0.1145, 0.1830]


# 7. Keras 2.0 forms: no per-step time, the ETA last line, verbose=2 without a dash, unknown totals.

def test_keras2_0_forms_each_import():
    logs = {log.name: log for log in logs_of("keras2.0-forms.md")}
    no_step = logs["Keras 2.0, verbose=1, no per-step time"]
    assert column(no_step, "epoch_time_s") == [15, 13] and column(no_step, "val_accuracy") == [0.9650, 0.9685]
    assert no_step.samples == 60000
    eta = logs["Keras 2.0.8, the last redraw shows ETA"]
    assert column(eta, "loss") == [0.3120, 0.1433] and column(eta, "epoch_time_s") == [None, None]
    assert any("ETA: 0s" in note and "unknown" in note for note in eta.notes)
    terse = logs["Keras 2.0, verbose=2"]
    assert column(terse, "epoch_time_s") == [4, 3] and column(terse, "val_loss") == [0.22, 0.17]
    dash_only = logs["Keras 2.2, verbose=2"]
    assert column(dash_only, "epoch_time_s") == [5, 4] and column(dash_only, "accuracy") == [0.9, 0.945]
    unknown = logs["A dataset of unknown length"]
    assert column(unknown, "loss") == [0.62, 0.41] and column(unknown, "elapsed_s") == [2, 4]


# 8. A missing space before the dash; indented logs.

def test_no_space_before_the_dash():
    [log] = logs_of("keras3-no-space-before-dash.txt")
    assert column(log, "accuracy") == [0.41, 0.52]
    # "- 0s -" rounds to nothing: 4 steps of 9 ms and of 8 ms, the same clock with more digits.
    assert column(log, "epoch_time_s") == [pytest.approx(0.036), pytest.approx(0.032)]


def test_an_indented_rst_block():
    [log] = logs_of("keras2-indented.rst")
    assert column(log, "loss") == [0.29, 0.13] and column(log, "epoch_time_s") == [3, 2]


# 9. Jupyter notebooks: the stream outputs, colour codes stripped.

def notebook(cells: list[dict]) -> str:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells})


def test_a_notebook_reads_like_its_console():
    capture = (FIXTURES / "keras3-fit-terminal.txt").read_bytes().decode()  # real, with \r, \b, colours
    [console] = parse(capture, "capture.txt")
    half = len(capture) // 2
    cells = [
        {"cell_type": "markdown", "source": ["## Training on the CPU\n"], "metadata": {}},
        {"cell_type": "code", "source": ["# not a heading: code\n", "model.fit(x, y)\n"], "metadata": {},
         "execution_count": 3, "outputs": [
             {"output_type": "stream", "name": "stdout", "text": [capture[:half]]},
             {"output_type": "stream", "name": "stderr",
              "text": ["2022-09-12 20:45:34.430003: I tensorflow/core/x.cc:1] a message\n"]},
             {"output_type": "stream", "name": "stdout", "text": [capture[half:]]},
             {"output_type": "execute_result", "data": {"text/plain": ["<History>"]}, "metadata": {},
              "execution_count": 3}]},
    ]
    [log] = parse(notebook(cells), "run.ipynb")
    assert log.name == "Training on the CPU" and log.format == KERAS_CONSOLE
    assert log.epochs == console.epochs


def test_a_broken_notebook_is_refused_with_where_its_json_breaks():
    with pytest.raises(ImportFormatError, match=r"run.ipynb is not a readable notebook: .* at line 2"):
        parse('{"cells": [\n  oops', "run.ipynb")


# 10. verbose=2: 358ms/epoch rather than a rounded "- 0s -".

def test_verbose2_epoch_time_from_ms_per_epoch():
    first, second = logs_of("keras2-verbose2-ms-per-epoch.txt")
    assert column(first, "epoch_time_s") == [5, 0.358, 0.412]
    assert first.epochs[-1]["elapsed_s"] == pytest.approx(5.770)
    assert column(second, "epoch_time_s") == [pytest.approx(0.044), 1]  # "0s 11ms/step" over 4 steps


# 11. The TensorFlow loop form without accuracy: loss only.

def test_tensorflow_loop_without_accuracy_imports_as_loss_only():
    [log] = logs_of("tfloop-loss-only.md")
    assert log.format == TENSORFLOW_LOOP and log.name == "Tensorflow GPU"
    assert column(log, "loss") == [51.7836, 46.12, 44.9] and column(log, "val_loss") == [47.0752, 45.3, 44.1]
    assert column(log, "accuracy") == [None] * 3
    assert column(log, "epoch_time_s") == [1.83, pytest.approx(1.52), pytest.approx(1.45)]


# 12. In a .py file a `#` line is a comment, not a heading.

def test_a_log_pasted_into_python_comments_is_read_and_never_named_by_a_comment():
    [log] = logs_of("train_with_log.py")
    assert log.name is None  # not "Settings" or "Output:"
    assert column(log, "val_accuracy") == [0.96, 0.973]
    with pytest.raises(ImportFormatError):  # the same text as Markdown is all headings
        parse((CONSOLE / "train_with_log.py").read_text(), "notes.md")


# Callbacks inside an epoch, an unfinished epoch, and a README quoting its own epochs.

def test_callback_lines_keep_the_epoch_open_and_quotes_are_no_new_run():
    [log] = logs_of("keras2-callbacks-and-quotes.md")
    assert column(log, "epoch") == [1, 2]
    assert column(log, "val_auc") == [0.9864, 0.9891] and column(log, "epoch_time_s") == [21, 15]
    assert any("line 13: `Epoch 3/3`: an epoch header with no epoch line after it" in n for n in log.notes)
    assert any("line 20 quotes epoch 2 of this run again" in n for n in log.notes)


def test_a_multi_line_warning_inside_an_epoch_does_not_lose_it_and_a_crash_never_gives_an_epoch():
    text = ("Epoch 1/2\n"
            "WARNING:tensorflow:AutoGraph could not transform <function f> and will run it as-is.\n"
            "Please report this to the TensorFlow team.\n"
            "1875/1875 [====] - 5s 2ms/step - loss: 0.30 - accuracy: 0.91 - val_loss: 0.15 - "
            "val_accuracy: 0.95\n"
            "Epoch 2/2\n"
            "/site-packages/keras/x.py:12: UserWarning: something\n"
            "  warnings.warn(\n"
            "1875/1875 [====] - 4s 2ms/step - loss: 0.14 - accuracy: 0.96\n")
    [log] = parse(text, "x.txt")
    assert column(log, "loss") == [0.30, 0.14] and column(log, "val_loss") == [0.15, None]
    crashed = ("Epoch 1/10\nTraceback (most recent call last):\n"
               "313/313 - 0s - loss: 0.0954 - accuracy: 0.9702\n")
    with pytest.raises(ImportFormatError, match="line 3: .*not read as epoch 1's line"):
        parse(crashed, "y.txt")


# 13. PyTorch Lightning's console: one epoch per finished bar.

def test_lightning_console_one_epoch_per_finished_bar():
    text = (FIXTURES / "lightning-console.log").read_bytes().decode()
    assert "\r" in text and "\x1b[A" in text  # the capture really has redraws and cursor moves
    truth = json.loads((FIXTURES / "lightning-console.expected.json").read_text())["fits"]
    logs = parse(text, "lightning-console.log")
    assert [log.format for log in logs] == [LIGHTNING_CONSOLE] * 2  # a second fit starts at epoch 0
    for log, fit in zip(logs, truth):
        assert column(log, "epoch") == [row["epoch"] for row in fit]
        for record, row in zip(log.epochs, fit):
            assert record["loss"] == pytest.approx(row["loss"], rel=5e-3)  # the bar shows 3 digits
            if "val_loss" in row:
                assert record["val_loss"] == pytest.approx(row["val_loss"], rel=5e-3)
            else:
                assert record["val_loss"] is None  # the bar repeats an earlier epoch's
            assert record["epoch_time_s"] >= 1  # 8 steps of 0.15 s, in tqdm's whole seconds
    assert any("ran no validation" in note for note in logs[0].notes)


def test_lightning_1_bar_with_validation_inside_and_a_running_loss():
    # Lightning 1.x: one bar holds training and validation steps, "Validating" below it, and
    # `loss=` is a running mean of recent steps (said in a note, as no train_loss is shown).
    text = ("Epoch 0: 100%|##########| 20/20 [00:05<00:00,  3.9it/s, loss=0.512, v_num=1]\r"
            "Validating: 100%|####| 4/4 [00:01<00:00]\r"
            "Epoch 0: 100%|##########| 20/20 [00:06<00:00,  3.3it/s, loss=0.512, v_num=1, val_loss=0.44]\n"
            "Epoch 1: 100%|##########| 20/20 [01:05<00:00,  3.9it/s, loss=0.401, v_num=1, val_loss=0.44]\n")
    [log] = parse(text, "lightning.log")
    assert column(log, "loss") == [0.512, 0.401] and column(log, "val_loss") == [0.44, None]
    assert column(log, "epoch_time_s") == [6, 65]  # tqdm's MM:SS
    assert any("running mean" in note for note in log.notes)
    assert any("1 epoch ran no validation (e.g. epoch 2)" in note for note in log.notes)


# Every refusal says why.

@pytest.mark.parametrize(("text", "message"), [
    ("Epoch 1/40\nEpoch 2/40\n",
     "line 1: `Epoch 1/40`: an epoch header with no epoch line after it (the next epoch header follows)"),
    ("Epoch 1/3\n  32/469 [>....] - ETA: 1:02 - loss: 2.3\n",
     "line 1: `Epoch 1/3`: epoch 1 stops at `32/469 [>....] - ETA: 1:02 - loss: 2.3`, unfinished"),
    ("469/469 - 2s - loss: 0.1 - val_loss: 0.2\n",
     "line 1: `469/469 - 2s - loss: 0.1 - val_loss: 0.2`: a progress line with no `Epoch N/M` header"),
    ("Some notes\nEpoch 1/2\n60000/60000 [====] - loss: 0.25 - acc: 0.9\n",
     "line 3: `60000/60000 [====] - loss: 0.25 - acc: 0.9`: no epoch time in a form this reader knows"),
    ("Epoch 1/2\n60000/60000 [====] - 15 sec - loss: 0.25\n",
     "line 2: `60000/60000 [====] - 15 sec - loss: 0.25`: `15 sec` is neither a metric"),
    ("Epoch 1/2\nepoch 1 - loss: 0.25 - accuracy: 0.9\n",
     "line 2: `epoch 1 - loss: 0.25 - accuracy: 0.9`: metrics in a line of no form this reader knows"),
])
def test_refusals_name_the_line_and_what_did_not_fit(tmp_path, text, message):
    store = RunStore(tmp_path / "runs")
    with pytest.raises(ImportFormatError) as caught:
        import_text(store, text, "log.txt")
    assert str(caught.value).startswith("no training log recognised: " + message)
    assert str(caught.value).endswith("nothing imported")
    assert not (tmp_path / "runs").exists()


def test_text_with_nothing_log_like_gets_the_list_of_known_forms():
    with pytest.raises(ImportFormatError, match="Expected Keras fit console output .* PyTorch Lightning"):
        parse("hello\nworld\n", "notes.txt")


def test_an_epoch_header_without_its_line_is_reported_when_the_rest_imports():
    text = "Epoch 1/3\n10/10 - 5s - loss: 0.5\nEpoch 2/3\nEpoch 3/3\n10/10 - 4s - loss: 0.3\n"
    [log] = parse(text, "x.txt")
    assert column(log, "epoch") == [1, 3]
    assert any("line 3: `Epoch 2/3`: an epoch header with no epoch line after it" in n for n in log.notes)
    assert any("epoch 2 is not in the log (it goes from epoch 1 to 3)" in n for n in log.notes)
