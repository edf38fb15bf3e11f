"""Repair: what a killed writer leaves behind, and how it is undone.

A writer killed at any instant leaves its committed rows untouched, maybe
arrays longer than the committed counts and maybe LocalStore temp files
(``*.partial``). ``cut_back`` and ``remove_debris`` undo both; every writer
does so when it opens its shard. ``repair_orphan_shards`` does it for shards
whose writer is gone (the service calls it at start for its own shards).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import zarr

from .errors import StoreError, StoreLockedError
from .layout import ROW_COUNTS, TEMP_FILES, shard_path

if TYPE_CHECKING:
    from .trajectory_store import TrajectoryStore


def cut_back(arrays: Iterable[tuple[zarr.Array, int]], url: str) -> None:
    """Resize each (array, committed rows) back to its committed rows (a killed writer's leftovers)."""
    for arr, committed in arrays:
        if arr.shape[0] < committed:
            raise StoreError(f"{url}/{arr.path}: {arr.shape[0]} rows < {committed} committed")
        if arr.shape[0] > committed:
            arr.resize((committed, *arr.shape[1:]))


def shard_dir(store: TrajectoryStore, writer_id: str) -> Path | None:
    """The directory of a shard on a local store (None on object storage)."""
    return None if store.local_path is None else store.local_path / shard_path(writer_id)


def remove_debris(directory: Path | None) -> None:
    """Delete the temp files of writes cut short by a kill (local stores)."""
    if directory is not None:
        for debris in directory.rglob(TEMP_FILES):
            debris.unlink(missing_ok=True)


def needs_repair(store: TrajectoryStore, writer_id: str) -> bool:
    """Whether a local shard holds rows past its commit or temp files (read
    from the arrays' metadata files: cheap, and no zarr node is opened)."""
    directory = shard_dir(store, writer_id)
    if directory is None:
        return False
    try:  # any array longer than the last commit (arrays grow together, in any order)
        attrs = store.shard_attrs(writer_id)
        dirty = any(
            json.loads(meta.read_text())["shape"][0] != attrs[committed]
            for group, committed in ROW_COUNTS.items()
            for meta in (directory / group).glob("*/zarr.json")
        )
    except (OSError, ValueError, KeyError):
        dirty = True  # a shard killed while being born: let a writer sort it out
    return dirty or any(directory.rglob(TEMP_FILES))


def repair_orphan_shards(store: TrajectoryStore, prefix: str) -> list[str]:
    """Repair the shards ``<prefix>-*`` that hold uncommitted rows and no live writer.

    Only on local stores: there a writer's ``flock`` tells a dead writer (lock
    free: reopening cuts its arrays back to the last commit) from a live one
    (lock held: left alone). On object storage there is no lock and nothing is
    done (leftovers stay, invisible to readers). Returns the shards repaired."""
    if store.local_path is None:
        return []
    repaired = []
    for sid in store.shard_ids():
        if not sid.startswith(prefix + "-") or not needs_repair(store, sid):
            continue
        try:
            store.writer(sid).close()
        except StoreLockedError:
            continue
        repaired.append(sid)
    return repaired
