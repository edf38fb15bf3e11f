"""What a store is on disk: format constants, field specs, chunks and codec,
the names of its nodes, the root attributes and their validation, and opening
a path or URL as a zarr store (see docs/store.md, "Layout").

Nothing outside ``hop_data.store`` needs these names of nodes and files: the
service and the training side go through ``TrajectoryStore`` and its reader.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlparse

import numpy as np
import zarr
import zarr.codecs
import zarr.storage
from zarr.core.sync import sync
from zarr.errors import ZarrUserWarning

from hop_robot.embodiment import spec
from hop_robot.embodiment.spec import CONTROL_HZ, EMBODIMENT_NAME, JOINT_NAMES, NUM_JOINTS, NUM_POINTS

from .errors import IncompatibleStoreError, StoreError

FORMAT = "hop-trajectories"
VERSION = 1
DEFAULT_NUM_POINTS = NUM_POINTS
DEFAULT_CHUNK_BYTES = 2 * 2**20  # DESIGN: 1-4 MB a chunk along time
META_CHUNK_EPISODES = 4096  # rows per chunk of the per-episode arrays
# Blosc lz4 + byte shuffle: within ~5 % of zstd's ratio on trajectory data, 5x faster
# to encode and ~20x faster to decode (bench/store_throughput.py, docs/store.md).
COMPRESSOR = zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")

STEP_FIELDS = ("proprio", "action", "object_pc")
# Fixed per-episode fields: name -> (dtype, row shape). ``source`` is the
# argument of ``append_episodes``; the rest are ``Episode`` attributes.
EPISODE_FIELDS: dict[str, tuple[Any, tuple[int, ...]]] = {
    "source": (str, ()),
    "seed": (np.int64, ()),
    "table_pose": (np.float32, (7,)),
    "init_qpos": (np.float32, (NUM_JOINTS,)),
    "max_error": (np.float32, ()),
    "mean_error": (np.float32, ()),
    "collision": (np.bool_, ()),
}
RESERVED = set(STEP_FIELDS) | set(EPISODE_FIELDS) | {"episode_ends"}
WRITER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

# ----------------------------------------------------------------- node and file names
SHARDS = "shards"
LOCK_FILE = "writer.lock"  # in a shard's directory: flock held by its live writer (local stores)
TEMP_FILES = "*.partial"  # LocalStore's temporary files: debris of writes cut short
COMMIT_KEYS = ("committed_steps", "committed_episodes", "committed_sources")
REPORTS = "reports"  # in a shard: reports/<k>, attributes = the report of its k-th committed source


def report_path(writer_id: str, index: int) -> str:
    """The zarr path of the report of a shard's ``index``-th committed source."""
    return f"{SHARDS}/{writer_id}/{REPORTS}/{int(index)}"
# array group of a shard -> the commit count its arrays' lengths must equal
ROW_COUNTS = {"data": "committed_steps", "meta": "committed_episodes"}


def shard_path(writer_id: str) -> str:
    """The zarr path of a writer's shard group."""
    return f"{SHARDS}/{writer_id}"


def step_row_shape(name: str, num_points: int) -> tuple[int, ...]:
    """Row shape of the per-step array ``name``."""
    return (num_points, 3) if name == "object_pc" else (NUM_JOINTS,)


# ----------------------------------------------------------------- root attributes
def root_attrs(num_points: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "embodiment": EMBODIMENT_NAME,
        "joint_names": list(JOINT_NAMES),
        "control_hz": CONTROL_HZ,
        "num_points": int(num_points),
    }


def check_root(attrs: Mapping[str, Any], where: str) -> None:
    """Refuse a group that is not a HOP store, or one for another version/embodiment.
    The embodiment facts go through the one check, ``spec.mismatches``."""
    if attrs.get("format") != FORMAT:
        raise StoreError(
            f"{where} is a Zarr group but not a HOP trajectory store: root attribute "
            f"'format' is {attrs.get('format')!r}, expected {FORMAT!r}"
        )
    if attrs.get("version") != VERSION:
        raise IncompatibleStoreError(
            f"{where}: store format version {attrs.get('version')!r} found, this code reads version {VERSION}"
        )
    problems = spec.mismatches(attrs, required=("embodiment", "joint_names", "control_hz"))
    if problems:
        raise IncompatibleStoreError(f"{where}: store written for another robot: " + "; ".join(problems))
    num_points = attrs.get("num_points")
    if not isinstance(num_points, int) or num_points < 1:
        raise StoreError(f"{where}: root attribute 'num_points' must be a positive int, got {num_points!r}")


class Commit(NamedTuple):
    """A shard's commit record as counts: what a reader of it holds. A store only
    grows (commits append; a repair never cuts below one), so a snapshot of every
    shard's ``Commit`` names the same rows for as long as the store exists."""

    steps: int
    episodes: int
    sources: int

    @classmethod
    def of(cls, attrs: Mapping[str, Any]) -> Commit:
        """The counts of ``commit_attrs``'s record."""
        return cls(attrs["committed_steps"], attrs["committed_episodes"], len(attrs["committed_sources"]))


def commit_attrs(group: zarr.Group, where: str) -> dict[str, Any]:
    """A shard's commit record: committed_steps, committed_episodes, committed_sources."""
    attrs = group.attrs.asdict()
    try:
        out = {
            "committed_steps": int(attrs["committed_steps"]),
            "committed_episodes": int(attrs["committed_episodes"]),
            "committed_sources": [str(s) for s in attrs["committed_sources"]],
        }
    except (KeyError, TypeError, ValueError) as e:
        raise StoreError(f"{where}: shard attributes are missing or malformed ({e!r}): {attrs}") from e
    return out


# ----------------------------------------------------------------- opening
def resolve(
    url: str | os.PathLike, read_only: bool, storage_options: Mapping[str, Any] | None
) -> tuple[zarr.abc.store.Store, Path | None, str]:
    """(zarr store, local path or None, display name). Local paths and file://
    URLs use LocalStore (atomic rename writes, lockable); anything else fsspec."""
    text = os.fspath(url)
    parsed = urlparse(text)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path) if parsed.scheme == "file" else text).expanduser().absolute()
        return zarr.storage.LocalStore(path, read_only=read_only), path, str(path)
    store = zarr.storage.FsspecStore.from_url(
        text, storage_options=dict(storage_options or {}), read_only=read_only
    )
    return store, None, text


def open_group(zstore: zarr.abc.store.Store, path: str, mode: str, where: str) -> zarr.Group:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ZarrUserWarning)
            return zarr.open_group(zstore, path=path, mode=mode, zarr_format=3)
    except Exception as e:  # zarr raises many kinds here; callers get one, naming the place
        raise StoreError(f"{where}: not a readable Zarr v3 group ({type(e).__name__}: {e})") from e


def has_root(zstore: zarr.abc.store.Store) -> bool:
    return bool(sync(zstore.exists("zarr.json")))
