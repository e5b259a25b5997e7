"""Every page under Streamlit's AppTest, against run folders the tests make."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from conftest import (
    FIXTURES,
    ROOT,
    chart_specs,
    cli,
    finished_run,
    progress_data,
    progress_texts,
    verdict_cards,
    wait_for,
)
from streamlit.testing.v1 import AppTest

from dashboard import progress
from training.config import make_config
from training.imports.runs import import_file
from training.launch import local
from training.store import RunStore
from training.store.logwriter import append_record

PAGES = ["navigation.py", "pages/train.py", "pages/compare.py", "pages/runs.py", "pages/scaling.py"]


def page(path: str) -> AppTest:
    return AppTest.from_file(str(ROOT / path), default_timeout=60)


def no_exceptions(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """References, a finished CPU run, an imported log and a failed run; made once.

    The finished run is written as a worker writes one (conftest.finished_run): what the
    pages show of it is what is tested here; training itself is test_worker's.
    """
    runs_dir = tmp_path_factory.mktemp("template") / "runs"
    store = RunStore(runs_dir)
    finished_run(store, "tiny cpu", epoch_s=(3.0, 2.0), train=512, test=256)
    import_file(store, str(FIXTURES / "keras3-fit-verbose2.txt"), name="laptop")
    failed = local.create_local(store, make_config(epochs=1, name="broken"))
    failed.append_end("failed", "RuntimeError: boom")
    failed.stderr_path.write_text("Traceback (most recent call last):\nRuntimeError: boom\n")
    failed.set_status("failed", error="RuntimeError: boom")
    return runs_dir


@pytest.fixture
def store(template, runs_dir) -> RunStore:
    """A fresh copy of the template runs folder for each test."""
    shutil.copytree(template, runs_dir)
    return RunStore(runs_dir)


def by_name(store: RunStore, name: str) -> str:
    return next(i for i in store.ids() if store.open(i).meta.get("name") == name)


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_without_exceptions(store, path):
    no_exceptions(page(path).run())


def test_gpu_buttons_are_disabled_with_their_reason(store):
    at = no_exceptions(page("pages/train.py").run())
    assert at.button(key="start_cpu").disabled is False
    reasons = set()
    for key in ("start_gpu", "start_pair"):
        assert at.button(key=key).disabled is True
        assert "GPU" in at.button(key=key).help  # no NVIDIA device, or CUDA_VISIBLE_DEVICES hides it
        reasons.add(at.button(key=key).help)
    [reason] = reasons
    assert any(i.value == f"GPU runs are disabled: {reason}." for i in at.info)


@pytest.fixture
def nvml_sees_a_gpu(monkeypatch):
    """NVML reports NVIDIA H100s (the suite's stand-in pynvml, test_nvml_standin.py); no probe cached."""
    from test_nvml_standin import fake_pynvml

    from training.system import gpucheck
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpucheck.forget()
    yield gpucheck
    gpucheck.forget()


def fake_probe(gpus: list[str], calls: list[str]):
    """A fake of `gpucheck.run_probe`, the backend subprocess: no CUDA backend can run here."""
    def probe(backend: str, timeout: float = 60.0) -> dict:
        calls.append(backend)
        return {"backend": backend, "version": "2.21.0", "gpus": gpus, "devices": ["CPU:0"],
                "cuda_build": True,
                "missing_cuda_wheels": [] if gpus else ["nvidia-cublas-cu12", "nvidia-cudnn-cu12"]}
    return probe


def test_gpu_buttons_say_when_nvml_sees_a_gpu_but_the_backend_does_not(store, nvml_sees_a_gpu, monkeypatch):
    calls = []
    monkeypatch.setattr(nvml_sees_a_gpu, "run_probe", fake_probe([], calls))
    at = no_exceptions(page("pages/train.py").run())
    expected = ("NVIDIA H100 #0 (and 1 more) found, but this TensorFlow 2.21.0 has no CUDA libraries "
                "(nvidia-cublas-cu12 and 1 more not installed): run `make run GPU=1`, or "
                "`pip install -r requirements-gpu.txt`")
    for key in ("start_gpu", "start_pair"):
        assert at.button(key=key).disabled is True and at.button(key=key).help == expected
    assert [i.value for i in at.info] == [f"GPU runs are disabled: {expected}."]
    assert calls == ["tensorflow"]
    no_exceptions(at.run())
    assert calls == ["tensorflow"]  # cached per backend: a rerun does not ask again
    no_exceptions(at.button(key="recheck_gpus").click().run())
    assert calls == ["tensorflow", "tensorflow"]


def test_gpu_buttons_are_enabled_when_the_backend_sees_a_gpu(store, nvml_sees_a_gpu, monkeypatch):
    monkeypatch.setattr(nvml_sees_a_gpu, "run_probe", fake_probe(["NVIDIA H100 80GB HBM3"], []))
    at = no_exceptions(page("pages/train.py").run())
    assert at.button(key="start_gpu").disabled is False and at.button(key="start_pair").disabled is False
    assert not at.info


def test_gpu_doctor_expander_shows_the_report(store, nvml_sees_a_gpu, monkeypatch):
    monkeypatch.setattr(nvml_sees_a_gpu, "run_probe", fake_probe([], []))
    at = no_exceptions(page("pages/train.py").run())
    assert not at.code  # nothing is asked until the user wants it
    no_exceptions(at.button(key="run_doctor").click().run())
    [report] = [c.value for c in at.code]
    assert "GPUs (NVML): NVIDIA H100 #0, NVIDIA H100 #1" in report
    assert "PROBLEM: tensorflow: NVIDIA H100 #0 (and 1 more) found" in report


def test_start_cpu_creates_a_run_through_the_launcher(store, mnist_cached):
    before = set(store.ids())
    at = page("pages/train.py").run()
    at.number_input(key="epochs").set_value(3)
    at.number_input(key="batch_size").set_value(64)
    at.toggle(key="use_subset").set_value(True).run()
    at.number_input(key="limit_train").set_value(512)
    at.number_input(key="limit_test").set_value(256)
    at.text_input(key="name").set_value("from the page")
    at.number_input(key="steps_per_execution").set_value(4)
    no_exceptions(at.button(key="start_cpu").click().run())
    [new] = set(store.ids()) - before
    try:
        meta = store.open(new).meta
        assert meta["name"] == "from the page" and meta["device"] == "cpu"
        keys = ("epochs", "batch_size", "limit_train", "limit_test", "steps_per_execution")
        assert {k: meta["config"][k] for k in keys} == {
            "epochs": 3, "batch_size": 64, "limit_train": 512, "limit_test": 256, "steps_per_execution": 4}
        assert any(new in s.value for s in at.success)
        assert store.open(new).status() in ("queued", "running", "finished")
    finally:
        if store.open(new).status() in ("queued", "running"):
            local.stop(store.open(new))


@pytest.mark.parametrize(("key", "value", "message"), [
    ("epochs", 0, "from 1 to 1000"),
    ("epochs", 5000, "from 1 to 1000"),
    ("batch_size", 0, "from 1 to 60000"),
    ("lr", 0.0, "(0, 10]"),
    ("steps_per_execution", 2000, "from 1 to 1000"),
])
def test_bad_settings_show_an_inline_message_and_disable_start(store, key, value, message):
    before = store.ids()
    at = page("pages/train.py").run()
    at.number_input(key=key).set_value(value).run()
    no_exceptions(at)
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="start_cpu").disabled is True
    assert store.ids() == before


