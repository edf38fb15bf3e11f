"""Importer of the robot trajectories released with the HOP paper, straight
into a trajectory store, so that pretraining can use the paper's own data.

Layout: ``<root>/<subject>/<episode>/*.npy``, each file a NumPy object array
holding a pickled dict (the paper code reads them with
``np.load(path, allow_pickle=True).item()``):

    robot_qpos   (T, 23)       joint angles reached in simulation (rad)
    target_qpos  (T, 23)       joint targets sent (rad)
    object_pc    (T, 100, 3)   object point cloud (m), the simulator's frame (robot base at the origin)

One episode directory is one source video: its files are that video's
retargeted attempts, committed together as source
``hop-release/<subject>/<episode>`` (a directory already committed in the
store is skipped, so an interrupted import is simply run again). Per episode:
proprio = robot_qpos, action = target_qpos, object_pc as stored, init_qpos =
robot_qpos[0], seed = the file's index in its directory, table_pose unknown
(identity), max/mean keypoint error unknown (0), extra field ``file``.

Safe loading. A pickle can run any code when loaded, so these files are
never given to ``pickle.load``/``np.load(allow_pickle=True)``: the .npy header
is parsed and the pickle stream is read by an unpickler that resolves only
the few NumPy globals an array needs (``ndarray``, ``dtype``,
``_reconstruct``, ``scalar``); plain containers and numbers need no globals.
Anything else (``os.system``, ``builtins.eval``, any class) raises
``UnsafePickleError`` naming the file and the refused global, before
anything is called.

Joint order. The files hold the 7 xArm joints then the 16 Allegro joints in
the Allegro hand's own order, joint_0 ... joint_15 = index (base, proximal,
medial, distal), middle, ring, thumb — the order of the paper's pretraining
loader, which permutes them into its IsaacGym asset's order (index, thumb,
middle, ring) with ``[0..10, 19, 20, 21, 22, 11..18]``. That is exactly
``hop_robot.embodiment.spec.JOINT_NAMES`` (arm, then index, middle, ring,
thumb), so the columns are taken as they are. The importer checks this on
the data: every hand column must lie within its joint's limits (0.1 rad
tolerance, 2 % of rows at most outside); thumb-base values (>= 0.263) in a
finger-base column or the reverse are caught. ``joint_order="isaacgym"``
reads files written in the asset's order instead.
"""

from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hop_robot.embodiment import spec

LIMIT_TOLERANCE = 0.1  # rad
MAX_OUTSIDE_FRACTION = 0.02
# File column feeding each of our 23 joints, for the orders we read.
# isaacgym (the paper's asset): arm, index, thumb, middle, ring.
JOINT_ORDERS: dict[str, np.ndarray] = {
    "allegro": np.arange(23),
    "isaacgym": np.array(list(range(11)) + list(range(15, 23)) + list(range(11, 15))),
}
KEYS = ("robot_qpos", "target_qpos", "object_pc")


class HopReleaseError(ValueError):
    """A released file or directory that cannot be imported; names it and the problem."""


class UnsafePickleError(HopReleaseError):
    """A pickle that asks for something other than NumPy arrays and plain containers."""


def _numpy_global(module: str, name: str) -> Any:
    import importlib

    for mod in (module, module.replace("numpy.core", "numpy._core"), module.replace("numpy._core", "numpy.core")):
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise AttributeError(f"{module}.{name}")


_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, name: str):
        super().__init__(file)
        self._name = name

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _numpy_global(module, name)
        raise UnsafePickleError(
            f"{self._name}: refused to load: the pickle asks for {module}.{name}; "
            "only NumPy arrays and plain dicts / lists / numbers / strings are accepted"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._name}: refused to load: the pickle uses persistent ids")


