"""``--camera replay:FILE``: recorded frames played back as a live camera.

Two kinds of file (``.npz``, told apart by their ``format`` key):

- a robot episode recording (``hop-episode-recording``, written by
  ``hop-robot run --record``): its ``object_pc (T, P, 3)`` clouds are served
  as they were, at the recording's control rate;
- depth frames (``hop-depth-frames``, ``save_depth_frames``): ``depth
  (N, H, W)`` float32 metres (0 = no return), ``K (3, 3)``, ``T_base_cam
  (4, 4)`` (OpenCV optical frame in the robot base frame), ``stamps (N,)``
  seconds from the first frame; each frame goes through the point-cloud
  extraction (``hop_robot.cameras.pointcloud``) with the live joint state.

Frames are served by wall time since ``start`` (``realtime=True``), like a
camera; ``realtime=False`` serves one frame per ``read``. After the last
frame ``read`` raises ``CameraEnded``: the loop ends normally.
"""

from __future__ import annotations

import os

import numpy as np

from hop_robot.drivers.base import now

from .base import Camera, CameraEnded, CameraError, CloudFrame
from .pointcloud import CloudExtractor, ExtractConfig, NoObjectError

__all__ = ["DEPTH_FORMAT", "ReplayCamera", "save_depth_frames"]

DEPTH_FORMAT = "hop-depth-frames"
RECORDING_FORMAT = "hop-episode-recording"  # hop_robot.record.FORMAT


def save_depth_frames(
    path: str | os.PathLike, depth: np.ndarray, K: np.ndarray, T_base_cam: np.ndarray, stamps: np.ndarray
) -> None:
    """Write depth frames (N, H, W) m in the ``hop-depth-frames`` format."""
    depth = np.asarray(depth, dtype=np.float32)
    stamps = np.asarray(stamps, dtype=np.float64)
    if depth.ndim != 3 or stamps.shape != (len(depth),):
        raise ValueError(f"depth must be (N, H, W) and stamps (N,), got {depth.shape} and {stamps.shape}")
    np.savez_compressed(
        path, format=np.array(DEPTH_FORMAT), version=np.array(1), depth=depth,
        K=np.asarray(K, np.float64), T_base_cam=np.asarray(T_base_cam, np.float64), stamps=stamps - stamps[0],
    )  # fmt: skip


class ReplayCamera(Camera):
    name = "replay"

    def __init__(self, path: str | os.PathLike, *, realtime: bool = True, extract: ExtractConfig = ExtractConfig()) -> None:
        self.path = os.fspath(path)
        try:
            with np.load(self.path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except (OSError, ValueError) as exc:
            raise CameraError(f"replay:{self.path}: cannot read: {exc}") from exc
        kind = str(data.get("format", ""))
        if kind == RECORDING_FORMAT:
            clouds = np.asarray(data["object_pc"], dtype=np.float32)
            if clouds.ndim != 3 or clouds.shape[2] != 3:
                raise CameraError(f"replay:{self.path}: object_pc must be (T, P, 3), got {clouds.shape}")
            self.clouds, self.depth = clouds, None
            self.stamps = np.arange(len(clouds)) / float(data["control_hz"])
        elif kind == DEPTH_FORMAT:
            for key in ("depth", "K", "T_base_cam", "stamps"):
                if key not in data:
                    raise CameraError(f"replay:{self.path}: {DEPTH_FORMAT} file lacks {key!r}")
            self.depth, self.clouds = data["depth"], None
            self.K, self.T = data["K"], data["T_base_cam"]
            self.stamps = np.asarray(data["stamps"], dtype=np.float64)
            self.extractor = CloudExtractor(extract)
        else:
            raise CameraError(f"replay:{self.path}: format {kind!r} is neither {RECORDING_FORMAT!r} nor {DEPTH_FORMAT!r}")
        if len(self.stamps) == 0:
            raise CameraError(f"replay:{self.path}: no frames")
        self.realtime = realtime
        self._t0: float | None = None
        self._next = 0
        self.last_error: str | None = None

    def __len__(self) -> int:
        return len(self.stamps)

    def start(self) -> "ReplayCamera":
        self._t0 = now()
        self._next = 0
        return self

    def read(self, q: np.ndarray | None = None) -> CloudFrame | None:
        if self._t0 is None:
            self.start()
        t = now()
        if self.realtime:
            i = int(np.searchsorted(self.stamps, t - self._t0, side="right")) - 1
            if t - self._t0 > self.stamps[-1] + (self.stamps[-1] - self.stamps[0]) / max(len(self) - 1, 1):
                raise CameraEnded(f"replay:{self.path}: end of recording")
            i = max(i, 0)
        else:
            i = self._next
            if i >= len(self):
                raise CameraEnded(f"replay:{self.path}: end of recording")
            self._next += 1
        stamp = t if not self.realtime else self._t0 + self.stamps[i]
        if self.clouds is not None:
            return CloudFrame(self.clouds[i], stamp, {"frame": i})
        try:
            result = self.extractor.extract_depth(self.depth[i], self.K, self.T, q)
        except NoObjectError as exc:
            self.last_error = str(exc)
            return None
        return CloudFrame(result.points, stamp, {"frame": i, "counts": result.counts})
