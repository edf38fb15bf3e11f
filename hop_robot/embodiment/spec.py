"""The xArm7 + right Allegro hand: the one place for every embodiment fact.

Joint order, limits, default pose, PD gains, control rates, the keypoint sites
used by retargeting and the human-to-robot keypoint map are defined here and
imported everywhere else (simulation, retargeting, store, policy, robot loop).
Numbers come from DESIGN.md, which takes them from the HOP paper, its public
code and the makers' published kinematics.

Shapes follow the project convention: ``q (..., 23)`` joint angles in radians,
in ``JOINT_NAMES`` order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

EMBODIMENT_NAME = "xarm7_allegro_right"

# ---------------------------------------------------------------- joint order
ARM_JOINT_NAMES: tuple[str, ...] = tuple(f"joint{i}" for i in range(1, 8))
FINGERS: tuple[str, ...] = ("index", "middle", "ring", "thumb")  # Allegro order
FINGER_SEGMENTS: tuple[str, ...] = ("base", "proximal", "medial", "distal")
HAND_JOINT_NAMES: tuple[str, ...] = tuple(
    f"{finger}_{segment}" for finger in FINGERS for segment in FINGER_SEGMENTS
)
JOINT_NAMES: tuple[str, ...] = ARM_JOINT_NAMES + HAND_JOINT_NAMES
ARM_LINK_NAMES: tuple[str, ...] = tuple(f"link{i}" for i in range(1, 8))  # the body each arm joint moves
NUM_ARM_JOINTS = len(ARM_JOINT_NAMES)  # 7
NUM_HAND_JOINTS = len(HAND_JOINT_NAMES)  # 16
NUM_JOINTS = len(JOINT_NAMES)  # 23
ARM = slice(0, NUM_ARM_JOINTS)
HAND = slice(NUM_ARM_JOINTS, NUM_JOINTS)

# ---------------------------------------------------------------- limits (rad)
_TWO_PI = 6.2832
_ARM_LIMITS = [  # xArm7 user manual / URDF
    (-_TWO_PI, _TWO_PI),  # joint1
    (-2.059, 2.0944),  # joint2
    (-_TWO_PI, _TWO_PI),  # joint3
    (-0.19198, 3.927),  # joint4
    (-_TWO_PI, _TWO_PI),  # joint5
    (-1.69297, 3.14159),  # joint6
    (-_TWO_PI, _TWO_PI),  # joint7
]
_FINGER_LIMITS = [(-0.47, 0.47), (-0.196, 1.61), (-0.174, 1.709), (-0.227, 1.618)]
_THUMB_LIMITS = [(0.263, 1.396), (-0.105, 1.163), (-0.189, 1.644), (-0.162, 1.719)]
_LIMITS = np.array(_ARM_LIMITS + _FINGER_LIMITS * 3 + _THUMB_LIMITS, dtype=np.float64)
JOINT_LOWER: np.ndarray = _LIMITS[:, 0].copy()
JOINT_UPPER: np.ndarray = _LIMITS[:, 1].copy()
JOINT_LOWER.flags.writeable = False
JOINT_UPPER.flags.writeable = False

# ---------------------------------------------------------------- default pose
# Arm pose from DESIGN.md (the HOP code's start pose); the hand rests open.
DEFAULT_ARM_POSE = np.array([-0.79, -0.30, 0.16, 0.43, 2.20, 0.72, -1.67])
DEFAULT_HAND_POSE = np.clip(np.zeros(NUM_HAND_JOINTS), JOINT_LOWER[HAND], JOINT_UPPER[HAND])
DEFAULT_POSE: np.ndarray = np.concatenate([DEFAULT_ARM_POSE, DEFAULT_HAND_POSE])
DEFAULT_POSE.flags.writeable = False

# ---------------------------------------------------------------- control
CONTROL_HZ = 20  # policy / retargeting rate (paper)
SIM_HZ = 120  # PD tracking rate in simulation (paper)
SUBSTEPS = SIM_HZ // CONTROL_HZ  # 6
ARM_MAX_STEP_PER_SUBSTEP = 1.0 / 120.0  # rad: the arm target moves at most this per substep
NUM_POINTS = 100  # object point-cloud size the policy sees per step (paper)
CONTEXT = 16  # policy context in control steps (paper)
# The fastest the arm's joint targets ever move in training: the per-substep
# limit at the simulation rate (1 rad/s). The robot's servo side caps its
# interpolated commands at this speed too.
ARM_MAX_VELOCITY = ARM_MAX_STEP_PER_SUBSTEP * SIM_HZ
# Real robot (DESIGN.md "Robot loop"): the 20 Hz targets are interpolated and
# sent faster than the policy runs.
ARM_SERVO_HZ = 100  # xArm servo mode (set_servo_angle_j): it executes only the latest target
HAND_SERVO_HZ = 333  # Allegro v4 CAN cycle: joint positions every 3 ms, torques sent back


@dataclass(frozen=True)
class Gains:
    kp: float
    kd: float
    effort: float  # N·m, symmetric force limit


ARM_GAINS = Gains(kp=1000.0, kd=100.0, effort=500.0)  # HOP IsaacGym values
HAND_GAINS = Gains(kp=40.0, kd=5.0, effort=0.35)  # HOP IsaacGym values


def per_joint_gains() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """kp, kd, effort, each (23,), in joint order."""
    gains = [ARM_GAINS] * NUM_ARM_JOINTS + [HAND_GAINS] * NUM_HAND_JOINTS
    return (
        np.array([g.kp for g in gains]),
        np.array([g.kd for g in gains]),
        np.array([g.effort for g in gains]),
    )


# ---------------------------------------------------------------- keypoints
# Robot keypoint sites in the MJCF model, in retargeting order: the palm/wrist,
# the four finger bases, the four fingertips (9 keypoints, as the HOP code).
KEYPOINT_SITES: tuple[str, ...] = (
    "kp_palm",
    "kp_index_base",
    "kp_middle_base",
    "kp_ring_base",
    "kp_thumb_base",
    "kp_index_tip",
    "kp_middle_tip",
    "kp_ring_tip",
    "kp_thumb_tip",
)
# Human joint (MANO/MediaPipe order: wrist 0, thumb 1-4, index 5-8, middle
# 9-12, ring 13-16, little 17-20) that each robot keypoint follows. The little
# finger has no Allegro counterpart and is dropped.
HUMAN_KEYPOINT_INDEX: tuple[int, ...] = (0, 5, 9, 13, 2, 8, 12, 16, 4)
NUM_KEYPOINTS = len(KEYPOINT_SITES)
# Human hand size is measured wrist -> middle-finger base (MCP); robot keypoint
# targets are scaled so that this length matches the robot's kp_palm ->
# kp_middle_base distance (read from the model, see ``hand_scale_reference``).
HAND_SIZE_JOINTS: tuple[int, int] = (0, 9)

# ---------------------------------------------------------------- model file
_BUILTIN_MODEL = Path(__file__).with_name("model.xml")
MODEL_ENV_VAR = "HOP_ROBOT_MODEL"


def model_path(override: str | os.PathLike | None = None) -> Path:
    """Absolute path of the MJCF model: ``override``, else ``$HOP_ROBOT_MODEL``,
    else the built-in primitive-geometry model. A user's higher-detail model
    must use the same joint and keypoint-site names (checked on load by
    ``hop_robot.embodiment.model.load_model``)."""
    chosen = override or os.environ.get(MODEL_ENV_VAR) or _BUILTIN_MODEL
    path = Path(chosen).expanduser().resolve()
    if not path.is_file():
        source = "argument" if override else (MODEL_ENV_VAR if os.environ.get(MODEL_ENV_VAR) else "built-in")
        raise FileNotFoundError(f"robot model {path} (from {source}) does not exist")
    return path


# ---------------------------------------------------------------- scaling
@dataclass(frozen=True, eq=False)
class JointScaler:
    """Joint angles <-> [-1, 1] by the joint limits: the policy's action and
    proprioception space (paper). The one implementation; the dataset, the
    exported policy, the task environments and the robot loop all use it.

    ``scale``/``unscale`` take NumPy arrays (any float dtype is kept) or torch
    tensors (via ``mid``/``half`` converted by the caller: ``torch.as_tensor(s.mid)``).
    """

    lower: np.ndarray = field(default_factory=lambda: JOINT_LOWER)
    upper: np.ndarray = field(default_factory=lambda: JOINT_UPPER)

    @property
    def mid(self) -> np.ndarray:
        """(23,) float64 centre of each joint's range."""
        return (np.asarray(self.upper, np.float64) + np.asarray(self.lower, np.float64)) / 2.0

    @property
    def half(self) -> np.ndarray:
        """(23,) float64 half-width of each joint's range."""
        return (np.asarray(self.upper, np.float64) - np.asarray(self.lower, np.float64)) / 2.0

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.shape[-1] != len(self.lower):
            raise ValueError(f"joint array must be (..., {len(self.lower)}), got {x.shape}")
        return x

    def scale(self, q: np.ndarray) -> np.ndarray:
        """Joint angles (..., 23) in radians -> [-1, 1]; float32 in, float32 out."""
        q = self._check(q)
        dtype = q.dtype if np.issubdtype(q.dtype, np.floating) else np.float64
        return ((q - self.mid.astype(dtype)) / self.half.astype(dtype)).astype(dtype, copy=False)

    def unscale(self, x: np.ndarray) -> np.ndarray:
        """[-1, 1] (..., 23) -> joint angles in radians (inverse of ``scale``)."""
        x = self._check(x)
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
        return (x * self.half.astype(dtype) + self.mid.astype(dtype)).astype(dtype, copy=False)


