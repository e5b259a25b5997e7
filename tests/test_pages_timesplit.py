"""AppTest of "where the time goes": the stacked bar on Compare, the profile on Runs and Train.

The runs are finished run folders with hand-made epoch records (format 3), so the bar's
numbers can be checked by hand; tests/test_profile.py makes real traces.
"""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, chart_specs
from streamlit.testing.v1 import AppTest

from training.config import make_config
from training.store import RunStore
from training.store.layout import METRICS_FILE
from training.store.logwriter import encode

TITLE = "Where the time goes"


def page(path: str) -> AppTest:
    return AppTest.from_file(str(ROOT / path), default_timeout=60)


def no_exceptions(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def make_run(store: RunStore, name: str, profile_steps: int | None = None):
    """A finished 3-epoch run: steps 2 s, first-step wait 0.25 s, evaluation 0.5 s, outside 0.01 s."""
    config = make_config(epochs=3, limit_train=1000, profile_steps=profile_steps)
    meta = {"name": name, "source": "local", "device": "cpu", "engine": "fit", "backend": "tensorflow",
            "epochs": 3, "train_samples": 1000, "config": config.to_dict()}
    log = encode({"type": "start", "hardware": {"cpu_model": "test", "cpu_logical_cores": 2}})
    elapsed = 0.0
    for epoch in (1, 2, 3):
        steps = 6.0 if epoch == 1 else 2.0
        outside = 0.8 if epoch == 2 and profile_steps else 0.01
        total = steps + 0.25 + 0.5 + outside
        elapsed += total
        record = {"type": "epoch", "epoch": epoch, "loss": 1.0 / epoch, "accuracy": 0.5, "val_loss": 1.0,
                  "val_accuracy": 0.9, "epoch_time_s": total, "train_s": total - 0.5, "eval_s": 0.5,
                  "steps_s": steps, "first_step_wait_s": 0.25, "outside_s": outside,
                  "samples_per_s": 1000 / (total - 0.5), "elapsed_s": elapsed, "cpu_s": total}
        if epoch == 2 and profile_steps:
            record.update({"profiled": True, "profile_s": 0.79})
        log += encode(record)
    log += encode({"type": "end", "status": "finished"})
    return store.create(meta, "finished", files={METRICS_FILE: log})


@pytest.fixture
def store(runs_dir) -> RunStore:
    return RunStore(runs_dir)


def split_chart(at: AppTest) -> dict:
    [spec] = [json.loads(spec) for spec in chart_specs(at) if TITLE in spec]
    return spec


@pytest.mark.parametrize("grouped", [False, True])
def test_compare_shows_the_split_below_the_table_and_not_recorded_for_the_published_run(store, grouped):
    run = make_run(store, "split")
    at = page("pages/compare.py").run()
    at.multiselect(key="compare_runs").set_value([run.id, "ref-keras-cpu"])
    at.toggle(key="group_repeats").set_value(grouped).run()
    at.button_group(key="charts").set_value(["time_split"]).run()  # one click away
    no_exceptions(at)
    spec = split_chart(at)
    bars = {trace["meta"]: trace for trace in spec["data"] if trace["type"] == "bar"}
    assert list(bars) == ["steps_s", "first_step_wait_s", "eval_s", "outside_s"]
    assert [bars[k]["x"][0] for k in bars] == [2.0, 0.25, 0.5, 0.01]
    assert [bars[k]["x"][1] for k in bars] == [None] * 4  # the published run: no bar...
    [note] = spec["layout"]["annotations"]
    assert note["text"] == "not recorded" and note["y"].startswith("Keras CPU (published)")  # ...but a word


def test_a_profiled_epoch_is_left_out_of_the_split_and_the_table(store):
    run = make_run(store, "profiled", profile_steps=5)
    at = page("pages/compare.py").run()
    at.multiselect(key="compare_runs").set_value([run.id]).run()
    at.button_group(key="charts").set_value(["time_split"]).run()
    no_exceptions(at)
    bars = {t["meta"]: t for t in split_chart(at)["data"] if t["type"] == "bar"}
    assert bars["outside_s"]["x"] == [0.01]  # epoch 3 only; epoch 2's 0.8 s profile is not steady
    assert list(at.dataframe[0].value["Steady epoch"]) == ["2.76 s"]


def test_runs_page_says_how_to_open_the_trace(store):
    run = make_run(store, "profiled", profile_steps=5)
    xplane = run.profile_dir / "plugins" / "profile" / "2026_11_27_06_00_00" / "vm.xplane.pb"
    xplane.parent.mkdir(parents=True)
    xplane.write_bytes(b"\x0a\x00")  # the panel lists files; tests/test_profile.py reads real ones
    at = page("pages/runs.py").run()
    at.selectbox(key="detail_run").set_value(run.id).run()
    no_exceptions(at)
    text = " ".join(m.value for m in at.markdown)
    assert "**Profile** of 5 training steps in epoch 2, costing 0.79 s" in text
    assert "vm.xplane.pb" in text and f"tensorboard --logdir {run.profile_dir}" in text
    assert "tensorboard-plugin-profile" in text and "ui.perfetto.dev" not in text
    run.torch_trace_path.write_text('{"traceEvents": []}')
    no_exceptions(at.run())
    assert "ui.perfetto.dev" in " ".join(m.value for m in at.markdown)


def test_train_page_profile_checkbox_validates_the_steps(store):
    at = page("pages/train.py").run()
    at.number_input(key="epochs").set_value(1)
    at.checkbox(key="profile").check().run()
    no_exceptions(at)
    assert any("needs --epochs 2 or more" in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="start_cpu").disabled is True
    at.number_input(key="epochs").set_value(3)
    at.number_input(key="profile_steps").set_value(500).run()
    assert any("from 1 to 200" in e.value for e in at.error)
    at.number_input(key="profile_steps").set_value(5).run()
    no_exceptions(at)
    assert not at.error
