"""An Intel RealSense depth camera (``pyrealsense2``, the optional ``realsense`` extra).

A background thread waits for depth frames (z16, scaled by the device's
depth scale to metres) and keeps the newest with its arrival time;
``read(q)`` turns the newest unseen frame into the object cloud with
``hop_robot.cameras.pointcloud`` (the same path as the simulated camera).
Intrinsics come from the depth stream; the camera's pose in the robot base
frame comes from a hand-eye calibration file (JSON)::

    {"T_base_cam": [[r00, r01, r02, x], [r10, r11, r12, y], [r20, r21, r22, z], [0, 0, 0, 1]]}

the depth optical frame (OpenCV: x right, y down, z forward) in the robot
base frame, metres. There is no default: a wrong pose would put the object
somewhere else, so the camera refuses to start without one.

Not tested here (no camera on this machine); ``load_calibration`` is.
"""

from __future__ import annotations

import json
import logging
import os
import threading

import numpy as np

from hop_robot.drivers.base import now

from .base import Camera, CameraError, CloudFrame
from .pointcloud import CloudExtractor, ExtractConfig, NoObjectError

__all__ = ["RealSenseCamera", "load_calibration"]

log = logging.getLogger(__name__)


def load_calibration(path: str | os.PathLike) -> np.ndarray:
    """T_base_cam (4, 4) from a calibration JSON file; checks it is a rigid transform."""
    try:
        with open(path) as f:
            data = json.load(f)
        T = np.asarray(data["T_base_cam"], dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CameraError(f"camera calibration {path}: cannot read T_base_cam: {exc}") from exc
    if T.shape != (4, 4) or not np.isfinite(T).all():
        raise CameraError(f"camera calibration {path}: T_base_cam must be a finite 4x4 matrix, got shape {T.shape}")
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or not np.isclose(np.linalg.det(R), 1.0, atol=1e-4) \
            or not np.allclose(T[3], [0, 0, 0, 1]):  # fmt: skip
        raise CameraError(f"camera calibration {path}: T_base_cam is not a rigid transform")
    return T


class RealSenseCamera(Camera):
    """Live RealSense depth -> object cloud (module doc)."""

    name = "realsense"

    def __init__(
        self,
        calibration: str | os.PathLike,
        *,
        serial: str | None = None,
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        extract: ExtractConfig = ExtractConfig(),
    ) -> None:
        self.T_base_cam = load_calibration(calibration)
        self.serial, self.width, self.height, self.fps = serial, width, height, fps
        self.extractor = CloudExtractor(extract)
        self._pipeline = None
        self._thread: threading.Thread | None = None
        self._quit = threading.Event()
        self._lock = threading.Lock()
        self._latest: tuple[np.ndarray, float, int] | None = None  # depth m, stamp, frame number
        self._served = -1
        self._last_frame: CloudFrame | None = None
        self.K: np.ndarray | None = None
        self.last_error: str | None = None

    def start(self) -> "RealSenseCamera":
        try:
            import pyrealsense2 as rs
        except ImportError as exc:
            raise CameraError("the RealSense camera needs pyrealsense2: pip install 'hop[realsense]'") from exc
        pipeline, config = rs.pipeline(), rs.config()
        if self.serial:
            config.enable_device(self.serial)
        config.enable_stream(rs.stream.depth, self.width, self.height, rs.format.z16, self.fps)
        try:
            profile = pipeline.start(config)
        except RuntimeError as exc:
            raise CameraError(f"cannot start the RealSense depth stream: {exc}") from exc
        self._pipeline = pipeline
        scale = profile.get_device().first_depth_sensor().get_depth_scale()
        intr = profile.get_stream(rs.stream.depth).as_video_stream_profile().get_intrinsics()
        self.K = np.array([[intr.fx, 0.0, intr.ppx], [0.0, intr.fy, intr.ppy], [0.0, 0.0, 1.0]])
        self._quit.clear()
        self._thread = threading.Thread(target=self._run, args=(scale,), name="hop-realsense", daemon=True)
        self._thread.start()
        return self

    def _run(self, scale: float) -> None:
        count = 0
        while not self._quit.is_set():
            try:
                frames = self._pipeline.wait_for_frames(1000)
            except RuntimeError as exc:  # timeout: the loop sees stale frames and holds
                log.warning("RealSense: %s", exc)
                continue
            depth = frames.get_depth_frame()
            if not depth:
                continue
            image = np.asanyarray(depth.get_data()).astype(np.float32) * scale
            count += 1
            with self._lock:
                self._latest = (image, now(), count)

    def read(self, q: np.ndarray | None = None) -> CloudFrame | None:
        with self._lock:
            latest = self._latest
        if latest is None:
            return None
        depth, stamp, number = latest
        if number == self._served:  # no new frame: the same cloud, with its old stamp (the loop judges its age)
            return self._last_frame
        self._served = number
        try:
            result = self.extractor.extract_depth(depth, self.K, self.T_base_cam, q)
        except NoObjectError as exc:
            self.last_error = str(exc)
            self._last_frame = None
            return None
        self._last_frame = CloudFrame(result.points, stamp, {"frame": number, "counts": result.counts})
        return self._last_frame

    def stop(self) -> None:
        self._quit.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            finally:
                self._pipeline = None