def load_pickled_npy(path: str | os.PathLike) -> Any:
    """The object inside a .npy file, read without running foreign code.

    Plain (non-object) arrays are returned as arrays; object arrays are
    unpickled by the restricted unpickler; a 0-d object array gives its item."""
    name = str(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise HopReleaseError(f"{name}: cannot open ({e})") from None
    with f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise HopReleaseError(f"{name}: unsupported .npy version {version}")
        except (ValueError, EOFError) as e:
            raise HopReleaseError(f"{name}: not a .npy file ({e})") from None
        if not dtype.hasobject:
            f.seek(0)
            return np.load(f, allow_pickle=False)
        try:
            obj = _RestrictedUnpickler(f, name).load()
        except UnsafePickleError:
            raise
        except Exception as e:  # truncated or corrupt streams raise many kinds
            raise HopReleaseError(f"{name}: the pickled content cannot be read ({type(e).__name__}: {e})") from None
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject and obj.shape == ():
        return obj.item()
    return obj


def _array(value: Any, key: str, where: str, shape_tail: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.asarray(value if not isinstance(value, list) else np.stack([np.asarray(v) for v in value]), dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise HopReleaseError(f"{where}: key '{key}' is not numeric ({e})") from None
    if arr.ndim != 1 + len(shape_tail) or arr.shape[1:] != shape_tail:
        want = "(T, " + ", ".join(map(str, shape_tail)) + ")"
        raise HopReleaseError(f"{where}: key '{key}' must be {want}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise HopReleaseError(f"{where}: key '{key}' has NaN or inf")
    return arr


def read_episode_file(path: str | os.PathLike, joint_order: str = "allegro", num_points: int | None = None) -> dict[str, np.ndarray]:
    """One released file -> {"robot_qpos" (T, 23), "target_qpos" (T, 23),
    "object_pc" (T, P, 3)} in ``spec.JOINT_NAMES`` order, checked."""
    where = str(path)
    data = load_pickled_npy(path)
    if not isinstance(data, dict):
        raise HopReleaseError(f"{where}: expected a pickled dict, got {type(data).__name__}")
    missing = [k for k in KEYS if k not in data]
    if missing:
        raise HopReleaseError(f"{where}: key '{missing[0]}' is missing (keys: {sorted(map(str, data))})")
    qpos = _array(data["robot_qpos"], "robot_qpos", where, (spec.NUM_JOINTS,))
    target = _array(data["target_qpos"], "target_qpos", where, (spec.NUM_JOINTS,))
    pc = np.asarray(data["object_pc"], dtype=np.float64) if not isinstance(data["object_pc"], list) else None
    p = pc.shape[1] if pc is not None and pc.ndim == 3 else (num_points or spec.NUM_POINTS)
    pc = _array(data["object_pc"], "object_pc", where, (p, 3))
    T = qpos.shape[0]
    if target.shape[0] != T or pc.shape[0] != T:
        raise HopReleaseError(f"{where}: robot_qpos, target_qpos, object_pc have {T}, {target.shape[0]}, {pc.shape[0]} steps; they must agree")
    if T < 1:
        raise HopReleaseError(f"{where}: no steps")
    if joint_order not in JOINT_ORDERS:
        raise ValueError(f"joint_order must be one of {list(JOINT_ORDERS)}, got {joint_order!r}")
    order = JOINT_ORDERS[joint_order]
    qpos, target = qpos[:, order], target[:, order]
    check_joint_order(qpos, where, joint_order)
    return {"robot_qpos": qpos.astype(np.float32), "target_qpos": target.astype(np.float32), "object_pc": pc.astype(np.float32)}


def outside_limits(q: np.ndarray, tolerance: float = LIMIT_TOLERANCE) -> np.ndarray:
    """(23,) fraction of rows of q (T, 23) outside each joint's limits (+- tolerance)."""
    lo, hi = spec.JOINT_LOWER - tolerance, spec.JOINT_UPPER + tolerance
    return np.mean((q < lo) | (q > hi), axis=0)


def check_joint_order(qpos: np.ndarray, where: str, joint_order: str = "allegro") -> None:
    """Refuse joint angles whose hand columns do not fit our joints' limits,
    naming the first such joint and the order that would fit, if one does."""
    bad = outside_limits(qpos)
    if (bad[spec.HAND] <= MAX_OUTSIDE_FRACTION).all() and (bad[spec.ARM] <= MAX_OUTSIDE_FRACTION).all():
        return
    j = int(np.argmax(bad > MAX_OUTSIDE_FRACTION))
    hint = ""
    for name, order in JOINT_ORDERS.items():
        if name == joint_order:
            continue
        # the columns as the file had them, re-read in the other order
        raw = np.empty_like(qpos)
        raw[:, JOINT_ORDERS[joint_order]] = qpos
        if (outside_limits(raw[:, order]) <= MAX_OUTSIDE_FRACTION).all():
            hint = f"; the values fit joint order '{name}' (--joint-order {name})"
    raise HopReleaseError(
        f"{where}: joint {spec.JOINT_NAMES[j]} is outside its limits "
        f"[{spec.JOINT_LOWER[j]:.3f}, {spec.JOINT_UPPER[j]:.3f}] rad in {bad[j]:.0%} of the steps: "
        f"the columns are not in {joint_order} order{hint}"
    )


def find_episode_dirs(root: str | os.PathLike) -> list[Path]:
    """``<root>/<subject>/<episode>/`` folders holding .npy files, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    return sorted({p.parent for p in root.glob("*/*/*.npy")})


@dataclass
class ReleaseImport:
    sources: int = 0
    episodes: int = 0
    steps: int = 0
    skipped_committed: int = 0
    failed: list[dict] | None = None


def import_hop_release(
    src: str | os.PathLike,
    store: str | os.PathLike,
    writer_id: str = "hop-release",
    joint_order: str = "allegro",
    progress: Callable[[int], None] | None = None,
) -> ReleaseImport:
    """``hop-data import hop-release SRC --store STORE``: every episode
    directory under SRC -> one committed source in STORE (created if missing,
    with the files' point count). A directory with a broken file is reported
    in ``failed`` (naming the file and the problem) and not committed; the
    others go on."""
    from hop_data.store import Episode, TrajectoryStore  # main environment only (zarr)

    dirs = find_episode_dirs(src)
    if not dirs:
        raise HopReleaseError(f"{src}: no <subject>/<episode>/*.npy files under it")
    root = Path(src)
    result = ReleaseImport(failed=[])
    opened: TrajectoryStore | None = None
    writer = None
    try:
        for d in dirs:
            source = "hop-release/" + d.relative_to(root).as_posix()
            if opened is not None and opened.is_committed(source):
                result.skipped_committed += 1
                if progress:
                    progress(1)
                continue
            try:
                files = sorted(d.glob("*.npy"))
                loaded = [read_episode_file(f, joint_order) for f in files]
            except HopReleaseError as e:
                result.failed.append({"source": source, "reason": str(e)})
                if progress:
                    progress(1)
                continue
            if opened is None:
                opened = TrajectoryStore.open(store, "a", num_points=loaded[0]["object_pc"].shape[1])
                writer = opened.writer(writer_id)
                if opened.is_committed(source):
                    result.skipped_committed += 1
                    if progress:
                        progress(1)
                    continue
            episodes = [
                Episode(
                    proprio=e["robot_qpos"], action=e["target_qpos"], object_pc=e["object_pc"], seed=i,
                    table_pose=np.array([0, 0, 0, 1, 0, 0, 0], dtype=np.float32), init_qpos=e["robot_qpos"][0],
                    max_error=0.0, mean_error=0.0, collision=False, extra={"file": f.name},
                )  # fmt: skip
                for i, (f, e) in enumerate(zip(files, loaded))
            ]
            try:
                commit = writer.append_episodes(source, episodes)
            except ValueError as e:
                result.failed.append({"source": source, "reason": str(e)})
                if progress:
                    progress(1)
                continue
            if commit.skipped:
                result.skipped_committed += 1
            else:
                result.sources += 1
                result.episodes += commit.episodes
                result.steps += commit.steps
            if progress:
                progress(1)
    finally:
        if writer is not None:
            writer.close()
    return result
