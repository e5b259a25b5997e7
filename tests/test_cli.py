"""The command line: list, import, export, compare, stop, delete, bad ids, help and usage.

Most tests call `main(argv)` in this process (conftest.run_cli); the first
ones run the real `python -m training` once per command, as a user would.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys

import pytest
from conftest import FIXTURES, ROOT, cli, run_cli

from training.cli.parser import build_parser, parse_args
from training.imports.runs import REFERENCE_TEXT
from training.store.logwriter import FORMAT_VERSION


def test_list_json_has_the_reference_runs_with_every_field(runs_dir):
    result = cli("list", "--json", runs_dir=runs_dir)  # the real command, once
    assert result.returncode == 0, result.stderr
    rows = {row["id"]: row for row in json.loads(result.stdout)}
    keras = rows["ref-keras-cpu"]
    for field in ("id", "name", "status", "device", "engine", "source", "epochs", "epochs_done",
                  "best_val_accuracy", "elapsed_s"):
        assert field in keras
    assert keras["name"] == "Keras CPU (published)" and keras["source"] == "reference"
    assert keras["where"] == "published run"
    assert (keras["epochs_done"], keras["best_val_accuracy"], keras["elapsed_s"]) == (30, 0.9939, 3318)
    assert rows["ref-tensorflow-gpu"]["elapsed_s"] == 118.17


def test_compare_published_pair(runs_dir):
    result = run_cli("compare", "ref-keras-cpu", "ref-tensorflow-gpu", "--json", runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    a, b = data["runs"]
    assert data["target"] == 0.99
    assert data["speedup"]["images_per_s"] == pytest.approx(28.5, abs=0.05)  # 110 s vs 3.86 s per 60,000
    assert data["speedup"]["basis"] == "epoch" and data["protocol_note"] is None
    assert (a["time_to_target_s"], b["time_to_target_s"]) == (229, 9.58)
    assert data["speedup"]["time_to_target"] == pytest.approx(229 / 9.58)
    assert a["steady_samples_per_s"] == pytest.approx(60_000 / 110, abs=0.01)
    text = cli("compare", "ref-keras-cpu", "ref-tensorflow-gpu", runs_dir=runs_dir).stdout  # real, once
    assert "28.50x in training images per epoch second, evaluation included" in text
    assert "229.00 s (epoch 2)" in text and "Protocols differ" not in text


def test_compare_unreached_target_is_null(runs_dir):
    data = json.loads(run_cli("compare", "ref-keras-cpu", "ref-tensorflow-gpu", "--target", "0.9999",
                          "--json", runs_dir=runs_dir).stdout)
    assert data["runs"][0]["time_to_target_s"] is None and data["speedup"]["time_to_target"] is None


def test_import_prints_one_id_per_log_and_export_gives_the_table(runs_dir):
    result = cli("import", str(REFERENCE_TEXT), runs_dir=runs_dir)  # the real command, once
    assert result.returncode == 0, result.stderr
    ids = result.stdout.split()
    assert len(ids) == 2
    exported = cli("export", ids[1], "--format", "csv", runs_dir=runs_dir).stdout  # real, once
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert len(rows) == 30
    for column in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "epoch_time_s", "elapsed_s"):
        assert column in rows[0]
    assert rows[-1]["elapsed_s"] == "118.17" and rows[0]["val_accuracy"] == "0.9847"
    as_json = json.loads(run_cli("export", ids[0], "--format", "json", runs_dir=runs_dir).stdout)
    assert as_json[0]["epoch_time_s"] == 112


def test_import_bad_file_fails_and_writes_nothing(runs_dir, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("nothing to see\n")
    result = run_cli("import", str(bad), runs_dir=runs_dir)
    assert result.returncode == 1 and "no training log recognised" in result.stderr
    assert not runs_dir.exists() or not [p for p in runs_dir.iterdir() if not p.name.startswith(".")]


def test_import_with_name_and_device(runs_dir):
    result = run_cli("import", str(FIXTURES / "keras3-fit-verbose2.txt"), "--name", "laptop",
                 "--device", "cpu", runs_dir=runs_dir)
    [run_id] = result.stdout.split()
    rows = {r["id"]: r for r in json.loads(run_cli("list", "--json", runs_dir=runs_dir).stdout)}
    assert rows[run_id]["name"] == "laptop" and rows[run_id]["device"] == "cpu"
    assert rows[run_id]["source"] == "imported" and rows[run_id]["epochs_done"] == 3
    assert rows[run_id]["where"] == "imported log"


@pytest.mark.parametrize("command", ["export", "stop", "delete"])
@pytest.mark.parametrize("run_id", ["../../etc", "a/b", "no-such-run"])
def test_bad_or_unknown_run_id_exits_2(runs_dir, command, run_id):
    runner = cli if run_id == "no-such-run" else run_cli  # each command once as a real process
    result = runner(command, run_id, runs_dir=runs_dir)
    assert result.returncode == 2
    assert "run" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_compare_unknown_run_exits_2(runs_dir):
    result = run_cli("compare", "ref-keras-cpu", "..", runs_dir=runs_dir)
    assert result.returncode == 2 and "invalid run id" in result.stderr


def test_reference_runs_cannot_be_deleted_or_stopped(runs_dir):
    run_cli("list", runs_dir=runs_dir)
    result = run_cli("delete", "ref-keras-cpu", runs_dir=runs_dir)
    assert result.returncode == 1 and "reference run" in result.stderr
    result = run_cli("stop", "ref-keras-cpu", runs_dir=runs_dir)
    assert result.returncode == 1 and "finished" in result.stderr


def test_import_samples_option_fills_in_throughput(runs_dir):
    plain = run_cli("import", str(FIXTURES / "keras3-fit-verbose2.txt"), runs_dir=runs_dir).stdout.split()[0]
    counted = run_cli("import", str(FIXTURES / "keras3-fit-verbose2.txt"), "--samples", "6000",
                  runs_dir=runs_dir).stdout.split()[0]
    assert json.loads(run_cli("compare", plain, counted, "--json", runs_dir=runs_dir).stdout)["runs"][0][
        "steady_samples_per_s"] is None
    text = run_cli("compare", plain, counted, runs_dir=runs_dir).stdout
    assert "images/s             — training, — per epoch second" in text  # the log says nothing of its size
    # Median of 6000/3 s and 6000/2 s, epoch 1 excluded; an imported log times whole epochs only.
    assert "images/s             — training, 2,500 per epoch second" in text
    bad = run_cli("import", str(FIXTURES / "keras3-fit-verbose2.txt"), "--samples", "0", runs_dir=runs_dir)
    assert bad.returncode == 2 and "--samples: must be a whole number from 1 to" in bad.stderr


def newer_log(runs_dir) -> str:
    from training.store import RunStore
    from training.store.layout import METRICS_FILE
    from training.store.logwriter import encode

    records = [{"type": "start", "format_version": 99}, {"type": "epoch", "epoch": 1, "loss": 0.1},
               {"type": "end", "status": "finished"}]
    run = RunStore(runs_dir).create({"name": "from the future", "source": "imported"}, "finished",
                                    files={METRICS_FILE: b"".join(encode(r) for r in records)})
    return run.id


def test_a_log_from_a_newer_version_is_refused_with_one_clear_message(runs_dir):
    run_id = newer_log(runs_dir)
    result = run_cli("export", run_id, runs_dir=runs_dir)
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: written by a newer version (log format 99; this one reads "
                                     f"up to {FORMAT_VERSION}); upgrade")
    assert run_cli("compare", run_id, "ref-keras-cpu", runs_dir=runs_dir).returncode == 1
    listing = run_cli("list", runs_dir=runs_dir)
    assert listing.returncode == 0 and "[written by a newer version" in listing.stdout


def test_verbose_shows_what_was_skipped(runs_dir):
    run_id = newer_log(runs_dir)
    (runs_dir / run_id / "status.json").write_text("{not json")
    quiet = run_cli("list", runs_dir=runs_dir)
    loud = run_cli("list", "--verbose", runs_dir=runs_dir)
    assert quiet.returncode == loud.returncode == 0
    assert "status.json is not JSON" not in quiet.stderr
    assert f"DEBUG training.store.runs: run {run_id}: status.json is not JSON" in loud.stderr


HIDDEN = ("work", "remote-work", "follow")  # started by the launchers, never typed


def listed_commands(help_text: str) -> list[str]:
    """The command names the help lists: the first word of each line indented by four spaces."""
    return re.findall(r"^    (\S+)", help_text, flags=re.MULTILINE)


def test_the_bare_command_exits_2_with_the_usage_and_the_main_commands():
    result = subprocess.run([sys.executable, "-m", "training"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)  # the real command, once
    assert result.returncode == 2
    assert result.stderr.startswith("usage: python -m training")
    listed = listed_commands(result.stderr)
    assert {"run", "list", "compare", "import", "sweep", "report", "doctor"} <= set(listed)
    assert not set(HIDDEN) & set(listed) and "SUPPRESS" not in result.stderr


def test_help_and_usage_never_name_the_internal_commands(runs_dir):
    shown = run_cli("--help", runs_dir=runs_dir)
    assert shown.returncode == 0 and "SUPPRESS" not in shown.stdout
    assert listed_commands(shown.stdout) == list(build_parser().commands)  # every typed command, once
    usage = shown.stdout.split("\n\n")[0]
    assert not any(re.search(rf"\b{name}\b", usage) for name in HIDDEN), usage


def test_an_unknown_command_is_one_line_naming_only_the_typed_commands(runs_dir):
    result = run_cli("trian", runs_dir=runs_dir)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "invalid choice: 'trian'" in result.stderr and "'run'" in result.stderr
    assert "SUPPRESS" not in result.stderr
    assert not any(f"'{name}'" in result.stderr for name in HIDDEN), result.stderr


def test_the_internal_commands_still_parse_for_the_launchers():
    args = parse_args(["work", "20261125-213432-275867-35eca8", "--slurm", "--runs-dir", "runs"])
    assert (args.command, args.run_id, args.slurm) == ("work", "20261125-213432-275867-35eca8", True)
    args = parse_args(["remote-work", "x", "--config", "{}"])
    assert (args.command, args.config) == ("remote-work", "{}")
    assert parse_args(["follow", "x"]).command == "follow"


def value_columns(text: str) -> list[int]:
    """Where the value starts on each indented row: after the label and its run of spaces."""
    return [match.start(2) for line in text.splitlines()
            if (match := re.match(r"   (\S.*?)\s{2,}(\S)", line))]


@pytest.mark.parametrize("ids", [("ref-keras-cpu", "ref-tensorflow-gpu"),
                                 ("ref-keras-cpu", "ref-tensorflow-gpu", "ref-keras-cpu")])
def test_compare_rows_line_up_whatever_the_target_label(runs_dir, ids):
    text = run_cli("compare", *ids, "--target", "0.985", runs_dir=runs_dir).stdout
    columns = value_columns(text)
    assert "time to 98.50%" in text and len(columns) >= 14, text  # two blocks of rows
    assert len(set(columns)) == 1, text
