"""Whether a run's folder can be written, and the disk space a worker holds back.

Writing checks first and says why it cannot: a read-only file system or
folder, or less free space than a run needs. A running worker holds a small
reserve file and gives it back when a write fails, so a disk that fills up
mid-run can still record why the run failed (databases keep such a reserve
for the same reason).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path

from training.store.layout import kind_of

MIN_FREE_MB = 64  # a run writes well under 5 MiB; refuse to start one with less room than this
FULL_MB = 1  # less free than this, and a run that died without an end record is blamed on it
RESERVE_BYTES = 256 * 1024  # enough for an end record and status.json on a full disk

log = logging.getLogger(__name__)


def _existing(path: Path) -> Path:
    """`path`, or the nearest folder above it that exists (where it would be made)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def read_only_reason(folder: Path) -> str | None:
    """Why nothing can be written under `folder`, or None if it can be."""
    where = _existing(folder)
    try:
        mounted_ro = bool(os.statvfs(where).f_flag & os.ST_RDONLY)
    except OSError as error:
        return f"its file system cannot be read ({error.strerror})"
    if mounted_ro:
        return "its file system is mounted read-only"
    if not os.access(where, os.W_OK):
        return "this user may not write to it"
    return None


def runs_folder_problem(folder: Path) -> str | None:
    """Why `folder` cannot be a runs folder, in one line, or None: checked once, where it is named.

    A file where the folder should be; a missing folder whose parent is missing too (a typo:
    only the last part of the path is made); a file system that holds no files of its own
    (/proc, /sys: no blocks, and writes there fail in odd ways)."""
    try:
        info = os.stat(folder)
    except FileNotFoundError:
        parent = folder.absolute().parent
        if not parent.is_dir():
            return (f"the runs folder {folder} does not exist, and neither does {parent}: make it first "
                    "(mkdir -p), or fix the path")
        return None
    except OSError as error:
        return f"the runs folder {folder} cannot be looked at: {error.strerror or error}"
    if not stat.S_ISDIR(info.st_mode):
        return f"the runs folder {folder} is not a folder (it is {kind_of(info.st_mode)})"
    try:
        if os.statvfs(folder).f_blocks == 0:
            return (f"the runs folder {folder} is on a file system that stores no files (like /proc or "
                    "/sys); pick a folder on a disk")
    except OSError as error:
        return f"the runs folder {folder} cannot be looked at: {error.strerror or error}"
    return None


def free_mb(folder: Path) -> float:
    """MiB free for this user on the file system that holds `folder`."""
    return shutil.disk_usage(_existing(folder)).free / 2**20


def space_problem(folder: Path, need_mb: float = MIN_FREE_MB) -> str | None:
    """A sentence naming the free and the needed space, when there is too little."""
    free = free_mb(folder)
    if free >= need_mb:
        return None
    return (f"only {free:.1f} MiB free on the file system of {folder}; a run needs at least "
            f"{need_mb} MiB (MIN_FREE_MB)")


def reserve(path: Path, size: int = RESERVE_BYTES) -> bool:
    """Allocate `size` real bytes at `path` (not a sparse promise); False if even this did not fit."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)
    except OSError as error:
        log.debug("no disk space reserve at %s: %s", path, error)
        return False
    return True
