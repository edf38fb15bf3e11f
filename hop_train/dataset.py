"""Training windows over the trajectory store (store != dataset != sampler).

Three layers, each with one job:

- ``StoreArrays``: the data. Opens a store (``hop_data.store``), keeps the
  low-dimensional arrays in RAM, already scaled to [-1, 1] by the joint limits
  (``proprio (N, 23)``, ``action (N, 23)``), and the object clouds either in RAM
  (``object_pc (N, P, 3)``, when they fit ``pc_ram_bytes``) or behind the
  store's chunk-cached reader (one reader per process: DataLoader workers open
  their own). Checks every array for NaN/inf once, naming store, episode,
  source and array.
- ``WindowDataset``: a precomputed window index over some episodes (one window
  ending at every step of every episode) and ``__getitems__``, which builds a
  whole batch in one vectorised gather (or one chunk-grouped store read).
- ``WindowSampler``: the epoch order (uniform shuffle, or chunk-local shuffle
  for stores larger than RAM), split across DDP ranks like
  ``DistributedSampler`` (a subclass, so Lightning leaves it in place).

A window of ``T = context`` steps ends at step ``e`` of an episode that starts
at row ``s``. Its rows are ``e - T + 1 .. e``; rows before ``s`` do not exist:
the window is LEFT-padded (``mask`` False there; padded steps repeat the
episode's first step, which the model ignores). Windows never cross episodes.

A batch (``collate_windows`` passes it through) is a dict of tensors::

    proprio (B, T, 23) float32  scaled to [-1, 1] (+ Gaussian noise when training)
    points  (B, T, P, 3) float32  metres, robot base frame
    action  (B, T, 23) float32  targets, scaled to [-1, 1]
    mask    (B, T) bool          True on valid steps
    index   (B,) int64           window index in the dataset
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from hop_data.store import DEFAULT_CHUNK_BYTES, Commit, StoreError, StoreReader, TrajectoryStore
from hop_robot.embodiment.spec import CONTEXT, SCALER

__all__ = [
    "DatasetError",
    "Split",
    "StoreArrays",
    "WindowDataset",
    "WindowSampler",
    "chunk_block_windows",
    "collate_windows",
    "scale_joints",
    "split_by_source",
    "window_index",
]

_BLOCK_BYTES = 256 * 2**20  # object_pc rows read (and NaN-checked) per block when loading into RAM


class DatasetError(ValueError):
    """The store cannot be trained on as it is (empty, corrupt, too few sources)."""


def scale_joints(q: np.ndarray) -> np.ndarray:
    """Radians (..., 23) -> [-1, 1] by the joint limits, float32 (``spec.SCALER`` in float32)."""
    return SCALER.scale(np.asarray(q, np.float32))


# ----------------------------------------------------------------------------- index and split
def window_index(
    episode_starts: np.ndarray, episode_ends: np.ndarray, episodes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One window per step of each of ``episodes``: ``(ends (W,) int64 global row of
    each window's last step, episode (W,) int64)``, in row order."""
    episodes = np.asarray(episodes, np.int64)
    starts = np.asarray(episode_starts, np.int64)[episodes]
    lengths = np.asarray(episode_ends, np.int64)[episodes] - starts
    total = int(lengths.sum())
    episode = np.repeat(episodes, lengths)
    # row = episode start + position inside the episode
    offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + offsets, episode


@dataclass(frozen=True)
class Split:
    """Episodes (indices into the store's reader) and sources of each side."""

    train_episodes: np.ndarray
    val_episodes: np.ndarray
    train_sources: tuple[str, ...]
    val_sources: tuple[str, ...]


