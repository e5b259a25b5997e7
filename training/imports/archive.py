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
a link pointing out, a device file), a folder without config.json's id or without a start
record, an id this store already has (or a built-in one, or one twice in the archive).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import tarfile
import time
from pathlib import Path

from training.store import END_STATES, FAILED, RunError, RunStore
from training.store.debris import TMP_PREFIX
from training.store.layout import (
    CONFIG_FILE,
    METRICS_FILE,
    PID_FILE,
    RESERVE_FILE,
    STATUS_FILE,
    SYSTEM_FILE,
    read_json,
    write_json_atomic,
)
from training.store.runs import BUILTIN_DIR, builtin_ids, check_run_id

SOURCE = "imported-run"  # config.json's source of a run folder brought from elsewhere
MAX_DEPTH = 4  # run folders sit at most this deep in an archive (e.g. out/runs/<id>)


class ArchiveError(RunError):
    """The archive or folder cannot be imported; nothing was written. The message says why."""


def import_runs(store: RunStore, source: str | Path) -> list[str]:
    """Add every run folder in `source` (a .tgz/.tar.gz/.tar or a folder); returns their ids."""
    source = Path(source)
    if not source.exists():
        raise ArchiveError(f"{source}: no such file or folder")
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
            _copy_folder(source, staging / "root")
        else:
            _extract(source, staging / "root")
        folders = _run_folders(staging / "root")
        if not folders:
            raise ArchiveError(f"{source}: no run folder in it (a folder with {CONFIG_FILE})")
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
    except BaseException:
        for target in moved:  # all or nothing: take back what was already in place
            os.rename(target, staging / target.name)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# -- bringing the files here, refusing anything outside the root --------------------------------
def _inside(root: Path, path: Path) -> bool:
    return os.path.commonpath([root, os.path.normpath(path)]) == str(root)


def _extract(archive: Path, into: Path) -> None:
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            root = Path(os.path.abspath(into))
            for member in members:
                _check_member(member, root, archive)
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
    elif not (member.isfile() or member.isdir()):
        raise ArchiveError(f"{archive}: {name!r} is not a plain file or folder; nothing imported")


def _copy_folder(source: Path, into: Path) -> None:
    root = source.resolve()
    for folder, dirs, files in os.walk(source):
        for entry in (*dirs, *files):
            path = Path(folder) / entry
            if path.is_symlink() and not _inside(root, path.resolve()):
                raise ArchiveError(f"{source}: {path.relative_to(source)} links to {os.readlink(path)!r}, "
                                   "outside the folder; nothing imported")
    shutil.copytree(source, into, symlinks=True)


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
        with open(path, "rb") as handle:
            return json.loads(handle.readline())
    except (OSError, ValueError):
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
    start = _first_record(folder / METRICS_FILE)
    if not isinstance(start, dict) or start.get("type") != "start":
        raise ArchiveError(f"{where}: run {run_id} has no start record in {METRICS_FILE}; nothing imported")
    if run_id in builtin_ids() or (store.root / run_id).exists():
        raise ArchiveError(f"{where}: run {run_id} is already in {store.root}; nothing imported "
                           f"(delete it first to import it again)")
    return run_id


def _mark_imported(folder: Path) -> None:
    """An ended, read-only run that says where it came from; the other machine's pid is dropped."""
    meta = read_json(folder / CONFIG_FILE) or {}
    start = _first_record(folder / METRICS_FILE) or {}
    host = (start.get("hardware") or {}).get("hostname") or "another machine"
    write_json_atomic(folder / CONFIG_FILE, {
        **meta, "source": SOURCE, "imported_from": host, "imported_at": time.time(),
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
        lines = path.read_bytes().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if b'"type":"end"' in line or b'"type": "end"' in line:
            try:
                return json.loads(line)
            except ValueError:
                return None
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
