"""``TrajectoryStore``: a store at a path or fsspec URL, created or opened and
checked; it hands out shard writers and readers and answers what is committed."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr
from zarr.errors import ZarrUserWarning

from . import info as _info
from . import repair
from .errors import IncompatibleStoreError, StoreError
from .layout import (
    DEFAULT_NUM_POINTS,
    SHARDS,
    Commit,
    check_root,
    commit_attrs,
    has_root,
    open_group,
    report_path,
    resolve,
    root_attrs,
    shard_path,
)
from .reader import StoreReader
from .writer import ShardWriter


class TrajectoryStore:
    """A trajectory store at a path or fsspec URL. Use ``create`` or ``open``."""

    def __init__(self, zstore: zarr.abc.store.Store, root: zarr.Group, local: Path | None, where: str):
        self._zstore = zstore
        self._root = root
        self.local_path = local
        self.url = where
        self.attrs: dict[str, Any] = root.attrs.asdict()

    # ----------------------------------------------------------------- construction
    @classmethod
    def create(
        cls,
        url: str | os.PathLike,
        num_points: int = DEFAULT_NUM_POINTS,
        *,
        exist_ok: bool = False,
        storage_options: Mapping[str, Any] | None = None,
    ) -> TrajectoryStore:
        """Create an empty store (a new or empty directory). With ``exist_ok`` an
        existing compatible store with the same ``num_points`` is opened instead."""
        if not isinstance(num_points, (int, np.integer)) or isinstance(num_points, bool) or num_points < 1:
            raise ValueError(f"num_points must be a positive int, got {num_points!r}")
        zstore, local, where = resolve(url, False, storage_options)
        if local is not None and local.is_file():
            raise StoreError(f"{where} is a file, not a store directory")
        if local is not None and local.is_dir() and any(local.iterdir()) and not (local / "zarr.json").exists():
            raise StoreError(f"{where}: cannot create a store in a non-empty directory that is not one")
        try:
            exists = has_root(zstore)
        except Exception as e:
            raise StoreError(f"{where}: cannot access ({type(e).__name__}: {e})") from e
        if exists:
            if not exist_ok:
                raise StoreError(f"{where} already exists (open it, or pass exist_ok=True)")
            return cls.open(url, mode="a", num_points=int(num_points), storage_options=storage_options)
        root = zarr.create_group(zstore, zarr_format=3, attributes=root_attrs(int(num_points)))
        root.create_group(SHARDS)
        return cls(zstore, root, local, where)

    @classmethod
    def open(
        cls,
        url: str | os.PathLike,
        mode: Literal["r", "a"] = "r",
        *,
        num_points: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> TrajectoryStore:
        """Open an existing store (``mode="r"``: read-only), or open-or-create
        (``mode="a"``). A given ``num_points`` must match the store's."""
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        zstore, local, where = resolve(url, mode == "r", storage_options)
        if local is not None:
            if local.is_file():
                raise StoreError(f"{where} is a file, not a trajectory store directory")
            if not local.exists() or (local.is_dir() and not any(local.iterdir())):
                if mode == "a":
                    return cls.create(url, num_points or DEFAULT_NUM_POINTS, storage_options=storage_options)
                what = "does not exist" if not local.exists() else "is an empty directory"
                raise StoreError(f"{where} {what}: no trajectory store there")
            if not (local / "zarr.json").is_file():
                raise StoreError(f"{where} is not a Zarr v3 store (no zarr.json in it)")
        elif not has_root(zstore):
            if mode == "a":
                return cls.create(url, num_points or DEFAULT_NUM_POINTS, storage_options=storage_options)
            raise StoreError(f"{where}: no trajectory store there (no zarr.json)")
        root = open_group(zstore, "", "r" if mode == "r" else "r+", where)
        check_root(root.attrs.asdict(), where)
        store = cls(zstore, root, local, where)
        if num_points is not None and num_points != store.num_points:
            raise IncompatibleStoreError(
                f"{where}: store has num_points {store.num_points}, expected {num_points}"
            )
        return store

    # ----------------------------------------------------------------- facts
    @property
    def num_points(self) -> int:
        return int(self.attrs["num_points"])

    @property
    def read_only(self) -> bool:
        return self._zstore.read_only

    def shard_ids(self) -> list[str]:
        """Writer ids that have a shard, sorted (the readers' precedence order)."""
        if SHARDS not in self._root:
            return []
        with warnings.catch_warnings():  # lock files and crash debris are not zarr nodes
            warnings.simplefilter("ignore", ZarrUserWarning)
            return sorted(self._root[SHARDS].group_keys())

    def shard_attrs(self, writer_id: str) -> dict[str, Any]:
        """The committed counts of one shard, as last committed."""
        where = f"{self.url}/{shard_path(writer_id)}"
        return commit_attrs(open_group(self._zstore, shard_path(writer_id), "r", where), where)

    def commits(self) -> dict[str, Commit]:
        """Every shard's commit record now, as counts (shards with nothing committed
        left out): a snapshot to pin readers to, and compare with a later one."""
        out = {}
        for shard in self.shard_ids():
            commit = Commit.of(self.shard_attrs(shard))
            if any(commit):
                out[shard] = commit
        return out

    def committed_sources(self) -> dict[str, str]:
        """source -> id of the shard whose commit readers keep (the first by shard name)."""
        kept: dict[str, str] = {}
        for shard in self.shard_ids():
            for source in self.shard_attrs(shard)["committed_sources"]:
                kept.setdefault(source, shard)
        return kept

    def is_committed(self, source: str) -> bool:
        return source in self.committed_sources()

    def source_reports(self) -> dict[str, dict[str, Any]]:
        """source -> the report committed with it (``append_episodes(report=...)``),
        for the committed sources that have one (the shard readers keep)."""
        from zarr.errors import GroupNotFoundError

        out: dict[str, dict[str, Any]] = {}
        kept = self.committed_sources()
        for shard in self.shard_ids():
            for index, source in enumerate(self.shard_attrs(shard)["committed_sources"]):
                if kept.get(source) != shard or source in out:
                    continue
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ZarrUserWarning)
                        attrs = zarr.open_group(self._zstore, path=report_path(shard, index), mode="r").attrs.asdict()
                except (FileNotFoundError, KeyError, GroupNotFoundError):
                    continue
                if attrs.get("source") == source:  # a leftover of an uncommitted write names another source
                    out[source] = attrs
        return out

    # ----------------------------------------------------------------- access
    def writer(
        self, writer_id: str, extra_fields: Mapping[str, tuple[Any, tuple[int, ...]]] | None = None
    ) -> ShardWriter:
        """The writer of shard ``writer_id`` (created, or repaired and resumed)."""
        return ShardWriter(self, writer_id, extra_fields)

    def reader(self, cache_bytes: int = 512 * 2**20, snapshot: Mapping[str, Commit] | None = None) -> StoreReader:
        """A snapshot of everything committed now, or of what ``snapshot`` (a
        ``commits()`` or ``StoreReader.snapshot`` taken earlier) held: the same
        episodes at the same rows, however much the store has grown since."""
        return StoreReader(self, cache_bytes=cache_bytes, snapshot=snapshot)

    def repair_orphan_shards(self, prefix: str) -> list[str]:
        """Repair the shards ``<prefix>-*`` left with uncommitted rows by writers
        that are gone (local stores: a held lock means a live writer, left alone).
        Returns the ids of the shards repaired."""
        return repair.repair_orphan_shards(self, prefix)

    def info(self) -> dict[str, Any]:
        """Counts and facts for ``hop-data info`` (JSON-ready)."""
        return _info.describe(self)


def store_info(url: str | os.PathLike, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``hop-data info STORE --json``: episodes, steps, sources, embodiment,
    joint_names, control_hz, num_points, shards (per-shard counts), bytes, ..."""
    return TrajectoryStore.open(url, "r", storage_options=storage_options).info()