def split_by_source(
    episode_sources: Sequence[str] | np.ndarray, val_fraction: float, seed: int = 0, keep: Split | None = None
) -> Split:
    """Split episodes into train / validation BY SOURCE VIDEO: all attempts
    retargeted from one video land on the same side.

    Sources (those with episodes) are ranked by ``blake2b(f"{seed}:{source}")``
    and the first ``round(val_fraction * n)`` go to validation (at least one
    when ``val_fraction > 0``, never all). Deterministic, independent of the
    store's order; a source keeps its rank when others are added.

    ``keep``, the split of a store that has grown since: its sources stay on
    their side (a model never trains on a video it was validated on, or the
    reverse), and each new source goes to validation when its rank, read as a
    fraction of all ranks, is below ``val_fraction``: a rule of its own, so a
    source's side does not depend on what else was committed meanwhile."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    episode_sources = np.asarray(episode_sources).astype(str)
    sources = sorted(set(episode_sources.tolist()))

    def rank(source: str) -> bytes:
        return hashlib.blake2b(f"{seed}:{source}".encode(), digest_size=16).digest()

    if keep is not None:
        kept = set(keep.train_sources) | set(keep.val_sources)
        new = [s for s in sources if s not in kept and int.from_bytes(rank(s), "big") < val_fraction * 2**128]
        val_sources = tuple(sorted({*keep.val_sources, *new}))
    else:
        n_val = 0
        if val_fraction > 0:
            if len(sources) < 2:
                raise DatasetError(
                    f"splitting by source video needs at least 2 sources with episodes, the store has {len(sources)}; "
                    "add videos or set val_fraction to 0 (no validation)"
                )
            n_val = min(max(1, round(val_fraction * len(sources))), len(sources) - 1)
        val_sources = tuple(sorted(sorted(sources, key=rank)[:n_val]))
    is_val = np.isin(episode_sources, np.array(val_sources, dtype=str))
    return Split(
        train_episodes=np.flatnonzero(~is_val),
        val_episodes=np.flatnonzero(is_val),
        train_sources=tuple(s for s in sources if s not in set(val_sources)),
        val_sources=val_sources,
    )


# ----------------------------------------------------------------------------- the data
class StoreArrays:
    """A store opened for training: low-dim arrays in RAM (scaled), clouds in RAM
    or chunk-cached, every array checked for NaN/inf.

    Args:
        url: store path or fsspec URL. Refused (``hop_data.store`` errors) if it
            is not a store or is for another embodiment / format version.
        pc_ram_bytes: load all ``object_pc`` into RAM when it takes at most this
            many bytes (N * P * 3 * 4); else read windows through the reader's
            chunk cache. 0: always stream. DataLoader workers started by fork
            share the RAM copy; each DDP rank holds its own.
        cache_bytes: the chunk cache of each process's reader (streaming only).
        storage_options: fsspec options for remote URLs.
        check_finite: scan for NaN/inf (RAM arrays at load; streamed clouds as
            each batch is read).
        snapshot: the commits to read (``TrajectoryStore.commits()``, e.g. one
            every DDP rank agreed on); None: everything committed now.

    A store the service still appends to is read as a snapshot of its commits
    (``snapshot``): only committed episodes, never a partial one, and every
    process (DataLoader workers reopen the store) sees the same episodes at the
    same rows. ``grown()`` says whether later commits exist; reopening then
    picks them up (``HopDataModule(refresh_each_epoch=True)`` does, each epoch).
    """

    def __init__(
        self,
        url: str | os.PathLike,
        *,
        pc_ram_bytes: int = 8 * 2**30,
        cache_bytes: int = 512 * 2**20,
        storage_options: Mapping[str, Any] | None = None,
        check_finite: bool = True,
        snapshot: Mapping[str, Commit] | None = None,
    ) -> None:
        self.storage_options = dict(storage_options or {})
        self.cache_bytes = int(cache_bytes)
        self.check_finite = check_finite
        store = TrajectoryStore.open(url, "r", storage_options=self.storage_options)  # refuses a wrong embodiment
        self.url = store.url
        reader = store.reader(cache_bytes=self.cache_bytes, snapshot=snapshot)
        self.snapshot = reader.snapshot  # what every reopening (a worker's reader) reads again
        self.num_points = store.num_points
        self.num_steps = reader.num_steps
        if reader.num_episodes == 0:
            raise DatasetError(
                f"{self.url}: the store has no committed episodes ({len(reader.sources)} source(s) committed, "
                "all with 0 accepted attempts); nothing to train on"
            )
        self.episode_starts = reader.episode_starts.astype(np.int64)
        self.episode_ends = reader.episode_ends.astype(np.int64)
        self.episode_sources = reader.meta("source").astype(str)
        if check_finite:
            for name in reader.meta_names:
                values = reader.meta(name)
                if values.dtype.kind == "f":
                    self._check_rows(f"meta/{name}", values, 0, per_episode=True)
        self.proprio = self._low_dim(reader, "proprio")  # (N, 23) scaled
        self.action = self._low_dim(reader, "action")  # (N, 23) scaled
        pc_bytes = self.num_steps * self.num_points * 3 * 4
        self.in_ram = pc_bytes <= pc_ram_bytes
        self.object_pc: np.ndarray | None = self._load_points(reader) if self.in_ram else None
        self._reader: StoreReader | None = None if self.in_ram else reader
        self._reader_pid = os.getpid()

    # -------------------------------------------------------------- loading
    def _low_dim(self, reader: StoreReader, name: str) -> np.ndarray:
        raw = reader.read(name, 0, self.num_steps)
        if self.check_finite:
            self._check_rows(name, raw, 0)
        return scale_joints(raw)

    def _load_points(self, reader: StoreReader) -> np.ndarray:
        out = np.empty((self.num_steps, self.num_points, 3), np.float32)
        block = max(1, _BLOCK_BYTES // (self.num_points * 12))
        for a in range(0, self.num_steps, block):
            b = min(a + block, self.num_steps)
            out[a:b] = reader.read("object_pc", a, b)
            if self.check_finite:
                self._check_rows("object_pc", out[a:b], a)
        return out

    def _check_rows(self, name: str, values: np.ndarray, first_row: int, per_episode: bool = False) -> None:
        finite = np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        if finite.all():
            return
        bad = int(np.flatnonzero(~finite)[0])
        value = values.reshape(len(values), -1)[bad][~np.isfinite(values.reshape(len(values), -1)[bad])][0]
        if per_episode:
            raise DatasetError(
                f"{self.url}: array {name!r} has a non-finite value ({value}) for episode {bad} "
                f"(source {self.episode_sources[bad]!r}); the store is corrupt"
            )
        self.raise_bad_row(name, first_row + bad, value)

    def raise_bad_row(self, name: str, row: int, value: float) -> None:
        episode = int(np.searchsorted(self.episode_ends, row, side="right"))
        raise DatasetError(
            f"{self.url}: array {name!r} has a non-finite value ({value}) in episode {episode} "
            f"(source {self.episode_sources[episode]!r}) at step {row - int(self.episode_starts[episode])} "
            f"(global row {row}); the store is corrupt: re-run that source or drop it"
        )

    # -------------------------------------------------------------- per-process reader
    def reader(self) -> StoreReader:
        """This process's reader (zarr handles and chunk caches are not shared
        across fork: a worker opens its own on first use), pinned to the
        snapshot: on a growing store, rows would shift otherwise."""
        if self._reader is None or self._reader_pid != os.getpid():
            try:
                self._reader = self._open().reader(cache_bytes=self.cache_bytes, snapshot=self.snapshot)
            except StoreError as exc:  # a commit of the snapshot is gone: the store was replaced
                raise DatasetError(f"{self.url}: the store shrank since it was opened ({exc})") from None
            self._reader_pid = os.getpid()
        return self._reader

    def _open(self) -> TrajectoryStore:
        return TrajectoryStore.open(self.url, "r", storage_options=self.storage_options)

    def commits(self) -> dict[str, Commit]:
        """The store's commits now (compare with ``snapshot``; pass to a new ``StoreArrays``)."""
        return self._open().commits()

    def grown(self, commits: Mapping[str, Commit] | None = None) -> bool:
        """Whether the store (or ``commits``, read from it) holds commits this snapshot does not."""
        return dict(self.commits() if commits is None else commits) != self.snapshot

    def __getstate__(self) -> dict[str, Any]:  # spawn-started workers: reopen, do not pickle zarr handles
        state = dict(self.__dict__)
        state["_reader"] = None
        return state

    def points_windows(self, rows: np.ndarray) -> np.ndarray:
        """Clouds at ``rows (B, T)`` (each row of a window within one episode,
        ascending) -> ``(B, T, P, 3)``."""
        if self.object_pc is not None:
            return self.object_pc[rows]
        b, t = rows.shape
        if self.num_steps < t:  # a store shorter than one window: read it whole
            return self.reader().read("object_pc", 0, self.num_steps)[rows]
        # One contiguous read of T rows per window that contains all its rows,
        # grouped by chunk inside the reader, then the (edge-padded) rows taken.
        lo = np.clip(rows[:, -1] - t + 1, 0, self.num_steps - t)
        raw = self.reader().windows("object_pc", lo, t)
        points = raw[np.arange(b)[:, None], rows - lo[:, None]]
        if self.check_finite:
            finite = np.isfinite(points.reshape(b, t, -1)).all(axis=2)
            if not finite.all():
                i, j = np.argwhere(~finite)[0]
                cloud = points[i, j].reshape(-1)
                self.raise_bad_row("object_pc", int(rows[i, j]), float(cloud[~np.isfinite(cloud)][0]))
        return points


