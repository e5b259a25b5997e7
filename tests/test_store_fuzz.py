"""Property-based tests of the store's readers and importers (hypothesis; issue 26).

Random bytes, truncations, records of the wrong types, links, special files and odd names
go to the log reader (through everything that reads a run: status, listing, comparison,
the report), to `import` and to `import-runs`. For every example: no exception escapes
but the importers' own refusals, nothing is written outside the store, and nothing
already in the store changes. Seeded (`derandomize=True`) and bounded, so `make quick`
runs the same few hundred examples every time in some seconds.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from pathlib import Path

from conftest import FIXTURES, finished_run, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.analysis import comparison, listing
from training.analysis.report import write_report
from training.config import ConfigError
from training.imports.archive import ArchiveError, import_runs
from training.imports.parsers import ImportFormatError
from training.imports.runs import import_upload
from training.store import RunError, RunStore
from training.store.records import RECORDS

FUZZ = settings(derandomize=True, max_examples=30, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

# Values of every JSON type, the ones JSON from elsewhere may spell too (NaN, Infinity, huge numbers).
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=6)


@st.composite
def records(draw) -> dict:
    """A record of a known type whose known fields hold anything, or any object at all."""
    kind = draw(st.sampled_from([*RECORDS, "unknown"]))
    fields = sorted(RECORDS.get(kind, {"type": None}))
    record = {"type": kind}
    for key in draw(st.lists(st.sampled_from(fields), max_size=6, unique=True)):
        record[key] = draw(values)
    if draw(st.booleans()):
        record["type"] = kind  # mostly keep its type
    return record if draw(st.integers(0, 9)) else draw(values)


@st.composite
def log_bytes(draw) -> bytes:
    """JSON lines of fuzzed records, random bytes between them, maybe cut anywhere."""
    lines = []
    for item in draw(st.lists(st.one_of(records(), st.binary(max_size=40)), max_size=8)):
        lines.append(item if isinstance(item, bytes) else json.dumps(item).encode())
    data = b"\n".join(lines) + b"\n"
    return data[:draw(st.integers(0, len(data)))] if draw(st.booleans()) else data


class Sandbox:
    """A runs folder with one good run in it, and files outside it that must never change."""

    def __init__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="store-fuzz-")
        self.base = Path(self._tmp.name)
        self.outside = self.base / "outside"
        self.outside.mkdir()
        (self.outside / "secret.txt").write_text("root:x:0:0\n")
        self.store = RunStore(self.base / "runs")
        self.good = finished_run(self.store, "good")
        self.before_outside = snapshot(self.outside)
        self.before_good = snapshot(self.good.folder)

    def unchanged(self) -> None:
        assert snapshot(self.outside) == self.before_outside
        assert snapshot(self.good.folder) == self.before_good
        assert sorted(os.listdir(self.base)) == ["outside", "runs"]

    def close(self) -> None:
        self._tmp.cleanup()


def read_everything(store: RunStore, tmp: Path) -> None:
    """What `list`, the pages and `report` read of every run; none of it may raise."""
    runs = store.runs()
    statuses = store.statuses(runs)
    for run in runs:
        log = run.log(system=True)
        listing.row(run, "here", run_log=log, status=statuses[run.id])
        comparison.describe(log.epochs, run.meta, log.start)
        run.cause(statuses[run.id], log)
        run.stderr_tail()
        run.profile_files()
    write_report(runs, tmp / "report.html")


RUN_FILES = ["metrics.jsonl", "system.jsonl", "config.json", "status.json", "pid.json", "job.json",
             "stderr.log"]


@FUZZ
@given(contents=st.dictionaries(st.sampled_from(RUN_FILES), st.one_of(log_bytes(), values.map(
    lambda v: json.dumps(v).encode()), st.sampled_from(["folder", "link-out", "fifo"])), min_size=1))
def test_no_content_of_a_run_folder_makes_a_reader_raise(contents):
    box = Sandbox()
    try:
        run = finished_run(box.store, "fuzzed")
        for name, content in contents.items():
            path = run.folder / name
            path.unlink(missing_ok=True)
            if content == "folder":
                path.mkdir()
            elif content == "link-out":
                path.symlink_to(box.outside / "secret.txt")
            elif content == "fifo":
                os.mkfifo(path)
            else:
                path.write_bytes(content)
        box.before_good = snapshot(box.good.folder)
        mine = snapshot(run.folder)
        with tempfile.TemporaryDirectory() as tmp:
            read_everything(box.store, Path(tmp))
        assert snapshot(run.folder) == mine  # reading never writes
        assert run.stderr_tail() != "root:x:0:0" and run.id in box.store.ids()
        box.unchanged()
    finally:
        box.close()


ODD_NAMES = st.one_of(st.text(min_size=1, max_size=20), st.sampled_from(
    ["x\x1b[2J\nY.txt", "bad\udcff.txt", "../../escape.txt", "/abs.txt", "a" * 300, ".",
     "events.out.tfevents.1"]))


@FUZZ
@given(data=st.one_of(log_bytes(), st.binary(max_size=600), st.sampled_from(
    [(FIXTURES / "keras3-fit-verbose2.txt").read_bytes(), (FIXTURES / "keras3-csvlogger.csv").read_bytes()])
    .flatmap(lambda text: st.integers(0, len(text)).map(lambda cut: text[:cut]))),
    filename=ODD_NAMES, name=st.one_of(st.none(), st.text(max_size=12)))
def test_an_import_of_any_bytes_refuses_cleanly_or_makes_readable_runs(data, filename, name):
    box = Sandbox()
    try:
        try:
            made = import_upload(box.store, data, filename, name=name)
        except (RunError, ImportFormatError, ConfigError):
            made = []
        for run_id in made:
            run = box.store.open(run_id)
            assert run.name.isprintable() and run.status() == "finished"
        with tempfile.TemporaryDirectory() as tmp:
            read_everything(box.store, Path(tmp))
        box.unchanged()
    finally:
        box.close()


@st.composite
def members(draw, run_id: str, outside: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """Archive members: a run folder's files (fuzzed or real), links, devices, FIFOs, odd names."""
    found = []
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.sampled_from([f"runs/{run_id}/", "runs/", "", "../", "../../../../", f"{outside}/",
                                      f"runs/{run_id}/tb/"]))
        name = draw(st.one_of(st.sampled_from([*RUN_FILES, "tb", "profile", "x"]),
                              st.text(min_size=1, max_size=8)))
        member = tarfile.TarInfo(where + name)
        kind = draw(st.sampled_from(["file", "file", "file", "symlink", "hardlink", "fifo", "chr", "dir"]))
        data = None
        if kind == "file":
            data = draw(st.one_of(log_bytes(), values.map(lambda v: json.dumps(v).encode())))
            member.size = len(data)
        elif kind in ("symlink", "hardlink"):
            member.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
            member.linkname = draw(st.sampled_from(["../../../../etc/passwd", "metrics.jsonl", "/etc/passwd",
                                                    f"runs/{run_id}/metrics.jsonl", "..", "../" * 6,
                                                    f"{outside}/secret.txt"]))
        else:
            member.type = {"fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE, "dir": tarfile.DIRTYPE}[kind]
        found.append((member, data))
    return found


@FUZZ
@given(data=st.data())
def test_import_runs_of_any_archive_refuses_cleanly_and_lets_no_link_in(data):
    box = Sandbox()
    try:
        other = finished_run(RunStore(box.base / "elsewhere"), "from afar").folder
        archive = box.base / "elsewhere" / "runs.tgz"
        with tarfile.open(archive, "w:gz") as tar:
            if data.draw(st.booleans()):
                tar.add(other, arcname=f"runs/{other.name}")
            for member, content in data.draw(members(other.name, box.outside)):
                tar.addfile(member, io.BytesIO(content) if content is not None else None)
        before = set(box.store.ids())
        try:
            made = import_runs(box.store, archive)
        except ArchiveError:
            made = []
            assert set(box.store.ids()) == before  # all or nothing
        for run_id in made:
            for entry in snapshot(box.store.open(run_id).folder).values():
                assert entry not in ("special",) and not str(entry).startswith("-> ")
        with tempfile.TemporaryDirectory() as tmp:
            read_everything(box.store, Path(tmp))
        assert sorted(os.listdir(box.base)) == ["elsewhere", "outside", "runs"]
        assert snapshot(box.outside) == box.before_outside
        assert snapshot(box.good.folder) == box.before_good
    finally:
        box.close()
