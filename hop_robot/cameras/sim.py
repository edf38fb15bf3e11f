"""Cameras of the simulated robot.

``SimDepthCamera`` renders a depth image from the scene's fixed camera with
MuJoCo's offscreen renderer (``MUJOCO_GL=osmesa`` without a display, ``egl``
on a GPU machine) at the simulation's latest state, and extracts the object
cloud from it exactly as from a real depth camera
(``hop_robot.cameras.pointcloud``): the same code path as the RealSense.

``SimTruthCamera`` skips perception: the object's fixed 100-point cloud at its
simulated pose, as data generation makes it (``--camera sim:truth``), which
separates perception errors from policy errors.
"""

from __future__ import annotations

import mujoco
import numpy as np

from hop_robot.drivers.sim import SIM_CAMERA, SimRobot

from .base import Camera, CameraError, CloudFrame
from .pointcloud import CloudExtractor, ExtractConfig, NoObjectError, RobotMask

__all__ = ["SimDepthCamera", "SimTruthCamera", "camera_matrices"]


def camera_matrices(model: mujoco.MjModel, data: mujoco.MjData, camera: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(K (3, 3), T_base_cam (4, 4)) of a MuJoCo camera in the OpenCV convention
    (call ``mj_kinematics`` and ``mj_camlight`` on ``data`` first)."""
    cam = model.camera(camera).id
    fy = 0.5 * height / np.tan(np.deg2rad(model.cam_fovy[cam]) / 2.0)
    K = np.array([[fy, 0.0, (width - 1) / 2.0], [0.0, fy, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
    T = np.eye(4)
    T[:3, :3] = data.cam_xmat[cam].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])  # MuJoCo (y up, -z forward) -> OpenCV
    T[:3, 3] = data.cam_xpos[cam]
    return K, T


class SimDepthCamera(Camera):
    """Rendered depth -> object cloud (module doc).

    Args:
        robot: the ``SimRobot`` whose scene is rendered.
        width, height: depth image size (pixels).
        extract: point-cloud extraction settings.
        noise_std: Gaussian depth noise (m), 0 = exact depth.
    """

    name = "sim"

    def __init__(
        self,
        robot: SimRobot,
        width: int = 320,
        height: int = 240,
        extract: ExtractConfig = ExtractConfig(),
        noise_std: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.robot = robot
        self.width, self.height = int(width), int(height)
        self.noise_std = float(noise_std)
        self._rng = np.random.default_rng(seed)
        self.extractor = CloudExtractor(extract, RobotMask())
        self._renderer: mujoco.Renderer | None = None
        self._data = mujoco.MjData(robot.model)
        self.last_error: str | None = None

    def start(self) -> "SimDepthCamera":
        if self._renderer is None:
            try:
                self._renderer = mujoco.Renderer(self.robot.model, self.height, self.width)
            except Exception as exc:  # noqa: BLE001 - GL backends fail in many ways
                raise CameraError(f"cannot create a MuJoCo renderer (set MUJOCO_GL=osmesa or egl): {exc}") from exc
            self._renderer.enable_depth_rendering()
        return self

    def stop(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def render(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        """(depth (H, W) m, K, T_base_cam, q (23,), stamp) at the simulation's latest state."""
        if self._renderer is None:
            raise CameraError("SimDepthCamera.render() before start()")
        qpos, stamp = self.robot.snapshot()
        model, data = self.robot.model, self._data
        data.qpos[:] = qpos
        mujoco.mj_kinematics(model, data)
        mujoco.mj_camlight(model, data)
        self._renderer.update_scene(data, camera=SIM_CAMERA)
        depth = self._renderer.render().astype(np.float32)
        if self.noise_std > 0:
            depth = depth + self._rng.normal(0.0, self.noise_std, depth.shape).astype(np.float32)
        K, T = camera_matrices(model, data, SIM_CAMERA, self.width, self.height)
        return depth, K, T, qpos[self.robot.index.qpos].copy(), stamp

    def read(self, q: np.ndarray | None = None) -> CloudFrame | None:
        depth, K, T, q_render, stamp = self.render()
        try:
            result = self.extractor.extract_depth(depth, K, T, q_render)  # the joints of the rendered state
        except NoObjectError as exc:
            self.last_error = str(exc)
            return None
        return CloudFrame(result.points, stamp, {"counts": result.counts})


class SimTruthCamera(Camera):
    """The object's cloud at its simulated pose, as in data generation (no rendering)."""

    name = "sim:truth"

    def __init__(self, robot: SimRobot) -> None:
        self.robot = robot

    def read(self, q: np.ndarray | None = None) -> CloudFrame | None:
        points, stamp = self.robot.object_cloud_truth()
        return CloudFrame(points, stamp)
