"""Episode recordings: what ``hop-robot run --record FILE`` writes.

One self-describing ``.npz`` per run (NumPy only, ``allow_pickle=False``),
holding the arrays and per-episode fields of the trajectory store
(DESIGN.md, interchange format 2) plus timing, so that
``hop-data import recording FILE --store ...`` can copy it into a store and
real episodes can feed BC finetuning. The format is specified in
docs/robot.md ("Recording format"); ``load_recording`` checks it.

Rows are the control steps of the policy phase, one per 20 Hz tick, in order;
row k holds what was observed at tick k and the target computed from it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from hop_robot.embodiment import spec

__all__ = ["FORMAT", "VERSION", "EpisodeRecorder", "RecordingError", "load_recording"]

FORMAT = "hop-episode-recording"
VERSION = 1

STEP_KEYS = {  # name -> (dtype, row shape; P = num_points)
    "proprio": (np.float32, (spec.NUM_JOINTS,)),
    "action": (np.float32, (spec.NUM_JOINTS,)),
    "object_pc": (np.float32, ("P", 3)),
    "policy_action": (np.float32, (spec.NUM_JOINTS,)),
    "time": (np.float64, ()),
    "joint_age": (np.float32, ()),
    "cloud_age": (np.float32, ()),
    "policy_latency": (np.float32, ()),
    "miss": (np.bool_, ()),
    "intervention": (np.uint8, ()),
    "sent": (np.bool_, ()),
}
EPISODE_KEYS = {  # the trajectory store's per-episode fields
    "source": (str, ()),
    "seed": (np.int64, ()),
    "table_pose": (np.float32, (7,)),
    "init_qpos": (np.float32, (spec.NUM_JOINTS,)),
    "max_error": (np.float32, ()),
    "mean_error": (np.float32, ()),
    "collision": (np.bool_, ()),
}
HEADER_KEYS = ("format", "version", "embodiment", "joint_names", "control_hz", "num_points", "meta_json")


class RecordingError(ValueError):
    """A file that is not a valid episode recording."""


class EpisodeRecorder:
    """Collects rows during a run and writes the ``.npz`` at the end (atomically).

    Args:
        path: output file (``.npz`` is the convention; the name is kept as given).
        source: the episode's id in a store (default ``robot/<host>/<start time>``).
        table_pose: (7,) table top-centre pose in the base frame (position m,
            quaternion w, x, y, z), as the store records it.
        num_points: object points per step.
        control_hz: the loop rate.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        source: str,
        table_pose: np.ndarray,
        num_points: int = spec.NUM_POINTS,
        control_hz: float = spec.CONTROL_HZ,
    ) -> None:
        self.path = Path(path)
        if not source:
            raise ValueError("source must be a non-empty id")
        table_pose = np.asarray(table_pose, dtype=np.float32)
        if table_pose.shape != (7,) or not np.isfinite(table_pose).all():
            raise ValueError(f"table_pose must be finite (7,), got {table_pose}")
        self.source = source
        self.table_pose = table_pose
        self.num_points = int(num_points)
        self.control_hz = float(control_hz)
        self.rows: dict[str, list] = {k: [] for k in STEP_KEYS}

    def __len__(self) -> int:
        return len(self.rows["proprio"])

    def append(self, **row) -> None:
        """One control step: every key of ``STEP_KEYS``."""
        missing = set(STEP_KEYS) - set(row)
        if missing:
            raise ValueError(f"recording row lacks {sorted(missing)}")
        for key in STEP_KEYS:
            self.rows[key].append(np.asarray(row[key]))

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for key, (dtype, shape) in STEP_KEYS.items():
            shape = tuple(self.num_points if s == "P" else s for s in shape)
            values = self.rows[key]
            out[key] = np.stack(values).astype(dtype) if values else np.zeros((0, *shape), dtype)
        return out

    def save(self, meta: dict) -> Path:
        """Write the file (temporary name, then rename) and return its path."""
        steps = self.arrays()
        init = steps["proprio"][0] if len(self) else np.full(spec.NUM_JOINTS, np.nan, np.float32)
        payload = {
            "format": np.array(FORMAT),
            "version": np.array(VERSION, np.int64),
            "embodiment": np.array(spec.EMBODIMENT_NAME),
            "joint_names": np.array(spec.JOINT_NAMES),
            "control_hz": np.array(self.control_hz, np.float64),
            "num_points": np.array(self.num_points, np.int64),
            "meta_json": np.array(json.dumps(meta, default=_jsonable, sort_keys=True)),
            **steps,
            "source": np.array(self.source),
            "seed": np.array(-1, np.int64),  # not a retargeting attempt
            "table_pose": self.table_pose,
            "init_qpos": np.asarray(init, np.float32),
            "max_error": np.array(0.0, np.float32),  # no retargeting error: the robot's own motion
            "mean_error": np.array(0.0, np.float32),
            "collision": np.array(False),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".partial", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(f, **payload)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.path


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def load_recording(path: str | os.PathLike) -> dict:
    """Read and check a recording: dict of every key (0-d values as Python
    scalars/str, ``meta`` parsed from ``meta_json``). ``RecordingError`` names
    the first problem."""
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise RecordingError(f"{path}: not a readable .npz: {exc}") from exc
    for key in (*HEADER_KEYS, *STEP_KEYS, *EPISODE_KEYS):
        if key not in data:
            raise RecordingError(f"{path}: missing key {key!r}")
    if str(data["format"]) != FORMAT or int(data["version"]) != VERSION:
        raise RecordingError(f"{path}: format {str(data['format'])!r} version {int(data['version'])}, "
                             f"expected {FORMAT!r} version {VERSION}")  # fmt: skip
    if str(data["embodiment"]) != spec.EMBODIMENT_NAME or tuple(data["joint_names"].tolist()) != spec.JOINT_NAMES:
        raise RecordingError(f"{path}: recorded for embodiment {str(data['embodiment'])!r} with other joints")
    p = int(data["num_points"])
    t = len(data["proprio"])
    for key, (dtype, shape) in STEP_KEYS.items():
        want = (t, *(p if s == "P" else s for s in shape))
        if data[key].shape != want:
            raise RecordingError(f"{path}: {key} must be {want}, got {data[key].shape}")
    for key in ("proprio", "action", "object_pc"):
        if not np.isfinite(data[key]).all():
            raise RecordingError(f"{path}: {key} contains NaN or inf")
    out = {}
    for key, value in data.items():
        out[key] = value.item() if value.ndim == 0 else value
    out["meta"] = json.loads(out.pop("meta_json"))
    return out
