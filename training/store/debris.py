"""What dead writers leave behind, and sweeping it: half-made run folders and temp files.

A run folder is built under a `.tmp-` name and renamed into place, a deleted
one is renamed to `.deleted-` first, and JSON files are rewritten through a
`.<name>.<pid>.<hex>.tmp` beside them. A writer killed mid-way leaves those;
only what is older than `DEBRIS_AGE_S` is removed, so a write in progress in
another process is never touched. The sweep never goes through a symbolic link:
a run folder that is a link is not looked into, and a link is removed, never
what it points to.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from training.store import layout

DEBRIS_AGE_S = 300  # temp files and half-made folders older than this are a dead writer's
TMP_PREFIX, DELETED_PREFIX = ".tmp-", ".deleted-"

log = logging.getLogger(__name__)


def _stale(entry: os.DirEntry, cutoff: float) -> bool:
    try:
        return entry.stat(follow_symlinks=False).st_mtime < cutoff
    except FileNotFoundError:
        return False  # another process removed it first


def sweep(root: Path, max_age_s: float = DEBRIS_AGE_S) -> list[Path]:
    """Remove the debris under the runs folder `root`; returns what was removed."""
    cutoff = time.time() - max_age_s
    removed = []
    for entry in os.scandir(root):
        if entry.is_symlink():
            continue  # never through a link: what it points to is not this store's
        if entry.name.startswith((TMP_PREFIX, DELETED_PREFIX)) and _stale(entry, cutoff):
            shutil.rmtree(entry.path, ignore_errors=True)  # removes links inside, never their targets
            removed.append(Path(entry.path))
        elif not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
            for item in os.scandir(entry.path):
                temp = item.name.startswith(".") and item.name.endswith(layout.TEMP_SUFFIX)
                if temp and not item.is_dir(follow_symlinks=False) and _stale(item, cutoff):
                    try:
                        os.unlink(item.path)
                        removed.append(Path(item.path))
                    except OSError as error:
                        log.debug("could not remove debris %s: %s", item.path, error)
    for path in removed:
        log.debug("removed debris %s", path)
    return removed