def test_batch_larger_than_subset_is_refused(store):
    at = page("pages/train.py").run()
    at.toggle(key="use_subset").set_value(True).run()
    at.number_input(key="limit_train").set_value(100)
    at.number_input(key="batch_size").set_value(128).run()
    assert any("from 1 to 100" in e.value for e in at.error)
    assert at.button(key="start_cpu").disabled is True


def test_train_page_lists_recently_ended_runs(store):
    at = no_exceptions(page("pages/train.py").run())
    lines = [m.value for m in at.markdown if m.value.startswith("**") and "`" in m.value]
    assert len(lines) == 2 and "**broken**" in lines[0] and "`failed`" in lines[0]
    # Ended before its first epoch: the true reason, not "0/1 epochs · best val accuracy — · —".
    assert "failed before its first epoch ended" in lines[0] and "—" not in lines[0]
    assert "**tiny cpu**" in lines[1] and "2/2 epochs" in lines[1] and "best val accuracy" in lines[1]


def test_stop_button_on_the_train_page_stops_a_running_run(store, mnist_cached):
    run_id = local.launch(store, make_config(epochs=50, batch_size=16, limit_train=4096, limit_test=256)).id
    wait_for(lambda: store.open(run_id).status() == "running", 60, what="running")
    at = no_exceptions(page("pages/train.py").run())
    assert at.button(key=f"stop_{run_id}")
    at.button(key=f"stop_{run_id}").click().run()
    assert store.open(run_id).status() in ("stopping", "stopped")  # the page did not wait
    wait_for(lambda: store.open(run_id).status() == "stopped", 30, what="stopped")


