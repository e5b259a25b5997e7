"""Nothing gets in and nothing is lost (issue 26): links, bombs, special files, broken records, names.

Each test is one way a crafted archive, file or run folder broke the store, made with real
files, links, FIFOs and devices. Run folders are fabricated (`conftest.finished_run`) except
where a real worker is what is checked (a foreground run waiting for its worker's exit).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tarfile
import threading
import time
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT, TINY, cli, finished_run, only_run, run_cli
from streamlit.testing.v1 import AppTest

from training.imports.archive import ArchiveError, import_runs
from training.store import RunStore, process
from training.store.logreader import LogReader
from training.store.logwriter import LogWriter

PAGES = ["navigation.py", "pages/train.py", "pages/compare.py", "pages/runs.py", "pages/scaling.py"]
ESCAPE_NAME = "x\x1b[2J\nY"


def elsewhere_run(tmp_path: Path, name: str = "from afar") -> Path:
    """A finished run folder made in another store: what import-runs brings in."""
    store = RunStore(tmp_path / "elsewhere")
    return finished_run(store, name).folder


def tarball(path: Path, folder: Path, arcdir: str, extra=()) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=f"{arcdir}/{folder.name}")
        for member, data in extra:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


def symlink(name: str, target: str) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = tarfile.SYMTYPE, target
    return member


def added(runs_dir: Path, before: set[str]) -> list[str]:
    return sorted(set(os.listdir(runs_dir)) - before) if runs_dir.exists() else []


# -- 1. links never lead out -----------------------------------------------------------------------
@pytest.mark.parametrize(("link", "target"), [
    ("stderr.log", "../../../../etc/passwd"),  # inside the archive while unpacked, /etc/passwd once moved
    ("tb", "../../../.."),
    ("profile", "../../../../usr/share/doc"),
])
def test_a_link_inside_an_import_runs_archive_is_refused_before_anything_moves(tmp_path, runs_dir, link,
                                                                               target):
    folder = elsewhere_run(tmp_path)
    (folder / "stderr.log").unlink(missing_ok=True)
    archive = tarball(tmp_path / "adv.tgz", folder, "a/b/c",
                      extra=[(symlink(f"a/b/c/{folder.name}/{link}", target), None)])
    store = RunStore(runs_dir)
    result = run_cli("import-runs", str(archive), runs_dir=runs_dir)
    assert result.returncode == 1 and "is a link" in result.stderr, result.stderr
    assert store.ids() == [i for i in store.ids() if i.startswith("ref-")]
    assert [p for p in os.listdir(runs_dir) if not p.startswith(".queue")] == []


def test_a_link_inside_an_imported_folder_is_refused(tmp_path, runs_dir):
    source = tmp_path / "from-elsewhere"
    folder = elsewhere_run(tmp_path)
    shutil.copytree(folder, source / "runs" / folder.name)
    (source / "secret.txt").write_text("not a run's")
    (source / "runs" / folder.name / "stderr.log").symlink_to("../../secret.txt")  # inside the folder
    with pytest.raises(ArchiveError, match="links to"):
        import_runs(RunStore(runs_dir), source)
    assert added(runs_dir, set()) == []


def test_readers_never_follow_a_link_out_of_a_run_folder(tmp_path, runs_dir):
    outside = tmp_path / "outside"
    (outside / "docs").mkdir(parents=True)
    (outside / "secret.txt").write_text("root:x:0:0\n")
    (outside / "docs" / "trace.json").write_text("{}")
    store = RunStore(runs_dir)
    run = finished_run(store, "linked")
    run.stderr_path.unlink(missing_ok=True)
    run.stderr_path.symlink_to(outside / "secret.txt")
    run.profile_dir.symlink_to(outside / "docs")
    (run.folder / "tb").symlink_to(outside)
    assert run.stderr_tail() == ""
    assert run.profile_files() == []
    copied = tmp_path / "copy"
    copied.mkdir()
    left_out = run.copy_files(copied)  # what the MLflow export uploads
    assert sorted(left_out) == ["profile", "stderr.log", "tb"]
    assert not any(p.is_symlink() for p in copied.rglob("*"))
    assert b"root:x" not in b"".join(p.read_bytes() for p in copied.rglob("*") if p.is_file())
    assert (copied / "metrics.jsonl").read_bytes() == run.metrics_path.read_bytes()


def test_a_metrics_log_that_is_a_link_is_not_read(tmp_path, runs_dir):
    store = RunStore(runs_dir)
    run = finished_run(store, "linked log")
    outside = tmp_path / "metrics-elsewhere.jsonl"
    shutil.move(run.metrics_path, outside)
    run.metrics_path.symlink_to(outside)
    log = run.log()
    assert log.epochs == [] and "symbolic link" in log.problem
    assert run.end_record() is None
    assert run.status() == "unreadable" and "metrics.jsonl is a symbolic link" in run.cause("unreadable")


def test_a_run_folder_that_is_a_link_is_not_a_run(tmp_path, runs_dir):
    store = RunStore(runs_dir)
    real = finished_run(RunStore(tmp_path / "other"), "elsewhere").folder
    runs_dir.mkdir(parents=True, exist_ok=True)
    (runs_dir / "linkrun").symlink_to(real)
    assert "linkrun" not in store.ids()
    result = run_cli("delete", "linkrun", runs_dir=runs_dir)
    assert result.returncode == 2 and real.exists()


# -- 2. the debris sweep never goes through a link ------------------------------------------------------
def test_the_debris_sweep_does_not_follow_a_link_out_of_the_store(tmp_path, runs_dir):
    somewhere = tmp_path / "somewhere"
    somewhere.mkdir()
    important = somewhere / ".important.tmp"
    important.write_text("keep me")
    (somewhere / "config.json").write_text("{}")
    old = time.time() - 3600
    os.utime(important, (old, old))
    runs_dir.mkdir(parents=True)
    (runs_dir / "linkrun").symlink_to(somewhere)
    (runs_dir / ".tmp-linked").symlink_to(somewhere)
    os.utime(runs_dir / ".tmp-linked", (old, old), follow_symlinks=False)
    result = run_cli("import", str(FIXTURES / "keras3-csvlogger.csv"), runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr
    assert important.read_text() == "keep me"


# -- 3. names are clean at the edge -----------------------------------------------------------------
def test_a_file_name_that_is_not_utf8_imports_with_a_clean_name_and_every_reader_works(tmp_path, runs_dir):
    bad = Path(os.fsdecode(bytes(tmp_path) + b"/bad\xff.txt"))
    shutil.copyfile(FIXTURES / "keras3-fit-verbose2.txt", bad)
    result = run_cli("import", str(bad), runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr
    [run_id] = result.stdout.split()
    run = RunStore(runs_dir).open(run_id)
    assert run.name == "bad\ufffd" and run.name.encode()
    listing = run_cli("list", "--json", runs_dir=runs_dir)
    assert listing.returncode == 0 and json.dumps(json.loads(listing.stdout)).encode()
    report = tmp_path / "report.html"
    made = run_cli("report", run_id, "-o", str(report), runs_dir=runs_dir)
    assert made.returncode == 0, made.stderr
    assert report.stat().st_size > 0


def test_import_name_with_control_characters_is_refused_like_run_name(runs_dir):
    csv = str(FIXTURES / "keras3-csvlogger.csv")
    result = run_cli("import", csv, "--name", ESCAPE_NAME, runs_dir=runs_dir)
    assert result.returncode == 2 and "--name" in result.stderr and "control characters" in result.stderr
    assert not runs_dir.exists() or added(runs_dir, set()) == []


def test_names_taken_from_files_and_archives_lose_their_control_characters(tmp_path, runs_dir):
    named = tmp_path / f"{ESCAPE_NAME}.csv"
    shutil.copyfile(FIXTURES / "keras3-csvlogger.csv", named)
    assert run_cli("import", str(named), runs_dir=runs_dir).returncode == 0
    folder = elsewhere_run(tmp_path, name="plain")
    meta = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**meta, "name": ESCAPE_NAME}))
    import_runs(RunStore(runs_dir), tarball(tmp_path / "r.tgz", folder, "runs"))
    listing = run_cli("list", runs_dir=runs_dir)
    assert listing.returncode == 0
    assert "\x1b" not in listing.stdout and "x\ufffd[2J\ufffdY" in listing.stdout
    assert listing.stdout.count("\n") == len(RunStore(runs_dir).ids()) + 1  # a header and one line a run


# -- 4. special files are refused from stat ---------------------------------------------------------
def finishes(call, timeout: float = 30):
    """`call()`'s result, run in a thread that must end within `timeout` (a FIFO would block it)."""
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", call()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "blocked"
    return box["result"]


