"""``StoreReader``: a snapshot of every shard's committed episodes, with an LRU
cache of decoded chunks for training windows (see docs/store.md, "Reading for
training")."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import zarr
from zarr.errors import ZarrUserWarning

from .errors import StoreError
from .layout import EPISODE_FIELDS, STEP_FIELDS, Commit, commit_attrs, open_group, shard_path, step_row_shape

if TYPE_CHECKING:
    from .trajectory_store import TrajectoryStore

@dataclass
class _Shard:
    id: str
    steps: int
    episodes: int
    sources: list[str]
    arrays: dict[str, zarr.Array]


class StoreReader:
    """Snapshot of the committed episodes of every shard (sorted by shard id;
    a source committed by several shards is kept from the first).

    Global step rows run over the kept episodes in that order:
    ``episode_ends (E,)`` indexes them. Low-dim arrays load whole
    (``proprio``, ``action``: (N, 23)); ``windows`` gathers (B, L, ...) windows
    chunk by chunk through an LRU cache of decoded chunks.

    ``snapshot`` (shard id -> ``Commit``, e.g. another reader's ``snapshot``)
    pins the reader to those commits: on a store that writers still append to,
    a later reader (a DataLoader worker's) then sees the very same episodes at
    the very same global rows. Without it, rows of a shard shift whenever a
    shard sorted before it commits more.
    """

    def __init__(
        self, store: TrajectoryStore, cache_bytes: int = 512 * 2**20, snapshot: Mapping[str, Commit] | None = None
    ):
        self.store = store
        self.num_points = store.num_points
        self._shards: list[_Shard] = []
        self._cache: OrderedDict[tuple[int, str, int], np.ndarray] = OrderedDict()
        self._cache_bytes = int(cache_bytes)
        self._cached = 0
        self._low_dim: dict[str, np.ndarray] = {}
        seen: set[str] = set()
        self.sources: list[str] = []  # committed sources, kept commit, in precedence order
        ep_shard, ep_start, ep_len, metas = [], [], [], []
        self.num_ignored_episodes = 0
        for shard_id in store.shard_ids():
            if snapshot is not None and shard_id not in snapshot:
                continue  # born after the snapshot
            where = f"{store.url}/{shard_path(shard_id)}"
            group = open_group(store._zstore, shard_path(shard_id), "r", where)
            attrs = commit_attrs(group, where)
            if snapshot is not None:
                attrs = _pinned(attrs, Commit(*snapshot[shard_id]), where)
            shard = _Shard(
                shard_id, attrs["committed_steps"], attrs["committed_episodes"], attrs["committed_sources"], {}
            )
            index = len(self._shards)
            self._shards.append(shard)
            kept = [s for s in shard.sources if s not in seen]
            seen.update(kept)
            self.sources.extend(kept)
            if shard.episodes == 0:
                continue
            meta = self._read_meta(group, shard, where)
            ends = meta.pop("episode_ends")
            starts = np.concatenate([[0], ends[:-1]])
            kept_set = set(kept)
            keep = np.array([s in kept_set for s in meta["source"].tolist()], dtype=bool)
            self.num_ignored_episodes += int((~keep).sum())
            ep_shard.append(np.full(int(keep.sum()), index))
            ep_start.append(starts[keep])
            ep_len.append((ends - starts)[keep])
            metas.append({k: v[keep] for k, v in meta.items()})
        self._ep_shard = np.concatenate(ep_shard) if ep_shard else np.zeros(0, np.int64)
        self._ep_local = np.concatenate(ep_start).astype(np.int64) if ep_start else np.zeros(0, np.int64)
        lengths = np.concatenate(ep_len).astype(np.int64) if ep_len else np.zeros(0, np.int64)
        self.episode_ends: np.ndarray = np.cumsum(lengths)  # (E,) global end row of each episode
        self.episode_starts: np.ndarray = self.episode_ends - lengths  # (E,)
        names = set.intersection(*(set(m) for m in metas)) if metas else set(EPISODE_FIELDS)
        self.meta_names: tuple[str, ...] = tuple(n for n in EPISODE_FIELDS if n in names) + tuple(
            sorted(names - set(EPISODE_FIELDS))
        )
        if metas:
            self._meta = {n: np.concatenate([m[n] for m in metas]) for n in self.meta_names}
        else:
            self._meta = {n: np.zeros((0, *s), np.dtype(d)) for n, (d, s) in EPISODE_FIELDS.items()}
        self._segments()

    @property
    def snapshot(self) -> dict[str, Commit]:
        """The commits this reader holds (shards with nothing committed left out)."""
        return {s.id: Commit(s.steps, s.episodes, len(s.sources)) for s in self._shards if s.steps or s.sources}

    def _read_meta(self, group: zarr.Group, shard: _Shard, where: str) -> dict[str, np.ndarray]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ZarrUserWarning)
            names = list(group["meta"].array_keys())
            for name in STEP_FIELDS:
                arr = group[f"data/{name}"]
                if arr.shape[0] < shard.steps:
                    raise StoreError(f"{where}/data/{name}: {arr.shape[0]} rows < committed {shard.steps}")
                shard.arrays[name] = arr
        meta = {}
        for name in names:
            arr = group[f"meta/{name}"]
            if arr.shape[0] < shard.episodes:
                raise StoreError(f"{where}/meta/{name}: {arr.shape[0]} rows < committed {shard.episodes}")
            values = arr[: shard.episodes]
            meta[name] = np.array(values.tolist(), dtype=str) if arr.dtype.kind in "TUO" else values
        if "episode_ends" not in meta or "source" not in meta:
            raise StoreError(f"{where}: meta/episode_ends or meta/source is missing")
        return meta

    def _segments(self) -> None:
        """Runs of kept episodes contiguous in one shard -> global <-> local rows."""
        if len(self._ep_shard) == 0:
            self._seg_g = self._seg_l = self._seg_shard = np.zeros(0, np.int64)
            return
        lengths = self.episode_ends - self.episode_starts
        new = np.ones(len(lengths), bool)
        new[1:] = (self._ep_shard[1:] != self._ep_shard[:-1]) | (
            self._ep_local[1:] != self._ep_local[:-1] + lengths[:-1]
        )
        self._seg_g = self.episode_starts[new]  # (S,) global first row
        self._seg_l = self._ep_local[new]  # (S,) shard-local first row
        self._seg_shard = self._ep_shard[new]  # (S,)

    # ----------------------------------------------------------------- counts and meta
    @property
    def num_episodes(self) -> int:
        return len(self.episode_ends)

    @property
    def num_steps(self) -> int:
        return int(self.episode_ends[-1]) if len(self.episode_ends) else 0

    def __len__(self) -> int:
        return self.num_episodes

    def meta(self, name: str) -> np.ndarray:
        """Per-episode field ``name`` as (E, ...) (``source`` as a str array)."""
        if name not in self._meta:
            raise KeyError(f"{self.store.url}: no per-episode field {name!r}; have {list(self.meta_names)}")
        return self._meta[name]

    def episodes_per_source(self) -> dict[str, int]:
        """Kept episodes of every committed source (0 for sources with none accepted)."""
        counts = dict.fromkeys(self.sources, 0)
        names, n = np.unique(self._meta["source"], return_counts=True) if self.num_episodes else ([], [])
        counts.update({str(k): int(v) for k, v in zip(names, n)})
        return counts

    def episode(self, i: int) -> dict[str, Any]:
        """Episode ``i``: proprio (T, 23), action (T, 23), object_pc (T, P, 3) and its meta."""
        if not -self.num_episodes <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range for {self.num_episodes} episodes")
        i %= self.num_episodes
        a, b = int(self.episode_starts[i]), int(self.episode_ends[i])
        out: dict[str, Any] = {name: self.read(name, a, b) for name in STEP_FIELDS}
        out.update({name: self._meta[name][i] for name in self.meta_names})
        return out

    # ----------------------------------------------------------------- bulk steps
    @property
    def proprio(self) -> np.ndarray:
        """(N, 23) all kept steps, loaded once."""
        return self.low_dim("proprio")

    @property
    def action(self) -> np.ndarray:
        """(N, 23) all kept steps, loaded once."""
        return self.low_dim("action")

    def low_dim(self, name: Literal["proprio", "action"]) -> np.ndarray:
        if name not in self._low_dim:
            self._low_dim[name] = self.read(name, 0, self.num_steps)
        return self._low_dim[name]

    def _pieces(self, start: int, stop: int) -> list[tuple[int, int, int]]:
        """Global rows [start, stop) -> [(shard index, local start, local stop)]."""
        out = []
        seg = int(np.searchsorted(self._seg_g, start, "right")) - 1
        while start < stop:
            seg_end = self._seg_g[seg + 1] if seg + 1 < len(self._seg_g) else self.num_steps
            take = min(stop, int(seg_end)) - start
            local = int(self._seg_l[seg] + start - self._seg_g[seg])
            out.append((int(self._seg_shard[seg]), local, local + take))
            start += take
            seg += 1
        return out

    def _check_name(self, name: str) -> None:
        if name not in STEP_FIELDS:
            raise KeyError(f"no per-step array {name!r}; have {list(STEP_FIELDS)}")

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        """Global step rows [start, stop) of ``name``: (stop - start, ...), straight from zarr."""
        self._check_name(name)
        if not 0 <= start <= stop <= self.num_steps:
            raise IndexError(f"rows [{start}, {stop}) out of range for {self.num_steps} steps")
        parts = [self._shards[s].arrays[name][a:b] for s, a, b in self._pieces(start, stop)]
        if not parts:
            return np.zeros((0, *self._row_shape(name)), np.float32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _row_shape(self, name: str) -> tuple[int, ...]:
        return step_row_shape(name, self.num_points)

    def windows(self, name: str, starts: Sequence[int] | np.ndarray, length: int) -> np.ndarray:
        """(B, length, ...) windows of ``name`` at global rows ``starts`` (B,).

        Each needed chunk is decoded once per call and kept in the reader's LRU
        cache (``cache_bytes``); windows crossing shard runs fall back to ``read``.
        """
        self._check_name(name)
        starts = np.asarray(starts, dtype=np.int64).reshape(-1)
        if length < 1:
            raise ValueError(f"window length must be >= 1, got {length}")
        if len(starts) and (starts.min() < 0 or starts.max() + length > self.num_steps):
            raise IndexError(f"windows of {length} at rows {starts.min()}..{starts.max()} exceed {self.num_steps} rows")
        out = np.empty((len(starts), length, *self._row_shape(name)), np.float32)
        seg = np.searchsorted(self._seg_g, starts, "right") - 1
        seg_last = np.searchsorted(self._seg_g, starts + length - 1, "right") - 1
        for b in np.flatnonzero(seg != seg_last):
            out[b] = self.read(name, int(starts[b]), int(starts[b]) + length)
        inside = np.flatnonzero(seg == seg_last)
        local = self._seg_l[seg[inside]] + starts[inside] - self._seg_g[seg[inside]]
        shard_of = self._seg_shard[seg[inside]]
        for shard in np.unique(shard_of):
            mine = shard_of == shard
            self._gather(int(shard), name, inside[mine], local[mine], length, out)
        return out

    def _gather(
        self, shard: int, name: str, rows: np.ndarray, local: np.ndarray, length: int, out: np.ndarray
    ) -> None:
        """out[rows] := windows of ``length`` at shard-local ``local`` rows of one shard."""
        arr = self._shards[shard].arrays[name]
        size = arr.chunks[0]
        first, last = local // size, (local + length - 1) // size
        needed = np.unique(np.concatenate([np.arange(a, b + 1) for a, b in zip(first, last)]))
        chunks = self._chunks(shard, name, needed)
        for b, a in zip(rows, local):
            pos = int(a)
            while pos < a + length:
                k = pos // size
                take = min(a + length, (k + 1) * size) - pos
                out[b, pos - a : pos - a + take] = chunks[k][pos - k * size : pos - k * size + take]
                pos += take

    def _chunks(self, shard: int, name: str, needed: np.ndarray) -> dict[int, np.ndarray]:
        """Decoded chunks ``needed`` of one shard array (committed rows only)."""
        arr, limit = self._shards[shard].arrays[name], self._shards[shard].steps
        size = arr.chunks[0]
        got: dict[int, np.ndarray] = {}
        missing = []
        for k in needed.tolist():
            hit = self._cache.get((shard, name, k))
            if hit is None:
                missing.append(k)
            else:
                self._cache.move_to_end((shard, name, k))
                got[k] = hit
        # contiguous runs of missing chunks: one zarr read each
        runs = np.split(np.array(missing, np.int64), np.flatnonzero(np.diff(missing) != 1) + 1) if missing else []
        for run in runs:
            block = arr[int(run[0]) * size : min((int(run[-1]) + 1) * size, limit)]
            for k in run.tolist():
                chunk = block[(k - int(run[0])) * size : (k - int(run[0]) + 1) * size]
                if len(run) > 1:  # own memory, so that evicting it frees it
                    chunk = chunk.copy()
                got[k] = chunk
                self._remember((shard, name, k), chunk)
        return got

    def _remember(self, key: tuple[int, str, int], chunk: np.ndarray) -> None:
        if chunk.nbytes > self._cache_bytes:
            return
        self._cache[key] = chunk
        self._cached += chunk.nbytes
        while self._cached > self._cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._cached -= old.nbytes


def _pinned(attrs: dict[str, Any], commit: Commit, where: str) -> dict[str, Any]:
    """A shard's commit record cut back to an earlier ``commit`` of it."""
    if any(now < then for now, then in zip(Commit.of(attrs), commit)):
        raise StoreError(f"{where}: fewer commits ({Commit.of(attrs)}) than a snapshot of it held ({commit})")
    return {
        "committed_steps": commit.steps,
        "committed_episodes": commit.episodes,
        "committed_sources": attrs["committed_sources"][: commit.sources],
    }

