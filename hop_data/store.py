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
name); a source committed by two shards is kept from the first.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import socket
import threading
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

import numpy as np
import zarr
import zarr.codecs
import zarr.storage
from zarr.core.sync import sync
from zarr.errors import ZarrUserWarning

from hop_robot.embodiment.spec import CONTROL_HZ, EMBODIMENT_NAME, JOINT_NAMES, NUM_JOINTS, NUM_POINTS

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
_RESERVED = set(STEP_FIELDS) | set(EPISODE_FIELDS) | {"episode_ends"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class StoreError(ValueError):
    """A path that is not a usable trajectory store, or a store-level misuse."""


class IncompatibleStoreError(StoreError):
    """A trajectory store written for another format version or embodiment."""


class StoreLockedError(StoreError):
    """Another live writer holds the shard."""


@dataclass
class Episode:
    """One retargeted attempt. T steps at CONTROL_HZ, P = the store's num_points.

    ``extra`` holds further per-episode values (scalars, strings or fixed-shape
    arrays); every episode of a shard must carry the same extra names.
    """

    proprio: np.ndarray  # (T, 23) joint angles reached in simulation (rad)
    action: np.ndarray  # (T, 23) absolute joint targets (rad)
    object_pc: np.ndarray  # (T, P, 3) object points in the robot base frame (m)
    seed: int  # attempt seed
    table_pose: np.ndarray  # (7,) position (m) + quaternion w, x, y, z
    init_qpos: np.ndarray  # (23,) initial joint state (rad)
    max_error: float  # max keypoint error over the episode (m)
    mean_error: float  # mean keypoint error (m)
    collision: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        return int(np.shape(self.proprio)[0])


@dataclass(frozen=True)
class CommitResult:
    """What ``append_episodes`` did: ``skipped`` when the source was already
    committed somewhere in the store (nothing written)."""

    source: str
    skipped: bool
    episodes: int
    steps: int


# --------------------------------------------------------------------------- opening


def _resolve(
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


def _open_group(zstore: zarr.abc.store.Store, path: str, mode: str, where: str) -> zarr.Group:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ZarrUserWarning)
            return zarr.open_group(zstore, path=path, mode=mode, zarr_format=3)
    except Exception as e:  # zarr raises many kinds here; callers get one, naming the place
        raise StoreError(f"{where}: not a readable Zarr v3 group ({type(e).__name__}: {e})") from e


def _root_attrs(num_points: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "embodiment": EMBODIMENT_NAME,
        "joint_names": list(JOINT_NAMES),
        "control_hz": CONTROL_HZ,
        "num_points": int(num_points),
    }


def _check_root(attrs: Mapping[str, Any], where: str) -> None:
    """Refuse a group that is not a HOP store, or one for another version/embodiment."""
    if attrs.get("format") != FORMAT:
        raise StoreError(
            f"{where} is a Zarr group but not a HOP trajectory store: root attribute "
            f"'format' is {attrs.get('format')!r}, expected {FORMAT!r}"
        )
    if attrs.get("version") != VERSION:
        raise IncompatibleStoreError(
            f"{where}: store format version {attrs.get('version')!r} found, this code reads version {VERSION}"
        )
    if attrs.get("embodiment") != EMBODIMENT_NAME:
        raise IncompatibleStoreError(
            f"{where}: store is for embodiment {attrs.get('embodiment')!r}, expected embodiment {EMBODIMENT_NAME!r}"
        )
    if tuple(attrs.get("joint_names") or ()) != JOINT_NAMES:
        raise IncompatibleStoreError(
            f"{where}: store joint names {attrs.get('joint_names')} differ from "
            f"{EMBODIMENT_NAME!r}'s {list(JOINT_NAMES)}"
        )
    if attrs.get("control_hz") != CONTROL_HZ:
        raise IncompatibleStoreError(
            f"{where}: store control rate {attrs.get('control_hz')!r} Hz found, expected {CONTROL_HZ} Hz"
        )
    num_points = attrs.get("num_points")
    if not isinstance(num_points, int) or num_points < 1:
        raise StoreError(f"{where}: root attribute 'num_points' must be a positive int, got {num_points!r}")


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
        zstore, local, where = _resolve(url, False, storage_options)
        if local is not None and local.is_file():
            raise StoreError(f"{where} is a file, not a store directory")
        if local is not None and local.is_dir() and any(local.iterdir()) and not (local / "zarr.json").exists():
            raise StoreError(f"{where}: cannot create a store in a non-empty directory that is not one")
        try:
            exists = _has_root(zstore)
        except Exception as e:
            raise StoreError(f"{where}: cannot access ({type(e).__name__}: {e})") from e
        if exists:
            if not exist_ok:
                raise StoreError(f"{where} already exists (open it, or pass exist_ok=True)")
            return cls.open(url, mode="a", num_points=int(num_points), storage_options=storage_options)
        root = zarr.create_group(zstore, zarr_format=3, attributes=_root_attrs(int(num_points)))
        root.create_group("shards")
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
        zstore, local, where = _resolve(url, mode == "r", storage_options)
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
        elif not _has_root(zstore):
            if mode == "a":
                return cls.create(url, num_points or DEFAULT_NUM_POINTS, storage_options=storage_options)
            raise StoreError(f"{where}: no trajectory store there (no zarr.json)")
        root = _open_group(zstore, "", "r" if mode == "r" else "r+", where)
        _check_root(root.attrs.asdict(), where)
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
        if "shards" not in self._root:
            return []
        with warnings.catch_warnings():  # lock files and crash debris are not zarr nodes
            warnings.simplefilter("ignore", ZarrUserWarning)
            return sorted(self._root["shards"].group_keys())

    def shard_attrs(self, writer_id: str) -> dict[str, Any]:
        """The committed counts of one shard, as last committed."""
        group = _open_group(self._zstore, f"shards/{writer_id}", "r", f"{self.url}/shards/{writer_id}")
        return _commit_attrs(group, f"{self.url}/shards/{writer_id}")

    def committed_sources(self) -> dict[str, str]:
        """source -> id of the shard whose commit readers keep (the first by shard name)."""
        kept: dict[str, str] = {}
        for shard in self.shard_ids():
            for source in self.shard_attrs(shard)["committed_sources"]:
                kept.setdefault(source, shard)
        return kept

    def is_committed(self, source: str) -> bool:
        return source in self.committed_sources()

    # ----------------------------------------------------------------- access
    def writer(
        self, writer_id: str, extra_fields: Mapping[str, tuple[Any, tuple[int, ...]]] | None = None
    ) -> ShardWriter:
        """The writer of shard ``writer_id`` (created, or repaired and resumed)."""
        return ShardWriter(self, writer_id, extra_fields)

    def reader(self, cache_bytes: int = 512 * 2**20) -> StoreReader:
        """A snapshot of everything committed now."""
        return StoreReader(self, cache_bytes=cache_bytes)

    def info(self) -> dict[str, Any]:
        """Counts and facts for ``hop-data info`` (JSON-ready)."""
        reader = self.reader(cache_bytes=0)
        shards = {
            s.id: {"episodes": s.episodes, "steps": s.steps, "sources": len(s.sources)} for s in reader._shards
        }
        counts = reader.episodes_per_source()
        return {
            "url": self.url,
            "format": self.attrs["format"],
            "version": self.attrs["version"],
            "embodiment": self.attrs["embodiment"],
            "joint_names": list(self.attrs["joint_names"]),
            "control_hz": self.attrs["control_hz"],
            "num_points": self.num_points,
            "episodes": reader.num_episodes,
            "steps": reader.num_steps,
            "sources": len(reader.sources),
            "sources_without_episodes": sum(1 for n in counts.values() if n == 0),
            "duplicate_episodes_ignored": reader.num_ignored_episodes,
            "meta_fields": list(reader.meta_names),
            "shards": shards,
            "bytes": _size_bytes(self),
        }


def store_info(url: str | os.PathLike, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``hop-data info STORE --json``: episodes, steps, sources, embodiment,
    joint_names, control_hz, num_points, shards (per-shard counts), bytes, ..."""
    return TrajectoryStore.open(url, "r", storage_options=storage_options).info()


def _has_root(zstore: zarr.abc.store.Store) -> bool:
    return bool(sync(zstore.exists("zarr.json")))


def _size_bytes(store: TrajectoryStore) -> int | None:
    if store.local_path is not None:
        return sum(p.stat().st_size for p in store.local_path.rglob("*") if p.is_file())
    zstore = store._zstore
    if isinstance(zstore, zarr.storage.FsspecStore):
        fs = getattr(zstore.fs, "sync_fs", zstore.fs)  # zarr wraps sync filesystems
        try:
            return int(fs.du(zstore.path))
        except Exception:  # size is informative only; some filesystems cannot du
            return None
    return None


def _commit_attrs(group: zarr.Group, where: str) -> dict[str, Any]:
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


# --------------------------------------------------------------------------- locking

_LIVE: set[tuple[str, str]] = set()  # (store, writer id) held by writers in this process
_LIVE_GUARD = threading.Lock()


class _ShardLock:
    """Exclusive ownership of one shard.

    Local filesystems: ``flock`` on ``shards/<id>/writer.lock``; the kernel
    drops it when the holder dies, so a SIGKILLed writer leaves no stale lock
    (the file itself stays, holding the last owner's pid for diagnostics).
    Every store: a per-process registry, so one process cannot open a shard twice.
    """

    def __init__(self, key: tuple[str, str], lock_file: Path | None):
        self._key = key
        self._fd: int | None = None
        with _LIVE_GUARD:
            if key in _LIVE:
                raise StoreLockedError(f"{key[0]}: shard {key[1]!r} already has a live writer in this process")
            _LIVE.add(key)
        if lock_file is None:
            return
        try:
            lock_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            self.release()
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            self.release()
            raise StoreLockedError(
                f"{key[0]}: shard {key[1]!r} is being written by another live writer ({holder}); lock {lock_file}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        with _LIVE_GUARD:
            _LIVE.discard(self._key)


# --------------------------------------------------------------------------- validation


def _float_array(value: Any, name: str, shape: tuple[int | None, ...], where: str) -> np.ndarray:
    """``value`` as float32 of ``shape`` (None = any length >= 1), finite."""
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {name} is not numeric ({e})") from None
    want = "(" + ", ".join("T" if s is None else str(s) for s in shape) + ")"
    if arr.ndim != len(shape) or any(s is not None and a != s for a, s in zip(arr.shape, shape)):
        raise ValueError(f"{where}: {name} must be {want}, got {arr.shape}")
    if any(s is None and a < 1 for a, s in zip(arr.shape, shape)):
        raise ValueError(f"{where}: {name} must have at least one step, got {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = np.argwhere(bad)[0].tolist()
        raise ValueError(f"{where}: {name} contains NaN or inf (first at index {first})")
    return arr


def _scalar(value: Any, name: str, kind: type, where: str) -> Any:
    arr = np.asarray(value)
    if arr.shape != ():
        raise ValueError(f"{where}: {name} must be a scalar, got shape {arr.shape}")
    if kind is int and not (np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_):
        raise ValueError(f"{where}: {name} must be an int, got {value!r}")
    if kind is bool and arr.dtype != np.bool_:
        raise ValueError(f"{where}: {name} must be a bool, got {value!r}")
    if kind is float:
        number = float(_float_array(value, name, (), where))
        if number < 0:
            raise ValueError(f"{where}: {name} is a distance and must be >= 0, got {number}")
        return number
    return arr.item()


def _check_episode(ep: Episode, num_points: int, where: str) -> dict[str, Any]:
    """Episode -> validated arrays/values for every fixed field (not ``source``)."""
    if not isinstance(ep, Episode):
        raise TypeError(f"{where}: expected an Episode, got {type(ep).__name__}")
    proprio = _float_array(ep.proprio, "proprio", (None, NUM_JOINTS), where)
    steps = proprio.shape[0]
    action = _float_array(ep.action, "action", (steps, NUM_JOINTS), where)
    object_pc = _float_array(ep.object_pc, "object_pc", (steps, num_points, 3), where)
    table_pose = _float_array(ep.table_pose, "table_pose", (7,), where)
    if abs(float(np.linalg.norm(table_pose[3:])) - 1.0) > 1e-3:
        raise ValueError(f"{where}: table_pose[3:] must be a unit quaternion (w, x, y, z), got {table_pose[3:]}")
    return {
        "proprio": proprio,
        "action": action,
        "object_pc": object_pc,
        "seed": _scalar(ep.seed, "seed", int, where),
        "table_pose": table_pose,
        "init_qpos": _float_array(ep.init_qpos, "init_qpos", (NUM_JOINTS,), where),
        "max_error": _scalar(ep.max_error, "max_error", float, where),
        "mean_error": _scalar(ep.mean_error, "mean_error", float, where),
        "collision": _scalar(ep.collision, "collision", bool, where),
    }


def _extra_spec(value: Any, name: str, where: str) -> tuple[np.dtype, tuple[int, ...]]:
    """(dtype, row shape) that an extra per-episode value declares."""
    if not _FIELD.match(name) or name in _RESERVED:
        raise ValueError(f"{where}: extra field name {name!r} is reserved or not an identifier")
    arr = np.asarray(value)
    if arr.dtype.kind == "U":
        if arr.shape != ():
            raise ValueError(f"{where}: extra string field {name!r} must be a single string")
        return np.dtype(str), ()
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{where}: extra field {name!r} must be numeric, bool or str, got dtype {arr.dtype}")
    return arr.dtype, arr.shape


def _spec_of(arr: zarr.Array) -> tuple[np.dtype, tuple[int, ...]]:
    """(dtype, row shape) of a per-episode array; any string dtype reads as np.dtype(str)."""
    return (np.dtype(str) if arr.dtype.kind in "UTO" else np.dtype(arr.dtype)), tuple(arr.shape[1:])


def _check_extra(value: Any, name: str, dtype: np.dtype, shape: tuple[int, ...], where: str) -> Any:
    """``value`` checked against the shard's (dtype, row shape) for extra field ``name``."""
    got_dtype, got_shape = _extra_spec(value, name, where)
    if got_shape != shape:
        raise ValueError(f"{where}: extra field {name!r} must have shape {shape}, got {got_shape}")
    if (got_dtype.kind == "U") != (dtype.kind == "U") or not np.can_cast(got_dtype, dtype, "same_kind"):
        want = "str" if dtype.kind == "U" else str(dtype)
        raise ValueError(f"{where}: extra field {name!r} must be {want} (as the shard stores it), got {value!r}")
    if dtype.kind == "U":
        return str(value)
    arr = np.asarray(value, dtype=dtype)
    if dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{where}: extra field {name!r} contains NaN or inf")
    return arr


# --------------------------------------------------------------------------- writing


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
        if not isinstance(writer_id, str) or not _NAME.match(writer_id):
            raise ValueError(f"writer_id must match {_NAME.pattern}, got {writer_id!r}")
        self.store = store
        self.writer_id = writer_id
        self.where = f"{store.url}/shards/{writer_id}"
        lock_file = None if store.local_path is None else store.local_path / "shards" / writer_id / "writer.lock"
        self._lock = _ShardLock((store.url, writer_id), lock_file)
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
        path = f"shards/{self.writer_id}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ZarrUserWarning)
            exists = path in root and isinstance(root[path], zarr.Group)
        if exists:
            self._group = _open_group(self.store._zstore, path, "r+", self.where)
        else:  # born with its commit attributes: one metadata write
            self._group = root.create_group(
                path, attributes={"committed_steps": 0, "committed_episodes": 0, "committed_sources": []}
            )
        self._attrs = _commit_attrs(self._group, self.where)
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
        for name in sorted(present - _RESERVED):
            self._meta[name] = self._group[f"meta/{name}"]
        self._explicit = bool(extra_fields)  # declared now: episodes must match
        if extra_fields:
            self._declare({k: (np.dtype(d), tuple(shape)) for k, (d, shape) in extra_fields.items()})
        self._cut_back()

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
            rows = max(1, DEFAULT_CHUNK_BYTES // row_bytes)
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
            if not _FIELD.match(name) or name in _RESERVED:
                raise ValueError(f"{self.where}: extra field name {name!r} is reserved or not an identifier")
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
        return {k: _spec_of(a) for k, a in self._meta.items() if k not in _RESERVED}

    def _cut_back(self) -> None:
        """Drop rows past the committed counts (a killed writer's leftovers)."""
        counts = [(a, self.committed_steps) for a in self._data.values()]
        counts += [(a, self.committed_episodes) for a in self._meta.values()]
        for arr, committed in counts:
            if arr.shape[0] < committed:
                raise StoreError(f"{self.store.url}/{arr.path}: {arr.shape[0]} rows < {committed} committed")
            if arr.shape[0] > committed:
                arr.resize((committed, *arr.shape[1:]))
        if self.store.local_path is not None:  # temp files of writes cut short by a kill
            for debris in (self.store.local_path / "shards" / self.writer_id).rglob("*.partial"):
                debris.unlink(missing_ok=True)

    # ----------------------------------------------------------------- append
    def append_episodes(self, source: str, episodes: Sequence[Episode]) -> CommitResult:
        """Commit all episodes of one source video in one atomic commit.

        ``episodes`` may be empty: the source is then recorded as done with 0
        episodes, so it is not retried. A source already committed in any
        shard is skipped (``CommitResult.skipped``). Inputs are validated
        before anything is written.
        """
        if not isinstance(source, str) or not source:
            raise ValueError(f"source must be a non-empty str, got {source!r}")
        episodes = list(episodes)
        num_points = self.store.num_points
        rows = [_check_episode(ep, num_points, f"source {source!r}, episode {i}") for i, ep in enumerate(episodes)]
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
        specs = {k: _extra_spec(v, k, first) for k, v in episodes[0].extra.items()}
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
                columns[name].append(_check_extra(ep.extra[name], name, dtype, shape, where))
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


# --------------------------------------------------------------------------- reading


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
    """

    def __init__(self, store: TrajectoryStore, cache_bytes: int = 512 * 2**20):
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
        for index, shard_id in enumerate(store.shard_ids()):
            where = f"{store.url}/shards/{shard_id}"
            group = _open_group(store._zstore, f"shards/{shard_id}", "r", where)
            attrs = _commit_attrs(group, where)
            shard = _Shard(
                shard_id, attrs["committed_steps"], attrs["committed_episodes"], attrs["committed_sources"], {}
            )
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
        return (self.num_points, 3) if name == "object_pc" else (NUM_JOINTS,)

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