@pytest.mark.parametrize("command", ["import", "import-runs"])
def test_a_fifo_or_a_device_given_to_import_is_refused_without_reading_it(tmp_path, runs_dir, command):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for special, word in ((fifo, "FIFO"), (Path("/dev/zero"), "character device")):
        result = finishes(lambda special=special: cli(command, str(special), runs_dir=runs_dir, timeout=60))
        assert result.returncode == 1 and word in result.stderr, result.stderr
    assert not runs_dir.exists() or added(runs_dir, set()) == []


# -- 5 and 6. records checked where read; a broken file makes the run unreadable, never the store --
BROKEN = ("wrong type", "config oops", "config folder", "metrics folder", "status folder")


def broken_store(runs_dir: Path, broken: tuple[str, ...] = BROKEN) -> dict[str, str]:
    """A good run and runs each broken one way (`broken`); name -> run id."""
    store = RunStore(runs_dir)
    made = {name: finished_run(store, name).id for name in ("good", *broken)}
    folder = runs_dir
    if "wrong type" in made:
        with open(folder / made["wrong type"] / "metrics.jsonl", "a") as log:
            log.write(json.dumps({"type": "epoch", "epoch": 4, "val_accuracy": "0.99"}) + "\n")
    if "config oops" in made:
        config = folder / made["config oops"] / "config.json"
        config.write_text(json.dumps({**json.loads(config.read_text()), "config": "oops"}))
    for name, file in (("config folder", "config.json"), ("metrics folder", "metrics.jsonl"),
                       ("status folder", "status.json")):
        if name in made:
            (folder / made[name] / file).unlink()
            (folder / made[name] / file).mkdir()
    return made


