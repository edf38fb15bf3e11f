"""What a writer is given and answers: ``Episode``, ``CommitResult``, and the
checks every episode passes before anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

from hop_robot.embodiment.spec import NUM_JOINTS

from .layout import FIELD_NAME, RESERVED


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


# --------------------------------------------------------------------------- fixed fields


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


def check_episode(ep: Episode, num_points: int, where: str) -> dict[str, Any]:
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


# --------------------------------------------------------------------------- extra fields


def check_field_name(name: str, where: str) -> None:
    if not FIELD_NAME.match(name) or name in RESERVED:
        raise ValueError(f"{where}: extra field name {name!r} is reserved or not an identifier")


def extra_spec(value: Any, name: str, where: str) -> tuple[np.dtype, tuple[int, ...]]:
    """(dtype, row shape) that an extra per-episode value declares."""
    check_field_name(name, where)
    arr = np.asarray(value)
    if arr.dtype.kind == "U":
        if arr.shape != ():
            raise ValueError(f"{where}: extra string field {name!r} must be a single string")
        return np.dtype(str), ()
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{where}: extra field {name!r} must be numeric, bool or str, got dtype {arr.dtype}")
    return arr.dtype, arr.shape


def spec_of(arr: zarr.Array) -> tuple[np.dtype, tuple[int, ...]]:
    """(dtype, row shape) of a per-episode array; any string dtype reads as np.dtype(str)."""
    return (np.dtype(str) if arr.dtype.kind in "UTO" else np.dtype(arr.dtype)), tuple(arr.shape[1:])


def check_extra(value: Any, name: str, dtype: np.dtype, shape: tuple[int, ...], where: str) -> Any:
    """``value`` checked against the shard's (dtype, row shape) for extra field ``name``."""
    got_dtype, got_shape = extra_spec(value, name, where)
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