def test_runs_page_history_filter_and_failed_details(store):
    at = no_exceptions(page("pages/runs.py").run())
    names = list(at.dataframe[0].value["Name"])
    assert {"tiny cpu", "laptop", "broken", "Keras CPU (published)"} <= set(names)
    at.multiselect(key="filter_status").set_value(["failed"]).run()
    assert list(at.dataframe[0].value["Name"]) == ["broken"]
    at.selectbox(key="detail_run").set_value(by_name(store, "broken")).run()
    assert any("RuntimeError: boom" in e.value for e in at.error)
    assert any("Traceback" in c.value for c in at.code)


def test_delete_needs_confirmation_and_removes_the_run(store):
    run_id = by_name(store, "laptop")
    at = page("pages/runs.py").run()
    at.selectbox(key="detail_run").set_value(run_id).run()
    assert at.button(key="delete").disabled is True
    at.checkbox(key="confirm_delete").check().run()
    no_exceptions(at.button(key="delete").click().run())
    assert run_id not in store.ids()


def test_reference_runs_cannot_be_deleted_from_the_page(store):
    at = page("pages/runs.py").run()
    at.selectbox(key="detail_run").set_value("ref-keras-cpu").run()
    assert at.checkbox(key="confirm_delete").disabled is True
    assert at.button(key="delete").disabled is True


def test_import_good_file(store):
    before = set(store.ids())
    at = page("pages/runs.py").run()
    at.file_uploader(key="upload").set_value(
        ("results.csv", (FIXTURES / "keras3-csvlogger.csv").read_bytes(), "text/csv")).run()
    at.text_input(key="import_name").set_value("csv run")
    no_exceptions(at.button(key="import").click().run())
    [new] = set(store.ids()) - before
    assert store.open(new).meta["name"] == "csv run" and store.open(new).log().epochs_done == 3
    assert any("Imported 1 run(s)" in s.value for s in at.success)


def test_import_a_zipped_tensorboard_log_names_the_tags_it_skipped(store):
    import io
    import zipfile

    before = set(store.ids())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted((FIXTURES / "tensorboard" / "keras3-callback").rglob("events.*")):
            archive.write(path, str(path.relative_to(FIXTURES / "tensorboard")))
    at = page("pages/runs.py").run()
    at.file_uploader(key="upload").set_value(("logs.zip", buffer.getvalue(), "application/zip")).run()
    no_exceptions(at.button(key="import").click().run())
    [new] = set(store.ids()) - before
    assert store.open(new).name == "keras3-callback" and store.open(new).log().epochs_done == 3
    assert any("Imported 1 run(s)" in s.value for s in at.success)
    assert any("train/epoch_learning_rate" in w.value for w in at.warning)


def test_import_bad_file_reports_and_writes_nothing(store):
    before = store.ids()
    at = page("pages/runs.py").run()
    at.file_uploader(key="upload").set_value(("notes.txt", b"just some notes\n", "text/plain")).run()
    no_exceptions(at.button(key="import").click().run())
    assert any("Nothing imported" in e.value and "Expected" in e.value for e in at.error)
    assert store.ids() == before


def test_compare_defaults_and_summary(store):
    at = no_exceptions(page("pages/compare.py").run())
    picked = at.multiselect(key="compare_runs").value
    assert picked == [by_name(store, "tiny cpu"), "ref-keras-cpu", "ref-tensorflow-gpu"]
    summary = at.dataframe[0].value
    assert list(summary["Run"])[1].startswith("Keras CPU (published)")
    assert list(summary["Speedup"])[0] == "1.00×"  # the baseline is the first pick
    at.selectbox(key="baseline").set_value("ref-keras-cpu").run()
    assert list(at.dataframe[0].value["Speedup"])[2] == "28.50×"
    at.toggle(key="show_refs").set_value(False).run()
    no_exceptions(at)
    assert at.multiselect(key="compare_runs").value == [by_name(store, "tiny cpu")]


NO_FRAMEWORK_IN_STREAMLIT = """
import sys
from streamlit.testing.v1 import AppTest
for path in ["navigation.py", "pages/train.py", "pages/compare.py", "pages/runs.py", "pages/scaling.py"]:
    at = AppTest.from_file(path, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "jax", "torch"))
print(loaded)
"""