def test_a_wrong_typed_record_is_skipped_counted_and_named_with_verbose(runs_dir):
    made = broken_store(runs_dir, ("wrong type",))
    result = run_cli("list", "--json", "--verbose", runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["id"]: row for row in json.loads(result.stdout)}
    wrong = rows[made["wrong type"]]
    assert wrong["status"] == "finished" and wrong["epochs_done"] == 3  # the bad 4th epoch is not one
    assert "val_accuracy must be a number, got '0.99'" in result.stderr
    assert RunStore(runs_dir).open(made["wrong type"]).log().skipped == 1


@pytest.mark.parametrize(("name", "why"), [
    ("config oops", "config.json: config must be an object, got 'oops'"),
    ("config folder", "config.json is a folder"),
    ("metrics folder", "metrics.jsonl is a folder"),
    ("status folder", "status.json is a folder"),
])
def test_a_broken_file_makes_its_run_unreadable_listed_and_deletable(runs_dir, name, why):
    made = broken_store(runs_dir, (name,))
    listing = run_cli("list", "--json", runs_dir=runs_dir)
    assert listing.returncode == 0, listing.stderr[-3000:]
    rows = {row["id"]: row for row in json.loads(listing.stdout)}
    assert rows[made[name]]["status"] == "unreadable" and why in rows[made[name]]["error"], rows[made[name]]
    assert rows[made["good"]]["status"] == "finished"
    deleted = run_cli("delete", made[name], runs_dir=runs_dir)
    assert deleted.returncode == 0, deleted.stderr
    assert made[name] not in RunStore(runs_dir).ids()


@pytest.mark.parametrize("path", PAGES)
def test_no_page_raises_on_broken_runs(runs_dir, path):
    broken_store(runs_dir)
    at = AppTest.from_file(str(ROOT / path), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]


def test_the_runs_page_says_why_a_run_is_unreadable(runs_dir):
    made = broken_store(runs_dir, ("status folder",))
    at = AppTest.from_file(str(ROOT / "pages/runs.py"), default_timeout=60).run()
    at.selectbox(key="detail_run").set_value(made["status folder"]).run()
    assert not at.exception, [e.value for e in at.exception]
    problem = RunStore(runs_dir).open(made["status folder"]).problem()
    assert [e.value for e in at.error] == [f"Unreadable: {problem}"]
    assert "status.json is a folder" in at.error[0].value


def test_import_runs_refuses_an_archive_carrying_a_wrong_typed_record(tmp_path, runs_dir):
    folder = elsewhere_run(tmp_path)
    lines = (folder / "metrics.jsonl").read_text().splitlines(keepends=True)
    lines.insert(2, json.dumps({"type": "epoch", "epoch": 3, "val_accuracy": "0.99"}) + "\n")
    (folder / "metrics.jsonl").write_text("".join(lines))
    with pytest.raises(ArchiveError, match="metrics.jsonl line 3: an epoch record's val_accuracy must be"):
        import_runs(RunStore(runs_dir), tarball(tmp_path / "r.tgz", folder, "runs"))
    assert added(runs_dir, set()) == []


# -- 7. bounded imports, all or nothing ---------------------------------------------------------------
class Zeros(io.RawIOBase):
    """`size` zero bytes, read without holding them: a bomb's member."""

    def __init__(self, size: int):
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


@pytest.mark.slow
def test_an_archive_that_unpacks_past_the_cap_is_refused_before_a_byte_is_written(tmp_path, runs_dir):
    from training.imports.archive import MAX_UNPACKED_MB

    folder = elsewhere_run(tmp_path)
    bomb = tarfile.TarInfo(f"runs/{folder.name}/tb/events.bin")
    bomb.size = (MAX_UNPACKED_MB + 1) * 2**20
    archive = tmp_path / "bomb.tgz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(folder, arcname=f"runs/{folder.name}")
        tar.addfile(bomb, Zeros(bomb.size))
    assert archive.stat().st_size < 4 * 2**20
    with pytest.raises(ArchiveError, match=r"MAX_UNPACKED_MB"):
        import_runs(RunStore(runs_dir), archive)
    assert added(runs_dir, set()) == []


