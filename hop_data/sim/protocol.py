"""The simulator protocol: what retargeting and data generation need from physics.

A simulator advances N independent scenes of one object at once. Each scene
holds the robot (PD-tracked joint targets at 20 Hz, 6 substeps of 1/120 s),
a table whose pose is randomised per scene, optional box obstacles, and the
object, kinematic: it is placed at a given pose every control step and its
dynamics are ignored (DESIGN.md, "Retargeting").

Backends: ``hop_data.sim.mujoco_backend.MujocoSimulator`` (CPU, the
reference) and, where installed, a GPU backend behind the same protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from hop_robot.embodiment import spec
from hop_robot.scene import SceneConfig  # noqa: F401  (re-exported: the scene layout lives in hop_robot)


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
    object_pc (N, P, 3): object points in the robot base frame (metres).
    keypoints (N, 9, 3): robot keypoint sites (spec.KEYPOINT_SITES) in the base frame.
    arm_contact (N,) bool: an arm link touched table, floor or an obstacle
        at any substep since the last reset (sticky).
    hand_contact (N,) bool: the hand touched table, floor or an obstacle (sticky).
    """

    qpos: np.ndarray
    object_pc: np.ndarray
    keypoints: np.ndarray
    arm_contact: np.ndarray
    hand_contact: np.ndarray
    extra: dict = field(default_factory=dict)


@runtime_checkable
class Simulator(Protocol):
    """N scenes of one object, stepped together."""

    num_scenes: int
    num_points: int

    def reset(self, qpos: np.ndarray, object_pose: np.ndarray, params: SceneParams | None = None) -> Observation:
        """Start every scene at joint angles qpos (N, 23) (targets = qpos, at
        rest) with the object at object_pose (N, 7); apply params."""
        ...

    def step(self, targets: np.ndarray, object_pose: np.ndarray) -> Observation:
        """One 20 Hz control step: PD-track joint targets (N, 23) for
        ``spec.SUBSTEPS`` substeps (the arm's target rate-limited per substep)
        with the object placed at object_pose (N, 7) in the base frame."""
        ...

    def close(self) -> None:
        ...