@pytest.mark.slow
def test_the_streamlit_process_never_imports_a_framework(store):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", NO_FRAMEWORK_IN_STREAMLIT], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_run_card_between_epochs_survives_a_diverged_epoch(store):
    # A running run (this test process stands in as its live worker) whose last
    # epoch diverged: NaN metrics are logged as null.
    from training.store import process

    run_id = local.create_local(store, make_config(epochs=5, name="diverging")).id
    store.open(run_id).write_pid(process.identity())
    store.open(run_id).set_status("running")
    append_record(store.open(run_id).folder / "metrics.jsonl", {"type": "start"})
    append_record(store.open(run_id).folder / "metrics.jsonl", {
        "type": "epoch", "epoch": 1, "loss": float("nan"), "accuracy": 0.1, "val_loss": None,
        "val_accuracy": None, "epoch_time_s": 3.0, "samples_per_s": 20000.0, "elapsed_s": 3.0})
    at = no_exceptions(page("pages/train.py").run())
    texts = progress_texts(at)
    assert "Epochs: 1 of 5" in texts
    assert "Epoch 2 starting · last epoch 20,000 samples/s, val accuracy —" in texts
    store.open(run_id).set_status("stopped")


def test_where_the_progress_route_is_served_only_a_running_runs_card_asks_it(store, monkeypatch):
    # app.py's st.App serves the route (dashboard/progress.py); AppTest has none, so say it is served.
    from training.store import process

    monkeypatch.setenv(progress.SERVED_ENV, progress.ROUTE)
    running = local.create_local(store, make_config(epochs=2, name="asking")).id
    store.open(running).write_pid(process.identity())  # this test process stands in as its worker
    store.open(running).set_status("running")
    queued = store.create({"name": "waiting", "source": "local", "device": "cpu", "epochs": 2}, "queued").id
    try:
        at = no_exceptions(page("pages/train.py").run())
        urls = {data["url"] for data in progress_data(at)}
        assert urls == {f"/api/progress?run={running}", None}  # the queued card changes only with its status
        assert "Queued: starts when no other run is training (fair timing)" in progress_texts(at)
        monkeypatch.delenv(progress.SERVED_ENV)
        at = no_exceptions(page("pages/train.py").run())
        assert {data["url"] for data in progress_data(at)} == {None}  # the tick draws them instead
    finally:
        store.open(running).set_status("stopped")
        store.open(queued).set_status("stopped")


def test_compare_lists_a_run_made_elsewhere_and_keeps_the_picks(store, runs_dir):
    at = no_exceptions(page("pages/compare.py").run())
    mine = [by_name(store, "laptop"), "ref-tensorflow-gpu"]
    at.multiselect(key="compare_runs").set_value(mine).run()
    # Another process (the command line) makes a run while this session is open.
    made = cli("import", str(FIXTURES / "keras2-fit-verbose2.txt"), "--name", "from the CLI",
               runs_dir=runs_dir)
    [new] = made.stdout.split()
    no_exceptions(at.run())
    assert any(option.endswith(new) for option in at.multiselect(key="compare_runs").options)
    assert at.multiselect(key="compare_runs").value == mine  # the user's picks stay
    at.multiselect(key="compare_runs").set_value([*mine, new]).run()
    assert any(label.startswith("from the CLI") for label in at.dataframe[0].value["Run"])


def test_a_run_from_a_newer_version_is_named_not_raised(store):
    from training.store.layout import METRICS_FILE
    from training.store.logwriter import encode

    log = encode({"type": "start", "format_version": 99}) + encode({"type": "epoch", "epoch": 1})
    run = store.create({"name": "future", "source": "imported"}, "finished", files={METRICS_FILE: log})
    at = page("pages/compare.py").run()
    at.multiselect(key="compare_runs").set_value([run.id]).run()
    no_exceptions(at)
    assert any("written by a newer version" in w.value for w in at.warning)
    no_exceptions(page("pages/runs.py").run())


def test_compare_default_picks_follow_a_new_run_until_the_user_picks(store):
    at = no_exceptions(page("pages/compare.py").run())
    first = by_name(store, "tiny cpu")
    assert at.multiselect(key="compare_runs").value == [first, "ref-keras-cpu", "ref-tensorflow-gpu"]
    # A newer CPU run appears (the CLI, another tab): the defaults follow it on the next rerun.
    newer = finished_run(store, "newer cpu", epoch_s=(3.0, 1.0), train=512, test=256).id
    no_exceptions(at.run())
    assert at.multiselect(key="compare_runs").value == [newer, "ref-keras-cpu", "ref-tensorflow-gpu"]
    assert list(at.dataframe[0].value["Run"])[0].startswith("newer cpu")
    assert not [b for b in at.button if b.key == "add_new_runs"]  # following the defaults: nothing to offer


