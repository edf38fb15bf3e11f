"""The simulated robot: the MuJoCo embodiment with a dynamic object on a table.

Same model, same PD position control and the same per-substep arm rate limit
as data generation (``hop_data.sim.mujoco_backend``): each of the
``spec.SUBSTEPS`` substeps of a control step moves the arm's internal target
at most ``spec.ARM_MAX_STEP_PER_SUBSTEP`` rad toward the commanded goal and
sets the hand's targets directly. The scene is ``hop_robot.scene`` with the
object as a free body resting on the table (retargeting uses it kinematic)
and a fixed depth camera looking at the table (``hop_robot.cameras.sim``).

Two clocks:

- ``realtime=True`` (``hop-robot run``): a physics thread steps at
  ``spec.SIM_HZ`` against the monotonic clock, like a real robot's
  controller; ``act`` only stores the goal, ``observe`` returns the latest
  state. The 20 Hz loop is then timed exactly as on hardware.
- ``realtime=False`` (tests, lock-step use): no thread; every ``act`` runs
  one control step (``spec.SUBSTEPS`` substeps) before returning.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import mujoco
import numpy as np

from hop_robot.embodiment import spec
from hop_robot.geometry import transform_points, yaw_quat
from hop_robot.scene import SceneConfig, add_lookat_camera, build_scene_spec, index_scene, object_cloud

from .base import Driver, JointState, now

__all__ = ["SimRobot", "SimRobotConfig", "cylinder_points", "SIM_CAMERA"]

SIM_CAMERA = "scene_camera"


def cylinder_points(radius: float = 0.034, height: float = 0.102, count: int = 800, seed: int = 0) -> np.ndarray:
    """(count, 3) surface points of an upright cylinder centred at the origin
    (default: the size of YCB 005 tomato soup can)."""
    rng = np.random.default_rng(seed)
    side_area, cap_area = 2 * np.pi * radius * height, np.pi * radius**2
    n_side = int(round(count * side_area / (side_area + 2 * cap_area)))
    n_cap = count - n_side
    phi = rng.uniform(0, 2 * np.pi, n_side)
    side = np.stack([radius * np.cos(phi), radius * np.sin(phi), rng.uniform(-height / 2, height / 2, n_side)], 1)
    r = radius * np.sqrt(rng.uniform(0, 1, n_cap))
    phi = rng.uniform(0, 2 * np.pi, n_cap)
    z = np.where(np.arange(n_cap) % 2 == 0, height / 2, -height / 2)
    caps = np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)
    return np.concatenate([side, caps])


@dataclass(frozen=True)
class SimRobotConfig:
    """The simulated workcell. Positions in the robot base frame (m)."""

    scene: SceneConfig = SceneConfig(
        object_dynamic=True, object_collision=True, object_density=500.0, max_obstacles=0
    )
    object_points: np.ndarray | None = field(default=None, compare=False)  # (M, 3) object frame; None: a soup can
    object_xy: tuple[float, float] = (0.50, -0.12)  # where the object rests on the table
    object_yaw: float = 0.0  # rad
    initial_qpos: tuple[float, ...] = tuple(spec.DEFAULT_POSE.tolist())
    realtime: bool = True
    # A depth camera facing the robot across the table (RealSense D435-like vertical FOV).
    camera_position: tuple[float, float, float] = (1.35, 0.0, 0.62)
    camera_target: tuple[float, float, float] = (0.50, 0.0, 0.0)
    camera_fovy_deg: float = 58.0
    robot_path: str | None = None


class SimRobot(Driver):
    """``Driver`` over a MuJoCo simulation of the workcell (module doc)."""

    name = "sim"

    def __init__(self, config: SimRobotConfig = SimRobotConfig(), *, read_only: bool = False) -> None:
        super().__init__(spec.JOINT_LOWER, spec.JOINT_UPPER, read_only=read_only)
        self.config = config
        points = config.object_points if config.object_points is not None else cylinder_points()
        self.object_points = np.asarray(points, dtype=np.float64)
        mj = build_scene_spec(self.object_points, config.scene, config.robot_path)
        add_lookat_camera(mj, SIM_CAMERA, np.array(config.camera_position), np.array(config.camera_target),
                          config.camera_fovy_deg)  # fmt: skip
        self.model = mj.compile()
        self.index = index_scene(self.model, config.scene)
        self.cloud = object_cloud(self.object_points, config.scene.num_points)  # (P, 3) object frame
        self.data = mujoco.MjData(self.model)
        self._lock = threading.Lock()  # guards data, goal, published state
        self._goal = np.array(config.initial_qpos, dtype=np.float64)
        self._arm_target = self._goal[spec.ARM].copy()
        self._q = self._goal.copy()
        self._stamp = 0.0
        self._quit = threading.Event()
        self._thread: threading.Thread | None = None
        self.substeps = 0  # substeps simulated since connect
        self.late_resyncs = 0  # times the physics thread fell > 0.1 s behind and skipped ahead

    # ------------------------------------------------------------ driver API
    def _connect(self) -> None:
        q0 = np.clip(np.array(self.config.initial_qpos, dtype=np.float64), spec.JOINT_LOWER, spec.JOINT_UPPER)
        with self._lock:
            mujoco.mj_resetData(self.model, self.data)
            d, ix = self.data, self.index
            d.qpos[ix.qpos] = q0
            d.ctrl[ix.actuator] = q0
            d.qpos[ix.object_qpos:ix.object_qpos + 7] = self.initial_object_pose()
            mujoco.mj_forward(self.model, d)
            self._goal = q0.copy()
            self._arm_target = q0[spec.ARM].copy()
            self._publish()
        self.substeps = 0
        if self.config.realtime:
            self._quit.clear()
            self._thread = threading.Thread(target=self._physics, name="hop-sim-physics", daemon=True)
            self._thread.start()

    def _observe(self) -> JointState:
        with self._lock:
            return JointState(self._q.copy(), self._stamp)

    def _act(self, targets: np.ndarray) -> None:
        with self._lock:
            self._goal = targets.copy()
        if not self.config.realtime:
            self.step()

    def _stop(self) -> None:
        with self._lock:  # hold where the robot is now
            q = self.data.qpos[self.index.qpos].copy()
            self._goal = q
            self._arm_target = q[spec.ARM].copy()

    def _disconnect(self) -> None:
        self._quit.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    # ------------------------------------------------------------ simulation
    def initial_object_pose(self) -> np.ndarray:
        """(7,) the object resting on the table top at ``object_xy``, rotated by ``object_yaw``."""
        quat = yaw_quat(np.array(self.config.object_yaw))
        rotated = transform_points(self.object_points, np.concatenate([[0, 0, 0], quat])[None])[0]
        z = self.config.scene.table_height - rotated[:, 2].min() + 1e-3
        return np.array([*self.config.object_xy, z, *quat])

    def step(self, substeps: int = spec.SUBSTEPS) -> None:
        """Advance ``substeps`` substeps (lock-step mode; the physics thread calls it one at a time)."""
        act, limit = self.index.actuator, spec.ARM_MAX_STEP_PER_SUBSTEP
        with self._lock:
            for _ in range(substeps):
                # exactly hop_data.sim.mujoco_backend's control: rate-limited arm, direct hand
                self._arm_target += np.clip(self._goal[spec.ARM] - self._arm_target, -limit, limit)
                self.data.ctrl[act[spec.ARM]] = self._arm_target
                self.data.ctrl[act[spec.HAND]] = self._goal[spec.HAND]
                mujoco.mj_step(self.model, self.data)
                self.substeps += 1
            self._publish()

    def _publish(self) -> None:
        self._q = self.data.qpos[self.index.qpos].copy()
        self._stamp = now()

    def _physics(self) -> None:
        dt = 1.0 / spec.SIM_HZ
        next_t = now()
        while not self._quit.is_set():
            self.step(1)
            next_t += dt
            delay = next_t - now()
            if delay > 0:
                self._quit.wait(delay)
            elif delay < -0.1:  # far behind (machine stalled): resume real time, do not burst
                next_t = now()
                self.late_resyncs += 1

    def snapshot(self) -> tuple[np.ndarray, float]:
        """(full qpos copy, stamp): the state a camera renders."""
        with self._lock:
            return self.data.qpos.copy(), self._stamp

    def object_pose(self) -> np.ndarray:
        """(7,) current object position + quaternion w, x, y, z (base frame)."""
        with self._lock:
            a = self.index.object_qpos
            return self.data.qpos[a:a + 7].copy()

    def object_cloud_truth(self) -> tuple[np.ndarray, float]:
        """((P, 3) float32 object cloud in the base frame exactly as data generation
        makes it: the fixed object-frame cloud at the object's pose, stamp)."""
        with self._lock:
            a = self.index.object_qpos
            pose, stamp = self.data.qpos[a:a + 7].copy(), self._stamp
        return transform_points(self.cloud, pose[None])[0].astype(np.float32), stamp