# ----------------------------------------------------------------------------- the dataset
class WindowDataset(Dataset):
    """Windows of ``context`` steps ending at every step of ``episodes``.

    Args:
        arrays: the opened store.
        episodes: episode indices (e.g. ``Split.train_episodes``); None = all.
        context: window length T (the policy's context).
        proprio_noise: std of Gaussian noise added to the SCALED proprioception
            (paper: 0.1 during pretraining; 0 for validation).
        noise_seed: seeds the noise stream of each process together with its
            DataLoader worker id and ``torch.initial_seed()``.
    """

    def __init__(
        self,
        arrays: StoreArrays,
        episodes: np.ndarray | Sequence[int] | None = None,
        *,
        context: int = CONTEXT,
        proprio_noise: float = 0.0,
        noise_seed: int = 0,
    ) -> None:
        if context < 1:
            raise ValueError(f"context must be >= 1, got {context}")
        if proprio_noise < 0:
            raise ValueError(f"proprio_noise must be >= 0, got {proprio_noise}")
        self.arrays = arrays
        self.episodes = np.arange(len(arrays.episode_ends)) if episodes is None else np.asarray(episodes, np.int64)
        self.context = int(context)
        self.proprio_noise = float(proprio_noise)
        self.noise_seed = int(noise_seed)
        self.ends, self.episode = window_index(arrays.episode_starts, arrays.episode_ends, self.episodes)
        self._rng: np.random.Generator | None = None
        self._rng_pid = -1

    def __len__(self) -> int:
        return len(self.ends)

    def rows(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Store rows ``(B, T)`` (left-padded by repeating the episode's first
        row) and ``mask (B, T)`` of windows ``index (B,)``."""
        ends = self.ends[index]
        first = self.arrays.episode_starts[self.episode[index]]
        rows = ends[:, None] + np.arange(1 - self.context, 1, dtype=np.int64)
        mask = rows >= first[:, None]
        return np.maximum(rows, first[:, None]), mask

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """A whole batch at once (torch's DataLoader calls this with a batch's indices)."""
        index = np.asarray(indices, np.int64)
        if len(index) and (index.min() < -len(self) or index.max() >= len(self)):
            raise IndexError(f"window index out of range for {len(self)} windows")
        index %= max(len(self), 1)
        rows, mask = self.rows(index)
        proprio = self.arrays.proprio[rows]  # (B, T, 23), a new array
        if self.proprio_noise > 0:
            proprio += self.proprio_noise * self._noise_rng().standard_normal(proprio.shape, dtype=np.float32)
        return {
            "proprio": torch.from_numpy(proprio),
            "points": torch.from_numpy(self.arrays.points_windows(rows)),
            "action": torch.from_numpy(self.arrays.action[rows]),
            "mask": torch.from_numpy(mask),
            "index": torch.from_numpy(index),
        }

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        """One window, unbatched: ``proprio (T, 23)``, ``points (T, P, 3)``, ..."""
        return {k: v[0] for k, v in self.__getitems__([int(i)]).items()}

    def _noise_rng(self) -> np.random.Generator:
        if self._rng is None or self._rng_pid != os.getpid():
            info = torch.utils.data.get_worker_info()
            worker = info.id if info is not None else -1
            self._rng = np.random.default_rng([self.noise_seed, worker + 1, torch.initial_seed() % 2**63])
            self._rng_pid = os.getpid()
        return self._rng

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_rng"] = None
        return state


def collate_windows(batch: Any) -> dict[str, torch.Tensor]:
    """``collate_fn`` for ``WindowDataset``: its ``__getitems__`` already returns
    the batch; a list of single windows (other fetch paths) is stacked."""
    if isinstance(batch, Mapping):
        return dict(batch)
    return {k: torch.stack([item[k] for item in batch]) for k in batch[0]}


# ----------------------------------------------------------------------------- the sampler
class WindowSampler(DistributedSampler):
    """Epoch order over a ``WindowDataset``, split across ``num_replicas`` ranks.

    Orders (``rng = default_rng((seed, epoch))``; ``set_epoch`` as usual):

    - ``shuffle=False``: window order (row order).
    - ``shuffle=True, block_windows=0``: a uniform permutation.
    - ``shuffle=True, block_windows=k``: chunk-local. Windows (in row order) are
      cut into blocks of k consecutive windows, the blocks are permuted, and
      windows are shuffled within each run of ``group_blocks`` blocks. With k =
      the rows of one stored chunk, a batch touches at most ``group_blocks``
      chunks, so a chunk cache of that size serves stores far larger than RAM.

    ``fixed=True`` keeps epoch 0's order whatever ``set_epoch`` says (a
    validation order: with ``limit_val_batches`` the same random subset each time).

    Then, exactly like ``torch.utils.data.DistributedSampler``: padded (repeating
    the first indices) or cut (``drop_last``) to a multiple of ``num_replicas``,
    and rank r takes every ``num_replicas``-th index from r. Being a
    ``DistributedSampler``, Lightning does not replace it under DDP.
    """

    def __init__(
        self,
        dataset: WindowDataset,
        *,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
        block_windows: int = 0,
        group_blocks: int = 1,
        fixed: bool = False,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
        self.fixed = fixed
        if block_windows < 0 or group_blocks < 1:
            raise ValueError(f"block_windows must be >= 0 and group_blocks >= 1, got {block_windows}, {group_blocks}")
        self.block_windows = int(block_windows)
        self.group_blocks = int(group_blocks)

    def set_epoch(self, epoch: int) -> None:
        if not self.fixed:
            super().set_epoch(epoch)

    def order(self) -> np.ndarray:
        """This epoch's order of all windows (before the split across ranks)."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        rng = np.random.default_rng((self.seed, self.epoch))
        if self.block_windows == 0 or self.block_windows >= n:
            return rng.permutation(n)
        block_of = np.arange(n) // self.block_windows
        blocks = rng.permutation(int(block_of[-1]) + 1)
        position = np.empty_like(blocks)
        position[blocks] = np.arange(len(blocks))  # where each block lands
        group = position[block_of] // self.group_blocks
        return np.lexsort((rng.random(n), group)).astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        indices = self.order()
        if not self.drop_last:
            pad = self.total_size - len(indices)
            if pad > 0:
                indices = np.concatenate([indices, np.resize(indices, pad)])
        else:
            indices = indices[: self.total_size]
        return iter(indices[self.rank : self.total_size : self.num_replicas].tolist())


def chunk_block_windows(num_points: int) -> int:
    """Rows of one stored object_pc chunk (``hop_data.store`` chunks ~2 MiB along time)."""
    return max(1, DEFAULT_CHUNK_BYTES // (num_points * 3 * 4))