def test_compare_user_picks_survive_a_new_run_which_is_one_click_away(store):
    at = no_exceptions(page("pages/compare.py").run())
    mine = [by_name(store, "laptop"), "ref-keras-cpu"]
    at.multiselect(key="compare_runs").set_value(mine).run()
    newer = finished_run(store, "newer cpu", epoch_s=(3.0, 1.0), train=512, test=256).id
    no_exceptions(at.run())
    assert at.multiselect(key="compare_runs").value == mine  # the user's picks stay
    assert any("New since you picked: **newer cpu**" in m.value for m in at.markdown)
    no_exceptions(at.button(key="add_new_runs").click().run())
    assert at.multiselect(key="compare_runs").value == [*mine, newer]
    assert not [b for b in at.button if b.key == "add_new_runs"]
    no_exceptions(at.run())
    assert at.multiselect(key="compare_runs").value == [*mine, newer]  # and stay so


def test_compare_opens_on_the_verdict_in_big_numbers(store):
    at = page("pages/compare.py").run()
    at.selectbox(key="baseline").set_value("ref-keras-cpu").run()
    no_exceptions(at)
    cards = verdict_cards(at)
    # Baseline first, then each other run: its speedup on one basis, and its time to target.
    base = cards[0]
    assert list(zip(base["labels"], base["values"])) == [("Baseline", "1×"), ("Time to 99.00%", "229 s")]
    [gpu] = [card for card in cards if "28.50×" in card["values"]]
    assert list(zip(gpu["labels"], gpu["values"])) == [("Speedup", "28.50×"), ("Time to 99.00%", "10 s")]
    assert "It is 28.50× faster than Keras CPU (published)" in gpu["words"]
    assert any("images per epoch second, evaluation included" in c.value for c in at.caption)


def test_compare_table_shows_the_answering_columns_and_the_rest_on_demand(store):
    at = no_exceptions(page("pages/compare.py").run())
    table = at.dataframe[0].value
    assert list(table.columns) == ["Run", "Epochs", "Steady epoch", "Images/s (epoch, eval incl.)", "Speedup",
                                   "Speedup 95% CI", "Time to 99.00%", "Best val acc"]
    assert any(c.value.startswith("Speedups are ratios of steady-state epoch images/s") for c in at.caption)
    at.multiselect(key="more_comparison").set_value(["GFLOP/s", "Total"]).run()
    assert list(at.dataframe[0].value.columns)[-2:] == ["GFLOP/s", "Total"]
    assert "Speedup from" not in at.multiselect(key="more_comparison").options  # said once, above


def test_the_verdict_cards_escape_what_a_run_is_called():
    from dashboard import verdictcards

    named = {"label": "<img src=x onerror=alert(1)>", "claim": "is <b>2.00×</b> faster", "baseline": False,
             "speedup": 2.0, "interval": (1.5, 2.5), "time_to_target_s": None}
    html = verdictcards.cards([named], 0.99)
    assert "<img" not in html and "<b>" not in html  # a run's name is whatever its owner typed
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "is &lt;b&gt;2.00×&lt;/b&gt; faster" in html
    assert 'title="95% CI 1.50–2.50×"' in html and "not reached" in html


def test_compare_draws_only_the_chosen_chart_and_says_why_one_is_empty(store):
    at = no_exceptions(page("pages/compare.py").run())
    [spec] = chart_specs(at)  # one convergence chart by default; the rest one click away
    assert "Validation accuracy against wall-clock time" in spec
    at.multiselect(key="compare_runs").set_value(["ref-keras-cpu", "ref-tensorflow-gpu"])
    at.button_group(key="charts").set_value(["time_split", "system"]).run()
    no_exceptions(at)
    assert not chart_specs(at)  # published runs have no split and no system samples...
    infos = [i.value for i in at.info]
    assert any("Where the time goes: not recorded for these runs" in i for i in infos)  # ...and say so
    assert any("System metrics: no picked run has samples" in i for i in infos)


def test_an_import_on_the_runs_page_joins_the_compare_picks(store):
    at = no_exceptions(AppTest.from_file(str(ROOT / "navigation.py"), default_timeout=60).run())
    at.switch_page("pages/compare.py").run()
    defaults = at.multiselect(key="compare_runs").value
    at.switch_page("pages/runs.py").run()
    at.file_uploader(key="upload").set_value(
        ("results.csv", (FIXTURES / "keras3-csvlogger.csv").read_bytes(), "text/csv")).run()
    before = set(store.ids())
    no_exceptions(at.button(key="import").click().run())
    [new] = set(store.ids()) - before
    at.switch_page("pages/compare.py").run()
    no_exceptions(at)
    assert at.multiselect(key="compare_runs").value == [*defaults, new]
