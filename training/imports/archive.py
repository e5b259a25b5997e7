"""`import-runs`: run folders made on another machine (a .tgz or a folder) join this store.

What `bench/gpu_proof.py` brings back from a lent GPU machine is a tarball of whole run
folders; this puts them in the runs folder as they are, under their own ids, so `list`,
`compare`, `report` and the dashboard read them like local runs. Each becomes a read-only,
ended run: config.json says `source: "imported-run"` and `imported_from` (the host its
start record names), and launch.describe says "imported run from HOST".

Nothing half-made, nothing outside: the archive is unpacked (or the folder copied) into a
hidden `.tmp-` folder inside the runs folder (same file system, swept if this process
dies), every run is validated, and only then is each renamed into place. Refused, with the
reason and nothing written: a member outside the archive's root (an absolute path, `..`,
a link pointing out, a device file), any link at all (a relative link that stays inside the
archive points elsewhere once its folder is moved), a FIFO, device or socket (refused from
`stat`, never opened), more than MAX_UNPACKED_MB unpacked or MAX_RUNS runs, less than
MIN_FREE_MB left free after it, a folder without config.json's id or without a start record,
a config.json or a record of the wrong types (records.py), an id this store already has (or
a built-in one, or one twice in the archive).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import stat
import tarfile
import time
from pathlib import Path

from training.config import clean_name
from training.store import END_STATES, FAILED, MIN_FREE_MB, RunError, RunStore
from training.store.debris import TMP_PREFIX
from training.store.layout import (
    CONFIG_FILE,
    METRICS_FILE,
    PID_FILE,
    RESERVE_FILE,
    STATUS_FILE,
    SYSTEM_FILE,
    NotAPlainFile,
    kind_of,
    open_plain,
    read_json,
    write_json_atomic,
)
from training.store.logwriter import describe_write_error
from training.store.records import file_problem, record_problem
from training.store.runs import BUILTIN_DIR, builtin_ids, check_run_id
from training.store.space import free_mb

SOURCE = "imported-run"  # config.json's source of a run folder brought from elsewhere
MAX_DEPTH = 4  # run folders sit at most this deep in an archive (e.g. out/runs/<id>)
MAX_UNPACKED_MB = 512  # a run is a few MiB (a profile trace some tens): more is a bomb or a mistake
MAX_RUNS = 1000  # run folders one import may add
MAX_MEMBERS = 100_000  # files and folders in one archive or folder


class ArchiveError(RunError):
    """The archive or folder cannot be imported; nothing was written. The message says why."""


def import_runs(store: RunStore, source: str | Path) -> list[str]:
    """Add every run folder in `source` (a .tgz/.tar.gz/.tar or a folder); returns their ids."""
    source = Path(source)
    try:
        mode = os.stat(source).st_mode  # never opened before it is known to be a file or a folder
    except FileNotFoundError:
        raise ArchiveError(f"{source}: no such file or folder") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ArchiveError(f"{source} is {kind_of(mode)}, not an archive or a folder; nothing imported")
    store.check_writable()
    store.root.mkdir(parents=True, exist_ok=True)
    if source.is_dir() and (source.resolve() == store.root.resolve()
                            or source.resolve() in store.root.resolve().parents):
        raise ArchiveError(f"{source}: holds this runs folder ({store.root}); its runs are here already")
    staging = store.root / f"{TMP_PREFIX}import-{secrets.token_hex(4)}"
    staging.mkdir()
    moved: list[Path] = []
    try:
        if source.is_dir():
            _copy_folder(source, staging / "root", store)
        else:
            _extract(source, staging / "root", store)
        _check_tree(staging / "root", source)
        folders = _run_folders(staging / "root")
        if not folders:
            raise ArchiveError(f"{source}: no run folder in it (a folder with {CONFIG_FILE})")
        if len(folders) > MAX_RUNS:
            raise ArchiveError(f"{source} holds {len(folders):,} run folders; one import adds at most "
                               f"{MAX_RUNS:,} (MAX_RUNS); nothing imported")
        ids = [_validate(folder, store, source) for folder in folders]
        duplicated = {i for i in ids if ids.count(i) > 1}
        if duplicated:
            raise ArchiveError(f"{source}: run id {sorted(duplicated)[0]} appears twice in it")
        for folder in folders:
            _mark_imported(folder)
        for run_id, folder in zip(ids, folders):
            target = store.root / run_id
            try:
                os.rename(folder, target)  # fails if the id appeared meanwhile
            except OSError as error:
                raise ArchiveError(f"{source}: could not add run {run_id}: {error}") from error
            moved.append(target)
        return ids
    except OSError as error:  # a disk that filled while unpacking, say: nothing stays
        _take_back(moved, staging)
        raise ArchiveError(f"{source}: {describe_write_error(error)}; nothing imported") from error
    except BaseException:
        _take_back(moved, staging)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _take_back(moved: list[Path], staging: Path) -> None:
    """All or nothing: the runs already renamed into place go back to the staging folder."""
    for target in moved:
        os.rename(target, staging / target.name)


def _check_size(source: Path, total_bytes: int, members: int, store: RunStore) -> None:
    """Refuse, before a byte is written, more than the caps or more than the disk can spare."""
    if members > MAX_MEMBERS:
        raise ArchiveError(f"{source} holds {members:,} files and folders; one import takes at most "
                           f"{MAX_MEMBERS:,} (MAX_MEMBERS); nothing imported")
    size_mb = total_bytes / 2**20
    if size_mb > MAX_UNPACKED_MB:
        raise ArchiveError(f"{source} unpacks to {size_mb:,.1f} MiB; one import adds at most "
                           f"{MAX_UNPACKED_MB} MiB (MAX_UNPACKED_MB); nothing imported")
    free = free_mb(store.root)
    if free - size_mb < MIN_FREE_MB:
        raise ArchiveError(f"{source} unpacks to {size_mb:,.1f} MiB and {store.root} has {free:,.1f} MiB "
                           f"free; at least {MIN_FREE_MB} MiB (MIN_FREE_MB) must stay free; nothing imported")


# -- bringing the files here, refusing anything outside the root --------------------------------
def _inside(root: Path, path: Path) -> bool:
    return os.path.commonpath([root, os.path.normpath(path)]) == str(root)


def _extract(archive: Path, into: Path, store: RunStore) -> None:
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            root = Path(os.path.abspath(into))
            for member in members:
                _check_member(member, root, archive)
            _check_size(archive, sum(m.size for m in members if m.isfile()), len(members), store)
            into.mkdir()
            tar.extractall(into, filter="data")  # the checks above, once more, by the standard library
    except (tarfile.TarError, EOFError) as error:
        raise ArchiveError(f"{archive}: not a readable tar archive ({error})") from error


def _check_member(member: tarfile.TarInfo, root: Path, archive: Path) -> None:
    name = member.name
    if name.startswith("/") or os.path.isabs(name) or not _inside(root, root / name):
        raise ArchiveError(f"{archive}: {name!r} lies outside the archive's root; nothing imported")
    if member.issym() or member.islnk():
        # A symbolic link's target is relative to its own folder; a hard link's to the root.
        base = (root / name).parent if member.issym() else root
        if os.path.isabs(member.linkname) or not _inside(root, base / member.linkname):
            raise ArchiveError(f"{archive}: {name!r} links to {member.linkname!r}, outside the "
                               "archive's root; nothing imported")
        raise ArchiveError(f"{archive}: {name!r} is a link (to {member.linkname!r}); a run folder holds "
                           "no links, since a link that stays inside the archive points elsewhere once "
                           "its folder is moved; nothing imported")
    elif not (member.isfile() or member.isdir()):
        raise ArchiveError(f"{archive}: {name!r} is not a plain file or folder; nothing imported")


def _copy_folder(source: Path, into: Path, store: RunStore) -> None:
    """Every entry is looked at with lstat before a byte is copied: no link, FIFO or device."""
    root = source.resolve()
    total = members = 0
    for folder, dirs, files in os.walk(source):  # os.walk descends through no link
        for entry in (*dirs, *files):
            path = Path(folder) / entry
            info = os.lstat(path)
            members += 1
            if path.is_symlink():
                where = "outside the folder" if not _inside(root, path.resolve()) else "elsewhere once moved"
                raise ArchiveError(f"{source}: {path.relative_to(source)} links to {os.readlink(path)!r}, "
                                   f"{where}; a run folder holds no links; nothing imported")
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                raise ArchiveError(f"{source}: {path.relative_to(source)} is {kind_of(info.st_mode)}, not "
                                   "a plain file or folder; nothing imported")
            total += info.st_size if stat.S_ISREG(info.st_mode) else 0
    _check_size(source, total, members, store)
    shutil.copytree(source, into, symlinks=True)


def _check_tree(root: Path, source: Path) -> None:
    """Once more on what was brought in, in case the source changed while it was read: plain files
    and folders only."""
    for folder, dirs, files in os.walk(root):
        for entry in (*dirs, *files):
            mode = os.lstat(os.path.join(folder, entry)).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                relative = os.path.relpath(os.path.join(folder, entry), root)
                raise ArchiveError(f"{source}: {relative} is {kind_of(mode)}, not a plain file or folder; "
                                   "nothing imported")


# -- what counts as a run folder -----------------------------------------------------------------
def _run_folders(root: Path) -> list[Path]:
    """Folders holding a config.json, at most MAX_DEPTH deep; not looked into further."""
    found, level = [], [root]
    for _ in range(MAX_DEPTH + 1):
        below = []
        for folder in level:
            if (folder / CONFIG_FILE).is_file() and not (folder / CONFIG_FILE).is_symlink():
                found.append(folder)
            else:
                below += sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()
                                and not p.name.startswith("."))
        level = below
    return found


def _first_record(path: Path) -> dict | None:
    try:
        with open_plain(path) as handle:
            return json.loads(handle.readline())
    except (OSError, ValueError, RecursionError):
        return None


def _record_problem(path: Path) -> str | None:
    """The first record of a log that breaks its schema (records.py), as "metrics.jsonl line 5: ...".

    Lines that do not parse are left: every reader skips them (a torn last line is normal)."""
    try:
        with open_plain(path) as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    record = json.loads(line)
                except (ValueError, RecursionError):
                    continue
                why = record_problem(record) if isinstance(record, dict) else None
                if why:
                    return f"{path.name} line {number}: {why}"
    except FileNotFoundError:
        return None
    except NotAPlainFile as error:
        return f"{path.name} {error.strerror}"
    return None


def _validate(folder: Path, store: RunStore, source: Path) -> str:
    """The run's id, or ArchiveError saying what is wrong with the folder."""
    where = f"{source}: {folder.name}"
    meta = read_json(folder / CONFIG_FILE)
    run_id = (meta or {}).get("id")
    if not run_id:
        raise ArchiveError(f"{where}: {CONFIG_FILE} has no run id; nothing imported")
    try:
        check_run_id(run_id)
    except RunError as error:
        raise ArchiveError(f"{where}: {error}; nothing imported") from error
    if why := file_problem("config", meta):
        raise ArchiveError(f"{where}: {CONFIG_FILE}: {why}; nothing imported")
    start = _first_record(folder / METRICS_FILE)
    if not isinstance(start, dict) or start.get("type") != "start":
        raise ArchiveError(f"{where}: run {run_id} has no start record in {METRICS_FILE}; nothing imported")
    for log in (METRICS_FILE, SYSTEM_FILE):
        if why := _record_problem(folder / log):
            raise ArchiveError(f"{where}: run {run_id}: {why}; nothing imported")
    if run_id in builtin_ids() or (store.root / run_id).exists():
        raise ArchiveError(f"{where}: run {run_id} is already in {store.root}; nothing imported "
                           f"(delete it first to import it again)")
    return run_id


