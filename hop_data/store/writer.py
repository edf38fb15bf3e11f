"""``ShardWriter``: the one writer of a shard; one atomic commit per source video
(see docs/store.md, "Commit protocol")."""

from __future__ import annotations

import asyncio
import warnings
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.core.sync import sync
from zarr.errors import ZarrUserWarning

from hop_robot.embodiment.spec import NUM_JOINTS

from . import repair
from .episode import CommitResult, Episode, check_episode, check_extra, check_field_name, extra_spec, spec_of
from .errors import StoreError
from .layout import (
    COMPRESSOR,
    EPISODE_FIELDS,
    LOCK_FILE,
    META_CHUNK_EPISODES,
    RESERVED,
    WRITER_ID,
    commit_attrs,
    open_group,
    report_path,
    shard_path,
)
from .lock import ShardLock

if TYPE_CHECKING:
    from .trajectory_store import TrajectoryStore


def _chunk_bytes() -> int:
    """Bytes of a data chunk along time: the package's public ``DEFAULT_CHUNK_BYTES``,
    read when an array is created (so that setting it there takes effect)."""
    from hop_data import store

    return store.DEFAULT_CHUNK_BYTES


class ShardWriter:
    """The only writer of ``shards/<writer_id>``; appends one source video at a time.

    Opening repairs the shard: arrays are cut back to the committed counts, so
    whatever a killed predecessor left uncommitted is dropped. Use as a context
    manager (or call ``close``) to release the shard.
    """

    def __init__(
        self,
        store: TrajectoryStore,
        writer_id: str,
        extra_fields: Mapping[str, tuple[Any, tuple[int, ...]]] | None = None,
    ):
        if store.read_only:
            raise StoreError(f"{store.url} is open read-only; open it with mode='a' to write")
        if not isinstance(writer_id, str) or not WRITER_ID.match(writer_id):
            raise ValueError(f"writer_id must match {WRITER_ID.pattern}, got {writer_id!r}")
        self.store = store
        self.writer_id = writer_id
        self.where = f"{store.url}/{shard_path(writer_id)}"
        self._dir = repair.shard_dir(store, writer_id)
        self._lock = ShardLock((store.url, writer_id), None if self._dir is None else self._dir / LOCK_FILE)
        self._release = weakref.finalize(self, self._lock.release)  # also if never closed
        try:
            self._open_and_repair(dict(extra_fields or {}))
        except BaseException:
            self._lock.release()
            raise

    # ----------------------------------------------------------------- state
    @property
    def committed_steps(self) -> int:
        return self._attrs["committed_steps"]

    @property
    def committed_episodes(self) -> int:
        return self._attrs["committed_episodes"]

    @property
    def committed_sources(self) -> list[str]:
        return list(self._attrs["committed_sources"])

    def is_committed(self, source: str) -> bool:
        """True when ``source`` is committed in this or any other shard of the store."""
        return source in self._sources_set or self.store.is_committed(source)

    def close(self) -> None:
        """Release the shard (idempotent)."""
        self._release()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- open / repair
    def _open_and_repair(self, extra_fields: dict[str, tuple[Any, tuple[int, ...]]]) -> None:
        root = self.store._root
        path = shard_path(self.writer_id)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ZarrUserWarning)
            exists = path in root and isinstance(root[path], zarr.Group)
        if exists:
            self._group = open_group(self.store._zstore, path, "r+", self.where)
        else:  # born with its commit attributes: one metadata write
            self._group = root.create_group(
                path, attributes={"committed_steps": 0, "committed_episodes": 0, "committed_sources": []}
            )
        self._attrs = commit_attrs(self._group, self.where)
        self._sources_set = set(self._attrs["committed_sources"])
        p = self.store.num_points
        self._data: dict[str, zarr.Array] = {
            "proprio": self._require("data/proprio", np.float32, (NUM_JOINTS,)),
            "action": self._require("data/action", np.float32, (NUM_JOINTS,)),
            "object_pc": self._require("data/object_pc", np.float32, (p, 3)),
        }
        self._meta: dict[str, zarr.Array] = {"episode_ends": self._require("meta/episode_ends", np.int64, ())}
        for name, (dtype, shape) in EPISODE_FIELDS.items():
            self._meta[name] = self._require(f"meta/{name}", dtype, shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ZarrUserWarning)
            present = set(self._group["meta"].array_keys())
        for name in sorted(present - RESERVED):
            self._meta[name] = self._group[f"meta/{name}"]
        self._explicit = bool(extra_fields)  # declared now: episodes must match
        if extra_fields:
            self._declare({k: (np.dtype(d), tuple(shape)) for k, (d, shape) in extra_fields.items()})
        # drop rows past the committed counts and temp files: a killed writer's leftovers
        counts = [(a, self.committed_steps) for a in self._data.values()]
        counts += [(a, self.committed_episodes) for a in self._meta.values()]
        repair.cut_back(counts, self.store.url)
        repair.remove_debris(self._dir)

    def _require(self, path: str, dtype: Any, row_shape: tuple[int, ...]) -> zarr.Array:
        """The array at ``path`` (created empty if missing), checked against its spec."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ZarrUserWarning)
            if path in self._group:
                arr = self._group[path]
                if not isinstance(arr, zarr.Array) or tuple(arr.shape[1:]) != row_shape:
                    raise StoreError(f"{self.where}/{path}: expected rows of shape {row_shape}, found {arr}")
                return arr
        dtype = np.dtype(dtype)
        if path.startswith("data/"):
            row_bytes = dtype.itemsize * int(np.prod(row_shape, dtype=np.int64))
            rows = max(1, _chunk_bytes() // row_bytes)
        else:
            rows = META_CHUNK_EPISODES
        kwargs: dict[str, Any] = {}
        if dtype.kind != "U":  # strings: zarr's vlen-utf8 codec, then its default zstd
            kwargs["compressors"] = COMPRESSOR
        return self._group.create_array(
            path,
            shape=(0, *row_shape),
            chunks=(rows, *row_shape),
            dtype=str if dtype.kind == "U" else dtype,
            **kwargs,
        )

    def _declare(self, specs: Mapping[str, tuple[np.dtype, tuple[int, ...]]]) -> None:
        """Make the shard's extra fields exactly ``specs`` (name -> (dtype, row shape)).
        Possible only while the shard has no committed episode; later they must match."""
        for name in specs:
            check_field_name(name, self.where)
        have = self._extra_specs()
        if have == dict(specs):
            return
        if self.committed_episodes > 0:
            raise ValueError(
                f"{self.where}: extra fields {dict(specs)} differ from the shard's {have}; "
                f"they are fixed by the shard's first committed episode"
            )
        for name in have:  # left by an uncommitted first write or an earlier declaration
            del self._group[f"meta/{name}"]
            del self._meta[name]
        for name, (dtype, shape) in specs.items():
            self._meta[name] = self._require(f"meta/{name}", dtype, shape)

    def _extra_specs(self) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        return {k: spec_of(a) for k, a in self._meta.items() if k not in RESERVED}

    # ----------------------------------------------------------------- append
    def append_episodes(
        self, source: str, episodes: Sequence[Episode], report: Mapping[str, Any] | None = None
    ) -> CommitResult:
        """Commit all episodes of one source video in one atomic commit.

        ``episodes`` may be empty: the source is then recorded as done with 0
        episodes, so it is not retried. A source already committed in any
        shard is skipped (``CommitResult.skipped``). Inputs are validated
        before anything is written. ``report`` (JSON-ready: how the source's
        attempts went) is written before the commit and is visible with it
        (``TrajectoryStore.source_reports``).
        """
        if not isinstance(source, str) or not source:
            raise ValueError(f"source must be a non-empty str, got {source!r}")
        episodes = list(episodes)
        num_points = self.store.num_points
        rows = [check_episode(ep, num_points, f"source {source!r}, episode {i}") for i, ep in enumerate(episodes)]
        specs, extras = self._check_extras(source, episodes)
        if self.is_committed(source):
            return CommitResult(source, skipped=True, episodes=0, steps=0)
        if rows:
            self._declare(specs)

        s0, e0 = self.committed_steps, self.committed_episodes
        lengths = np.array([r["proprio"].shape[0] for r in rows], dtype=np.int64)
        s1, e1 = s0 + int(lengths.sum()), e0 + len(rows)
        writes: list[tuple[zarr.Array, int, int, Any]] = []
        if rows:  # 1. steps past committed_steps, 2. per-episode rows past committed_episodes
            for name, arr in self._data.items():
                writes.append((arr, s0, s1, np.concatenate([r[name] for r in rows])))
            columns: dict[str, Any] = {"episode_ends": s0 + np.cumsum(lengths)}
            columns["source"] = np.array([source] * len(rows), dtype=str)
            for name in EPISODE_FIELDS.keys() - {"source"}:
                columns[name] = np.stack([np.asarray(r[name]) for r in rows])
            columns.update(extras)
            writes += [(arr, e0, e1, columns[name]) for name, arr in self._meta.items()]
            sync(_write_all(writes))  # concurrently: different arrays, different keys
        if report is not None:  # before the commit: readers match it to the source it names, or ignore it
            index = len(self._attrs["committed_sources"])
            self.store._root.create_group(
                report_path(self.writer_id, index), attributes={**dict(report), "source": source}, overwrite=True
            )
        new = {
            "committed_steps": s1,
            "committed_episodes": e1,
            "committed_sources": [*self._attrs["committed_sources"], source],
        }
        self._group.update_attributes(new)  # 3. the commit: one metadata write, after all of the above
        self._attrs = new
        self._sources_set.add(source)
        return CommitResult(source, skipped=False, episodes=len(rows), steps=s1 - s0)

    def _check_extras(
        self, source: str, episodes: list[Episode]
    ) -> tuple[dict[str, tuple[np.dtype, tuple[int, ...]]], dict[str, np.ndarray]]:
        """(specs, columns (E, ...)) of the extra fields. The shard's fields rule
        once it has committed episodes or a declaration; else the first episode's."""
        if not episodes:
            return {}, {}
        first = f"source {source!r}, episode 0"
        specs = {k: extra_spec(v, k, first) for k, v in episodes[0].extra.items()}
        have = self._extra_specs()
        if self.committed_episodes > 0 or self._explicit:
            specs = have
        columns: dict[str, list[Any]] = {k: [] for k in specs}
        for i, ep in enumerate(episodes):
            where = f"source {source!r}, episode {i}"
            if set(ep.extra) != set(specs):
                raise ValueError(
                    f"{where}: extra fields {sorted(ep.extra)} differ from the shard's {sorted(specs)}"
                )
            for name, (dtype, shape) in specs.items():
                columns[name].append(check_extra(ep.extra[name], name, dtype, shape, where))
        return specs, {
            k: np.array(v, dtype=str) if specs[k][0].kind == "U" else np.stack(v) for k, v in columns.items()
        }


async def _write_all(writes: list[tuple[zarr.Array, int, int, Any]]) -> None:
    await asyncio.gather(*(_grow_and_write(*w) for w in writes))


async def _grow_and_write(arr: zarr.Array, start: int, stop: int, values: np.ndarray) -> None:
    """Rows [start, stop) of ``arr`` := values (the array is first resized to ``stop`` rows)."""
    target = arr.async_array
    await target.resize((stop, *target.shape[1:]))
    await target.setitem(slice(start, stop), values)
