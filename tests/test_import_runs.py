"""`import-runs`: run folders made elsewhere join the store, or nothing does.

The run imported is a real one: trained once per module by the command line (JAX, one
epoch on a small subset), then tarred as `bench/gpu_proof.py` brings its runs home.
Every refusal is checked to leave the runs folder as it was, with no hidden staging folder.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import tarfile
from pathlib import Path

import pytest
from conftest import TINY, cli, only_run

from training.imports.archive import SOURCE, ArchiveError, import_runs, ship
from training.store import RunStore

pytestmark = pytest.mark.xdist_group("import-runs")  # its run is trained once, on one worker


@pytest.fixture(scope="module")
def made_elsewhere(tmp_path_factory, mnist_cached) -> Path:
    """A runs folder holding one real, finished run: 'the other machine'."""
    runs = tmp_path_factory.mktemp("elsewhere") / "runs"
    result = cli("run", "--backend", "jax", "--epochs", "1", "--name", "from afar", *TINY, runs_dir=runs)
    assert result.returncode == 0, result.stderr[-2000:]
    return only_run(runs)


def tarball(tmp_path: Path, *folders: Path, arcdir: str = "runs", extra=None) -> Path:
    path = tmp_path / "runs.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for folder in folders:
            tar.add(folder, arcname=f"{arcdir}/{folder.name}")
        for member, data in extra or []:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


def store_contents(runs_dir: Path) -> list[str]:
    return sorted(p.name for p in runs_dir.iterdir()) if runs_dir.exists() else []


def refused(store: RunStore, source: Path, text: str) -> None:
    before = store_contents(store.root)
    with pytest.raises(ArchiveError) as caught:
        import_runs(store, source)
    assert text in str(caught.value), caught.value
    after = [name for name in store_contents(store.root) if name not in before]
    assert after == [], after  # no run, no `.tmp-import-` staging folder left behind


def test_a_tarred_run_is_imported_under_its_id_as_an_ended_read_only_run(made_elsewhere, runs_dir, tmp_path):
    result = cli("import-runs", str(tarball(tmp_path, made_elsewhere)), runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [made_elsewhere.name]
    imported = runs_dir / made_elsewhere.name
    meta = json.loads((imported / "config.json").read_text())
    assert meta["source"] == SOURCE and meta["original_source"] == "local"
    assert meta["imported_from"] == socket.gethostname()  # the start record's host (here, the same one)
    assert not (imported / "pid.json").exists()  # another machine's process id means nothing here
    assert (imported / "metrics.jsonl").read_bytes() == (made_elsewhere / "metrics.jsonl").read_bytes()
    listed = json.loads(cli("list", "--json", runs_dir=runs_dir).stdout)
    [row] = [r for r in listed if r["id"] == made_elsewhere.name]
    assert row["status"] == "finished" and row["source"] == SOURCE and row["epochs_done"] == 1
    assert row["where"] == f"imported run from {socket.gethostname()}"
    compared = cli("compare", made_elsewhere.name, "ref-keras-cpu", "--json", runs_dir=runs_dir)
    assert compared.returncode == 0, compared.stderr
    assert [name for name in os.listdir(runs_dir) if name.startswith(".")] == []


def test_a_folder_is_imported_too(made_elsewhere, runs_dir):
    assert import_runs(RunStore(runs_dir), made_elsewhere.parent) == [made_elsewhere.name]
    assert RunStore(runs_dir).open(made_elsewhere.name).status() == "finished"


def test_an_id_already_in_the_store_is_refused(made_elsewhere, runs_dir, tmp_path):
    archive = tarball(tmp_path, made_elsewhere)
    store = RunStore(runs_dir)
    import_runs(store, archive)
    refused(store, archive, f"run {made_elsewhere.name} is already in")
    result = cli("import-runs", str(archive), runs_dir=runs_dir)  # the command line: exit 1, one line
    assert result.returncode == 1 and "already in" in result.stderr


@pytest.mark.parametrize(("name", "text"), [
    ("../escaped.txt", "lies outside the archive's root"),
    ("runs/../../escaped.txt", "lies outside the archive's root"),
    ("/tmp/absolute-escape.txt", "lies outside the archive's root"),
])
def test_a_member_outside_the_root_is_refused_and_nothing_is_written(name, text, made_elsewhere, runs_dir,
                                                                     tmp_path):
    member = tarfile.TarInfo(name)
    member.size = 3
    archive = tarball(tmp_path, made_elsewhere, extra=[(member, b"bad")])
    refused(RunStore(runs_dir), archive, text)
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/absolute-escape.txt").exists()


def test_a_symlink_pointing_out_of_the_archive_is_refused(made_elsewhere, runs_dir, tmp_path):
    link = tarfile.TarInfo(f"runs/{made_elsewhere.name}/stolen")
    link.type, link.linkname = tarfile.SYMTYPE, "../../../../etc/passwd"
    archive = tarball(tmp_path, made_elsewhere, extra=[(link, None)])
    refused(RunStore(runs_dir), archive, "outside the archive")


def test_a_symlink_pointing_out_of_a_folder_is_refused(made_elsewhere, runs_dir, tmp_path):
    folder = tmp_path / "from-elsewhere"
    shutil.copytree(made_elsewhere, folder / made_elsewhere.name)
    (folder / made_elsewhere.name / "stolen").symlink_to("/etc/passwd")
    refused(RunStore(runs_dir), folder, "outside the folder")


def test_a_folder_without_a_start_record_is_refused(made_elsewhere, runs_dir, tmp_path):
    copy = tmp_path / "copy" / made_elsewhere.name
    shutil.copytree(made_elsewhere, copy)
    lines = (copy / "metrics.jsonl").read_text().splitlines(keepends=True)
    (copy / "metrics.jsonl").write_text("".join(lines[1:]))  # the start record dropped
    refused(RunStore(runs_dir), tarball(tmp_path, copy), "has no start record")


def test_a_config_without_an_id_is_refused(made_elsewhere, runs_dir, tmp_path):
    copy = tmp_path / "copy" / made_elsewhere.name
    shutil.copytree(made_elsewhere, copy)
    meta = json.loads((copy / "config.json").read_text())
    del meta["id"]
    (copy / "config.json").write_text(json.dumps(meta))
    refused(RunStore(runs_dir), tarball(tmp_path, copy), "has no run id")


def test_one_bad_run_means_none_is_imported(made_elsewhere, runs_dir, tmp_path):
    bad = tmp_path / "copy" / "20991231-000000-000000-bad000"
    shutil.copytree(made_elsewhere, bad)
    meta = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**meta, "id": bad.name}))
    (bad / "metrics.jsonl").write_text("")
    refused(RunStore(runs_dir), tarball(tmp_path, made_elsewhere, bad), "has no start record")


def test_a_run_cut_off_on_the_other_machine_is_imported_as_failed(made_elsewhere, runs_dir, tmp_path):
    copy = tmp_path / "copy" / made_elsewhere.name
    shutil.copytree(made_elsewhere, copy)
    lines = (copy / "metrics.jsonl").read_text().splitlines(keepends=True)
    (copy / "metrics.jsonl").write_text("".join(lines[:-1]))  # killed before its end record
    (copy / "status.json").write_text(json.dumps({"state": "running"}))
    [run_id] = import_runs(RunStore(runs_dir), tarball(tmp_path, copy))
    run = RunStore(runs_dir).open(run_id)
    assert run.status() == "failed" and "did not finish on" in run.cause("failed")


def test_the_runs_folder_itself_is_refused(made_elsewhere, runs_dir):
    store = RunStore(runs_dir)
    import_runs(store, made_elsewhere.parent)
    refused(store, runs_dir, "holds this runs folder")  # copying it into itself would never end
    refused(store, runs_dir.parent, "holds this runs folder")


def test_not_an_archive_is_refused(runs_dir, tmp_path):
    junk = tmp_path / "junk.tgz"
    junk.write_bytes(b"not a tarball")
    refused(RunStore(runs_dir), junk, "not a readable tar archive")


# -- shipping a measured run as a built-in reference run ---------------------------------------
def test_a_finished_run_ships_as_a_reference_run(made_elsewhere, tmp_path):
    builtin = tmp_path / "builtin"  # the package's own folder is left alone: no GPU run ships yet
    shipped = ship(made_elsewhere, "ref-jax-test", "JAX test (measured)", builtin_dir=builtin)
    meta = json.loads((shipped / "config.json").read_text())
    assert meta["source"] == "reference" and meta["id"] == "ref-jax-test"
    assert meta["measured_run"] == made_elsewhere.name and meta["name"] == "JAX test (measured)"
    assert sorted(p.name for p in shipped.iterdir()) == ["config.json", "metrics.jsonl", "status.json",
                                                          "system.jsonl"]
    assert [p.name for p in builtin.iterdir()] == ["ref-jax-test"]  # no half-made dot folder
    with pytest.raises(ArchiveError, match="already a built-in run"):
        ship(made_elsewhere, "ref-jax-test", "again", builtin_dir=builtin)
    with pytest.raises(ArchiveError, match="starts with 'ref-'"):
        ship(made_elsewhere, "jax-test", "no prefix", builtin_dir=builtin)


def test_an_unfinished_run_does_not_ship(made_elsewhere, tmp_path):
    copy = tmp_path / "copy" / made_elsewhere.name
    shutil.copytree(made_elsewhere, copy)
    lines = (copy / "metrics.jsonl").read_text().splitlines(keepends=True)
    (copy / "metrics.jsonl").write_text("".join(lines[:-1]))
    with pytest.raises(ArchiveError, match="not a finished run"):
        ship(copy, "ref-cut", "cut", builtin_dir=tmp_path / "builtin")
    assert not (tmp_path / "builtin").exists() or not any((tmp_path / "builtin").iterdir())