def _mark_imported(folder: Path) -> None:
    """An ended, read-only run that says where it came from; the other machine's pid is dropped."""
    meta = read_json(folder / CONFIG_FILE) or {}
    start = _first_record(folder / METRICS_FILE) or {}
    host = clean_name(str((start.get("hardware") or {}).get("hostname") or "another machine"))
    names = {key: clean_name(meta[key]) for key in ("name", "group_name") if isinstance(meta.get(key), str)}
    write_json_atomic(folder / CONFIG_FILE, {
        **meta, **names, "source": SOURCE, "imported_from": host, "imported_at": time.time(),
        "imported_by": socket.gethostname(), "original_source": meta.get("source", "local")})
    end = _end_record(folder / METRICS_FILE)
    state = (end or {}).get("status")
    if state in END_STATES:
        write_json_atomic(folder / STATUS_FILE, {"state": state, "time": time.time(),
                                                 "error": (end or {}).get("error")})
    else:  # cut off on the other machine (a killed call): it will never end now
        write_json_atomic(folder / STATUS_FILE, {
            "state": FAILED, "time": time.time(),
            "error": f"no end record: it did not finish on {host} before it was brought here"})
    for name in (PID_FILE, RESERVE_FILE):
        (folder / name).unlink(missing_ok=True)


