"""The trajectory store (DESIGN.md, interchange format 2): Zarr v3, one shard per
writer, one atomic commit per source video.

Layout (see docs/store.md)::

    store.zarr/                    attrs: format, version, embodiment, joint_names, control_hz, num_points
      shards/<writer-id>/          attrs: committed_steps, committed_episodes, committed_sources
        data/proprio    (N, 23)    float32  joint angles (rad), JOINT_NAMES order
        data/action     (N, 23)    float32  absolute joint targets (rad)
        data/object_pc  (N, P, 3)  float32  object points, robot base frame (m)
        meta/episode_ends (E,)     int64    shard-local end row of each episode
        meta/source     (E,)       string   source video id
        meta/seed (E,) int64, meta/table_pose (E, 7) float32 (xyz + wxyz),
        meta/init_qpos (E, 23) float32, meta/max_error (E,) float32 (m),
        meta/mean_error (E,) float32 (m), meta/collision (E,) bool, meta/<extra> (E, ...)
        writer.lock                local filesystems: flock held by the live writer

A commit writes rows past ``committed_steps``, then the per-episode rows past
``committed_episodes``, then rewrites the shard's attributes in one metadata
write. Readers read only up to the committed counts; a reopening writer cuts
its arrays back to them. ``StoreReader`` is the union of the shards (sorted by
name); a source committed by two shards is kept from the first. A reader can
be pinned to an earlier snapshot of the commits (``TrajectoryStore.commits()``,
``StoreReader.snapshot``): on a store still being written, the same episodes
at the same rows.

Modules: ``layout`` (format constants, node names, root attributes and their
check, opening), ``errors``, ``episode`` (``Episode``, ``CommitResult``, input
checks), ``lock`` (one live writer per shard), ``repair`` (undoing a killed
writer's leftovers, orphan shards), ``writer`` (``ShardWriter``, the commit),
``reader`` (``StoreReader`` and its chunk cache), ``trajectory_store``
(``TrajectoryStore``, ``store_info``), ``info`` (what ``hop-data info`` prints).
Import the public names from here.
"""

from __future__ import annotations

from .episode import CommitResult, Episode
from .errors import IncompatibleStoreError, StoreError, StoreLockedError
from .layout import (
    COMPRESSOR,
    DEFAULT_CHUNK_BYTES,  # read by the writer when it creates an array: set it here
    DEFAULT_NUM_POINTS,
    EPISODE_FIELDS,
    FORMAT,
    META_CHUNK_EPISODES,
    STEP_FIELDS,
    VERSION,
    Commit,
)
from .reader import StoreReader
from .repair import repair_orphan_shards
from .trajectory_store import TrajectoryStore, store_info
from .writer import ShardWriter

__all__ = [
    "COMPRESSOR",
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_NUM_POINTS",
    "EPISODE_FIELDS",
    "FORMAT",
    "META_CHUNK_EPISODES",
    "STEP_FIELDS",
    "VERSION",
    "Commit",
    "CommitResult",
    "Episode",
    "IncompatibleStoreError",
    "ShardWriter",
    "StoreError",
    "StoreLockedError",
    "StoreReader",
    "TrajectoryStore",
    "repair_orphan_shards",
    "store_info",
]
