"""The simulated robot: the MuJoCo embodiment with a dynamic object on a table.

It runs on the one simulation core (``hop_robot.sim``), as data generation
and the task environments do: the same scene builder, the same backend (one
scene, the object in its dynamic mode: a free body resting on the table) and
the same control law (``hop_robot.sim.control``), plus a fixed depth camera
looking at the table (``hop_robot.cameras.sim``).

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

import numpy as np

from hop_robot.embodiment import spec
from hop_robot.geometry import transform_points, yaw_quat
from hop_robot.sim import SceneConfig, make_simulator
from hop_robot.sim.scene import add_lookat_camera, build_scene
from hop_robot.shapes import ObjectShape, surface_points

from .base import MONOTONIC, Clock, Driver, JointState

__all__ = ["SimRobot", "SimRobotConfig", "cylinder_points", "SIM_CAMERA"]

SIM_CAMERA = "scene_camera"


def cylinder_points(radius: float = 0.034, height: float = 0.102, count: int = 800, seed: int = 0) -> np.ndarray:
    """(count, 3) surface points of an upright cylinder centred at the origin
    (default: the size of YCB 005 tomato soup can)."""
    return surface_points(ObjectShape("cylinder", np.array([radius, radius, height / 2])), count, seed)


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

    def __init__(self, config: SimRobotConfig = SimRobotConfig(), *, read_only: bool = False,
                 clock: Clock = MONOTONIC) -> None:  # fmt: skip
        """``clock`` times the real-time physics thread (tests pass a fake one)."""
        super().__init__(spec.JOINT_LOWER, spec.JOINT_UPPER, read_only=read_only)
        self.config = config
        self.clock = clock
        points = config.object_points if config.object_points is not None else cylinder_points()
        self.object_points = np.asarray(points, dtype=np.float64)

        def camera(mj) -> None:
            add_lookat_camera(mj, SIM_CAMERA, np.array(config.camera_position), np.array(config.camera_target),
                              config.camera_fovy_deg)  # fmt: skip

        scene = build_scene(self.object_points, config.scene, config.robot_path, extras=[camera])
        self.sim = make_simulator(scene, 1, nthread=1)
        self.model, self.index, self.cloud = scene.model, scene.index, scene.cloud  # cloud (P, 3) object frame
        self._lock = threading.Lock()  # guards data, goal, published state
        self._goal = np.array(config.initial_qpos, dtype=np.float64)
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
            self.sim.reset(q0[None], self.initial_object_pose()[None])
            self._goal = q0.copy()
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
            self._goal = self.sim.hold()[0]

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
        with self._lock:
            self.sim.step(self._goal[None], substeps=substeps)
            self.substeps += substeps
            self._publish()

    def _publish(self) -> None:
        self._q = self.sim.qpos[0, self.index.qpos].copy()
        self._stamp = self.clock.now()

    def _physics(self) -> None:
        """One substep every 1 / ``spec.SIM_HZ`` s on ``self.clock`` (absolute
        schedule); more than 0.1 s behind (the machine stalled), it resumes
        from now instead of bursting through the lost substeps."""
        clock, dt = self.clock, 1.0 / spec.SIM_HZ
        next_t = clock.now()
        while not self._quit.is_set():
            self.step(1)
            next_t += dt
            delay = next_t - clock.now()
            if delay > 0:
                clock.sleep(delay, until=self._quit)
            elif delay < -0.1:
                next_t = clock.now()
                self.late_resyncs += 1

    def snapshot(self) -> tuple[np.ndarray, float]:
        """(full qpos copy, stamp): the state a camera renders."""
        with self._lock:
            return self.sim.qpos[0].copy(), self._stamp

    def object_pose(self) -> np.ndarray:
        """(7,) current object position + quaternion w, x, y, z (base frame)."""
        with self._lock:
            a = self.index.object_qpos
            return self.sim.qpos[0, a:a + 7].copy()

    def object_cloud_truth(self) -> tuple[np.ndarray, float]:
        """((P, 3) float32 object cloud in the base frame exactly as data generation
        makes it: the fixed object-frame cloud at the object's pose, stamp)."""
        with self._lock:
            a = self.index.object_qpos
            pose, stamp = self.sim.qpos[0, a:a + 7].copy(), self._stamp
        return transform_points(self.cloud, pose[None])[0].astype(np.float32), stamp