def _end_record(path: Path) -> dict | None:
    try:
        with open_plain(path) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if b'"type":"end"' in line or b'"type": "end"' in line:
            try:
                end = json.loads(line)
            except (ValueError, RecursionError):
                return None
            return end if isinstance(end, dict) and not record_problem(end) else None
    return None


# -- shipping a measured run as a built-in reference run -----------------------------------------
SHIPPED_FILES = (STATUS_FILE, METRICS_FILE, SYSTEM_FILE)  # and config.json, rewritten; no stderr, pid, tb/


def ship(folder: str | Path, ref_id: str, name: str, builtin_dir: Path | None = None) -> Path:
    """Copy a finished run folder into the package's built-in runs as `ref_id`, named `name`.

    For a GPU run measured on a lent machine and brought home with `import-runs`: every
    store then lists it beside the two published runs, read-only (source `reference`).
    Refused unless the run finished with a start record, and unless `ref_id` is a new
    `ref-` id. Built under a dot-name beside the others and renamed into place.
    """
    builtin_dir = builtin_dir or BUILTIN_DIR
    folder = Path(folder)
    check_run_id(ref_id)
    if not ref_id.startswith("ref-"):
        raise ArchiveError(f"{ref_id}: a built-in run's id starts with 'ref-'")
    if (builtin_dir / ref_id).exists():
        raise ArchiveError(f"{ref_id} is already a built-in run; pick another id or remove it first")
    meta = read_json(folder / CONFIG_FILE) or {}
    start, end = _first_record(folder / METRICS_FILE), _end_record(folder / METRICS_FILE)
    if not meta.get("id") or (start or {}).get("type") != "start" or (end or {}).get("status") != "finished":
        raise ArchiveError(f"{folder}: not a finished run (config.json's id, a start and a finished "
                           "end record are needed)")
    tmp = builtin_dir / f".{ref_id}.{secrets.token_hex(3)}"
    tmp.mkdir(parents=True)
    try:
        for file in (f for f in SHIPPED_FILES if (folder / f).is_file()):
            shutil.copyfile(folder / file, tmp / file)
        host = meta.get("imported_from") or ((start or {}).get("hardware") or {}).get("hostname")
        write_json_atomic(tmp / CONFIG_FILE, {
            **{k: v for k, v in meta.items() if k not in ("group", "group_kind", "group_name", "repeat",
                                                          "group_size", "cluster")},
            "id": ref_id, "name": name, "source": "reference", "measured_run": meta["id"],
            "measured_on": host})
        os.rename(tmp, builtin_dir / ref_id)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return builtin_dir / ref_id


if __name__ == "__main__":  # python -m training.imports.archive --ship RUN_FOLDER REF_ID NAME
    import sys

    if len(sys.argv) != 5 or sys.argv[1] != "--ship":
        sys.exit("usage: python -m training.imports.archive --ship RUN_FOLDER REF_ID NAME")
    print(ship(sys.argv[2], sys.argv[3], sys.argv[4]))