def many_logs(path: Path, count: int) -> Path:
    one = (FIXTURES / "keras3-fit-verbose2.txt").read_text()
    path.write_text("".join(f"# run {n}\n{one}\n" for n in range(count)))
    return path


def test_a_text_import_that_would_fill_the_disk_stops_and_takes_back_every_run(tmpfs, tmp_path):
    from training.imports.runs import MAX_IMPORT_RUNS

    runs = tmpfs("68m") / "runs"
    logs = many_logs(tmp_path / "many.txt", MAX_IMPORT_RUNS)  # each run takes a few KiB of the 4 MiB spare
    result = run_cli("import", str(logs), runs_dir=runs)
    assert result.returncode == 1 and "MIN_FREE_MB" in result.stderr and "nothing imported" in result.stderr
    written = int(re.search(r"the (\d+) runs it had written are removed", result.stderr).group(1))
    assert 0 < written < MAX_IMPORT_RUNS, result.stderr  # it began, and stopped part-way
    assert result.stdout == ""  # no ids: none was kept
    assert [p for p in os.listdir(runs) if not p.startswith(".")] == []


def test_more_runs_than_an_import_may_add_are_refused(tmp_path, runs_dir):
    from training.imports.runs import MAX_IMPORT_RUNS

    logs = many_logs(tmp_path / "many.txt", MAX_IMPORT_RUNS + 1)
    result = run_cli("import", str(logs), runs_dir=runs_dir)
    assert result.returncode == 1 and "MAX_IMPORT_RUNS" in result.stderr
    assert not runs_dir.exists() or added(runs_dir, set()) == []


def test_an_archive_bigger_than_the_free_space_allows_is_refused_before_unpacking(tmpfs, tmp_path):
    runs = tmpfs("80m") / "runs"
    folder = elsewhere_run(tmp_path)
    (folder / "tb").mkdir()
    (folder / "tb" / "events.bin").write_bytes(os.urandom(20 * 2**20))  # 20 MiB leaves < 64 of 80 free
    with pytest.raises(ArchiveError, match="MIN_FREE_MB"):
        import_runs(RunStore(runs), tarball(tmp_path / "big.tgz", folder, "runs"))
    assert [p for p in os.listdir(runs) if not p.startswith(".")] == []


# -- weak today ---------------------------------------------------------------------------------------
def test_a_writer_starts_a_new_line_after_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    writer = LogWriter(path)
    writer.write({"type": "epoch", "epoch": 1}, sync=True)
    with open(path, "ab") as other:  # another writer killed mid-line
        other.write(b'{"type":"epoch","epo')
    writer.write({"type": "epoch", "epoch": 2}, sync=True)
    writer.close()
    reader = LogReader(path)
    assert [r["epoch"] for r in reader.read().records] == [1, 2]
    assert reader.corrupt_lines == 1


@pytest.mark.parametrize(("where", "said"), [
    ("a-file", "is not a folder (it is a plain file)"),
    ("/proc", "stores no files"),
    ("no/such/runs", "does not exist, and neither does"),
])
def test_a_bad_runs_dir_is_refused_once_with_one_line(tmp_path, where, said):
    (tmp_path / "a-file").write_text("")
    target = Path(where) if where.startswith("/") else tmp_path / where
    for command in (["list"], ["run", "--detach", *TINY]):
        result = run_cli(*command, runs_dir=target)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and said in lines[0], lines
    assert not (tmp_path / "no").exists()


def test_a_delete_that_loses_a_race_says_already_deleted(runs_dir, monkeypatch):
    store = RunStore(runs_dir)
    run = finished_run(store, "raced")
    real_rename = os.rename

    def another_delete_first(src, dst):  # the other `delete` renames the folder a moment earlier
        if str(src) == str(run.folder) and "deleted" in str(dst):
            real_rename(src, str(dst) + "-other")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", another_delete_first)
    result = run_cli("delete", run.id, runs_dir=runs_dir)
    assert "already deleted" in result.stderr and "Errno" not in result.stderr, result.stderr


def test_a_foreground_run_returns_after_its_worker_has_exited(runs_dir, mnist_cached):
    result = cli("run", "--epochs", "1", *TINY, runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    ident = json.loads((only_run(runs_dir) / "pid.json").read_text())
    assert not process.is_alive(ident)  # nothing holds the run folder once `run` has returned
