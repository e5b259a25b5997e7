"""The log reader, written as "append bytes, assert what is yielded"."""

from __future__ import annotations

import json
import os

import pytest

from training.store.logreader import LogReader


def line(**record) -> bytes:
    return (json.dumps(record) + "\n").encode()


def append(path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)


def test_missing_file_yields_nothing_then_picks_up_when_created(tmp_path):
    path = tmp_path / "metrics.jsonl"
    reader = LogReader(path)
    assert reader.read().records == []
    append(path, line(type="epoch", epoch=1))
    assert reader.read().records == [{"type": "epoch", "epoch": 1}]


def test_empty_file_yields_nothing(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b"")
    assert LogReader(path).read().records == []


def test_each_record_is_yielded_exactly_once(tmp_path):
    path = tmp_path / "metrics.jsonl"
    reader = LogReader(path)
    append(path, line(n=1) + line(n=2))
    assert [r["n"] for r in reader.read().records] == [1, 2]
    assert reader.read().records == []
    append(path, line(n=3))
    assert [r["n"] for r in reader.read().records] == [3]


def test_partial_last_line_waits_for_the_rest(tmp_path):
    path = tmp_path / "metrics.jsonl"
    reader = LogReader(path)
    whole = line(type="epoch", epoch=7, loss=0.5)
    append(path, line(n=1) + whole[:10])
    assert reader.read().records == [{"n": 1}]
    assert reader.corrupt_lines == 0
    append(path, whole[10:-1])  # still no newline
    assert reader.read().records == []
    append(path, whole[-1:])
    assert reader.read().records == [{"type": "epoch", "epoch": 7, "loss": 0.5}]


def test_corrupt_line_is_skipped_and_counted(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append(path, line(n=1) + b"{not json\n" + b"[1, 2]\n" + b"\xff\xfe\n" + line(n=2))
    reader = LogReader(path)
    assert [r["n"] for r in reader.read().records] == [1, 2]
    assert reader.corrupt_lines == 3


def test_truncated_file_is_reread_from_the_start(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append(path, line(n=1) + line(n=2))
    reader = LogReader(path)
    reader.read()
    with open(path, "r+b") as handle:
        handle.truncate(0)
    append(path, line(n=9))
    result = reader.read()
    assert result.reset and [r["n"] for r in result.records] == [9]


def test_replaced_file_is_reread_even_if_it_grew(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append(path, line(n=1))
    reader = LogReader(path)
    reader.read()
    replacement = tmp_path / "new.jsonl"
    replacement.write_bytes(line(n=5) + line(n=6) + line(n=7))
    os.replace(replacement, path)
    result = reader.read()
    assert result.reset and [r["n"] for r in result.records] == [5, 6, 7]


def test_deleted_file_resets_and_yields_nothing(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append(path, line(n=1))
    reader = LogReader(path)
    reader.read()
    path.unlink()
    result = reader.read()
    assert result.reset and result.records == []
    append(path, line(n=2))
    assert [r["n"] for r in reader.read().records] == [2]


def test_windows_line_endings_parse(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append(path, b'{"n": 1}\r\n{"n": 2}\r\n')
    assert [r["n"] for r in LogReader(path).read().records] == [1, 2]


@pytest.mark.parametrize("how", ["append_record", "LogWriter"])
def test_a_torn_last_line_is_repaired_on_the_next_append(tmp_path, how):
    from training.store.logwriter import LogWriter, append_record

    path = tmp_path / "metrics.jsonl"
    append(path, line(type="epoch", epoch=1) + b'{"type": "progress", "ba')  # writer killed mid-line
    if how == "append_record":
        append_record(path, {"type": "end", "status": "stopped"})
    else:
        with LogWriter(path) as writer:
            writer.write({"type": "end", "status": "stopped"})
    reader = LogReader(path)
    records = reader.read().records
    assert [r["type"] for r in records] == ["epoch", "end"]
    assert records[1]["status"] == "stopped" and reader.corrupt_lines == 0
    assert b'"ba' not in path.read_bytes()  # the torn fragment is gone, not just skipped


def test_a_file_that_is_only_a_torn_line_is_emptied_before_the_append(tmp_path):
    from training.store.logwriter import append_record

    path = tmp_path / "metrics.jsonl"
    append(path, b'{"type": "sta')
    append_record(path, {"type": "end", "status": "failed"})
    assert [r["type"] for r in LogReader(path).read().records] == ["end"]


def test_run_log_takes_known_versions_and_refuses_a_newer_one(tmp_path):
    from training.store.logwriter import FORMAT_VERSION, encode
    from training.store.runlog import NewerLogFormat, RunLog

    for version, readable in ((None, True), (1, True), (FORMAT_VERSION, True), (FORMAT_VERSION + 1, False)):
        path = tmp_path / f"v{version}.jsonl"
        start = {"type": "start"} if version is None else {"type": "start", "format_version": version}
        body = encode(start) if version is not None else b'{"type":"start"}\n'  # a version-1 writer
        path.write_bytes(body + encode({"type": "epoch", "epoch": 1}))
        log = RunLog(path)
        log.update()
        assert (log.epochs_done == 1) is readable
        if readable:
            assert log.check() is log and log.format_error is None
        else:
            assert log.format_error == (f"written by a newer version (log format {version}; this one "
                                        f"reads up to {FORMAT_VERSION}); upgrade")
            with pytest.raises(NewerLogFormat):
                log.check()


def test_every_start_record_is_stamped_with_the_format_version():
    import json

    from training.store.logwriter import FORMAT_VERSION, encode

    assert json.loads(encode({"type": "start", "config": {}}))["format_version"] == FORMAT_VERSION
    assert "format_version" not in json.loads(encode({"type": "epoch", "epoch": 1}))