SCALER = JointScaler()


def scale(q: np.ndarray) -> np.ndarray:
    """Joint angles (..., 23) in radians -> [-1, 1] by the joint limits (``SCALER.scale``)."""
    return SCALER.scale(q)


def unscale(x: np.ndarray) -> np.ndarray:
    """[-1, 1] (..., 23) -> joint angles in radians (``SCALER.unscale``)."""
    return SCALER.unscale(x)


def clip_to_limits(q: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Clamp (..., 23) joint angles into [lower + margin, upper - margin]."""
    return np.clip(q, JOINT_LOWER + margin, JOINT_UPPER - margin)


@dataclass(frozen=True)
class Embodiment:
    """The facts above as one value (what ``hop-robot describe`` prints and
    what a store or an exported policy records and checks)."""

    name: str = EMBODIMENT_NAME
    joint_names: tuple[str, ...] = JOINT_NAMES
    joint_lower: tuple[float, ...] = tuple(JOINT_LOWER.tolist())
    joint_upper: tuple[float, ...] = tuple(JOINT_UPPER.tolist())
    default_pose: tuple[float, ...] = tuple(DEFAULT_POSE.tolist())
    control_hz: int = CONTROL_HZ
    sim_hz: int = SIM_HZ
    substeps: int = SUBSTEPS
    arm_max_step_per_substep: float = ARM_MAX_STEP_PER_SUBSTEP
    arm_gains: Gains = ARM_GAINS
    hand_gains: Gains = HAND_GAINS
    keypoint_sites: tuple[str, ...] = KEYPOINT_SITES
    human_keypoint_index: tuple[int, ...] = HUMAN_KEYPOINT_INDEX
    extra: dict = field(default_factory=dict)

    def to_dict(self, model: str | os.PathLike | None = None) -> dict:
        """JSON-ready description, with the absolute MJCF path."""
        return {
            "name": self.name,
            "joint_names": list(self.joint_names),
            "joint_lower": list(self.joint_lower),
            "joint_upper": list(self.joint_upper),
            "default_pose": list(self.default_pose),
            "gains": {
                "arm": {"kp": self.arm_gains.kp, "kd": self.arm_gains.kd, "effort": self.arm_gains.effort},
                "hand": {"kp": self.hand_gains.kp, "kd": self.hand_gains.kd, "effort": self.hand_gains.effort},
            },
            "control_hz": self.control_hz,
            "sim_hz": self.sim_hz,
            "substeps": self.substeps,
            "arm_max_step_per_substep": self.arm_max_step_per_substep,
            "keypoint_sites": list(self.keypoint_sites),
            "human_keypoint_index": list(self.human_keypoint_index),
            "model_path": str(model_path(model)),
        }


EMBODIMENT = Embodiment()


def mismatches(record: Mapping[str, Any], *, required: tuple[str, ...] = ("embodiment", "joint_names")) -> list[str]:
    """What in ``record`` (a store's root attributes, a checkpoint's ``hop``
    record, an exported policy's metadata) does not fit this embodiment, one
    readable line per problem; ``[]`` when it fits. The one compatibility
    check: each caller turns the list into its own error.

    Keys checked when present: ``embodiment``, ``joint_names``,
    ``joint_lower``/``joint_upper`` (to 1e-6 rad), ``control_hz``. Keys in
    ``required`` that are absent are reported as missing."""
    problems = [f"no {key!r} recorded" for key in required if key not in record]
    if "embodiment" in record and record["embodiment"] != EMBODIMENT_NAME:
        problems.append(f"embodiment {record['embodiment']!r}, expected {EMBODIMENT_NAME!r}")
    if "joint_names" in record:
        names = tuple(record["joint_names"] or ())
        if names != JOINT_NAMES:
            diff = [f"{i}: {a!r} vs {b!r}" for i, (a, b) in enumerate(zip(names, JOINT_NAMES)) if a != b]
            problems.append(
                f"joint names differ ({len(names)} recorded vs {NUM_JOINTS} here"
                + (f"; first differences {diff[:3]}" if diff else "")
                + ")"
            )
        else:
            for key, limits in (("joint_lower", JOINT_LOWER), ("joint_upper", JOINT_UPPER)):
                if key in record:
                    got = np.asarray(record[key], dtype=np.float64)
                    if got.shape != limits.shape:
                        problems.append(f"{key} has {got.size} values, expected {NUM_JOINTS}")
                    elif not np.allclose(got, limits, rtol=0, atol=1e-6):
                        bad = [JOINT_NAMES[i] for i in np.flatnonzero(~np.isclose(got, limits, rtol=0, atol=1e-6))]
                        problems.append(f"{key} differ at {bad}")
    if "control_hz" in record and record["control_hz"] != CONTROL_HZ:
        problems.append(f"control rate {record['control_hz']!r} Hz, expected {CONTROL_HZ} Hz")
    return problems
