"""The simulator protocol: what retargeting, the simulated robot and the
task environments need from physics, and the factory that picks a backend.

A simulator advances N independent scenes at once. Each scene holds the
robot (joint targets at 20 Hz through the one control law of
``hop_robot.sim.control``: PD tracking for 6 substeps of 1/120 s, the arm's
target rate-limited per substep), a table (its pose randomised per scene),
optional box obstacles, task fixtures, and the object in one of two modes
(``SceneConfig.object_dynamic``):

- **kinematic**: placed at a given pose every control step, its dynamics
  ignored (retargeting, DESIGN.md "Retargeting");
- **dynamic**: a free body under physics, pushed and grasped by the hand
  (the simulated robot, the tasks).

Backends register under a name (``register_backend``) and are built by
``make_simulator``: ``"mujoco"`` (``hop_robot.sim.mujoco_batch``, CPU, the
reference) is built in; a GPU backend (MuJoCo Warp) slots in under another
name with the same constructor arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from hop_robot.embodiment import spec
from .scene import CompiledScene, SceneConfig


@dataclass
class SceneParams:
    """Per-scene randomisation for N scenes.

    table_pose (N, 7): table top-centre position + quaternion w,x,y,z.
    obstacles (N, K, 10): per slot centre (3), quaternion (4), half-extents (3);
        a slot with any half-extent <= 0 is unused.
    joint_friction (N, 23): dry friction per joint (N·m), in joint order.
    joint_damping (N, 23): passive viscous damping per joint (N·m·s/rad).
    """

    table_pose: np.ndarray
    obstacles: np.ndarray
    joint_friction: np.ndarray
    joint_damping: np.ndarray

    @classmethod
    def default(cls, num_scenes: int, config: SceneConfig = SceneConfig()) -> "SceneParams":
        return cls(
            table_pose=np.tile(config.default_table_pose(), (num_scenes, 1)),
            obstacles=np.zeros((num_scenes, config.max_obstacles, 10)),
            joint_friction=np.zeros((num_scenes, spec.NUM_JOINTS)),
            joint_damping=np.zeros((num_scenes, spec.NUM_JOINTS)),
        )

    def validate(self, num_scenes: int, max_obstacles: int) -> None:
        expected = {
            "table_pose": (num_scenes, 7),
            "obstacles": (num_scenes, max_obstacles, 10),
            "joint_friction": (num_scenes, spec.NUM_JOINTS),
            "joint_damping": (num_scenes, spec.NUM_JOINTS),
        }
        for name, shape in expected.items():
            value = np.asarray(getattr(self, name))
            if value.shape != shape:
                raise ValueError(f"SceneParams.{name} must be {shape}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"SceneParams.{name} has NaN or inf")
        if np.any(self.joint_friction < 0) or np.any(self.joint_damping < 0):
            raise ValueError("SceneParams.joint_friction and joint_damping must be >= 0")


@dataclass
class Observation:
    """What the scenes show after a reset or a control step.

    qpos (N, 23): joint angles φ in joint order (radians).
    qvel (N, 23): joint velocities (rad/s).
    object_pose (N, 7): object position + quaternion w, x, y, z, robot base frame.
    object_vel (N, 6): object linear + angular velocity (world frame; zero when kinematic).
    object_pc (N, P, 3): object points in the robot base frame (metres).
    keypoints (N, 9, 3): robot keypoint sites (spec.KEYPOINT_SITES) in the base frame.
    arm_contact (N,) bool: an arm link touched table, floor, an obstacle or a
        fixture at any substep since the last reset (sticky).
    hand_contact (N,) bool: the hand touched them (sticky).
    """

    qpos: np.ndarray
    qvel: np.ndarray
    object_pose: np.ndarray
    object_vel: np.ndarray
    object_pc: np.ndarray
    keypoints: np.ndarray
    arm_contact: np.ndarray
    hand_contact: np.ndarray


@runtime_checkable
class Simulator(Protocol):
    """N scenes stepped together (module doc)."""

    num_scenes: int
    num_points: int

    def reset(
        self,
        qpos: np.ndarray,
        object_pose: np.ndarray,
        params: SceneParams | None = None,
        ids: np.ndarray | None = None,
    ) -> Observation:
        """Start the scenes ``ids`` (default: all; n of them) at joint angles
        qpos (n, 23) (targets = qpos, at rest) with the object at object_pose
        (n, 7), at rest; apply params (n scenes). Returns all N scenes."""
        ...

    def step(self, targets: np.ndarray, object_pose: np.ndarray | None = None, substeps: int = ...) -> Observation:
        """One 20 Hz control step of every scene: track joint targets (N, 23)
        for ``spec.SUBSTEPS`` substeps through the control law. A kinematic
        object is placed at object_pose (N, 7) (None: it stays where it is);
        a dynamic one moves by itself (object_pose must be None)."""
        ...

    def hold(self) -> np.ndarray:
        """Stop every arm where it is: its rate-limited target jumps to the
        current joint angles, returned (N, 23). Step with them as goals to hold."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything the scenes' continuation depends on, as NumPy arrays and
        plain numbers (no references to the simulator): the physics state a
        step integrates from (for MuJoCo, each scene's ``mjSTATE_INTEGRATION``:
        time, positions, velocities, actuator and warm-start state, inputs,
        mocap poses), the control law's internal arm targets, the sticky
        contact flags, a kinematic object's pose and the per-scene parameters
        of the last ``reset``. Checkpoints store it to resume a run exactly."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (``state_dict()`` of a simulator built with the
        same scenes, ``num_scenes`` and assignment): from then on ``step``
        gives what the saved simulator would have, bit for bit, and derived
        quantities (keypoints, contact sensors) are recomputed as ``step``
        leaves them. A state of other scenes is refused (ValueError)."""
        ...

    def close(self) -> None:
        ...


SimulatorFactory = Callable[..., Simulator]
_BACKENDS: dict[str, SimulatorFactory] = {}


def register_backend(name: str, factory: SimulatorFactory) -> None:
    """Make ``make_simulator(..., backend=name)`` build simulators with ``factory``."""
    _BACKENDS[name] = factory


def backends() -> list[str]:
    """Names of the registered backends."""
    _load_builtin()
    return sorted(_BACKENDS)


def _load_builtin() -> None:
    if "mujoco" not in _BACKENDS:
        from . import mujoco_batch  # noqa: F401  (registers "mujoco")


def make_simulator(
    scenes: CompiledScene | Sequence[CompiledScene],
    num_scenes: int,
    *,
    backend: str = "mujoco",
    nthread: int = 0,
    assignment: np.ndarray | None = None,
) -> Simulator:
    """A simulator of ``num_scenes`` scenes on ``backend``.

    scenes: one compiled scene for all, or several variants (e.g. one per
        object) of the same layout; scene i runs ``scenes[assignment[i]]``
        (default ``i % len(scenes)``).
    nthread: CPU threads (0: every CPU this process may use).
    """
    _load_builtin()
    try:
        factory = _BACKENDS[backend]
    except KeyError:
        raise ValueError(f"unknown simulator backend {backend!r}; registered: {sorted(_BACKENDS)}") from None
    return factory(scenes, num_scenes, nthread=nthread, assignment=assignment)
