"""Placing a human trajectory in the robot's world, one rigid transform per attempt.

The trajectory's frame (a camera, a data set's world) is first turned so that
its gravity points down (``hoi.gravity_alignment``). Each attempt then turns
it about the vertical by a yaw and moves it so that the object's first pose
sits above that attempt's table: its start position at the workspace centre
plus the attempt's offset, its lowest point the attempt's clearance above the
table top.

The yaw puts the hand's starting side toward the robot (a person reaches
from their body, the robot from its base), then adds the attempt's jitter;
with the hand starting right over the object the jitter alone decides.

What a placement must respect (checked here, before anything is simulated;
``Placement.problem`` names what is wrong):

- nothing below the table: every hand keypoint target, over the whole path,
  at least ``table_margin`` above the table top — the palm keypoint (the
  wrist end of the palm, where the wrist flange is) ``wrist_margin`` — and
  the object never below it. Where the hand (or the object later on) would dip below, the whole
  trajectory is lifted, so the object starts higher above the table; a lift
  beyond ``max_object_lift`` is refused (``under_table``). The lift does not
  depend on the yaw or the position (the table is level), so re-drawing them
  cannot help: such an attempt is rejected at once;
- the object starts on the table: its start centre at least
  ``table_edge_margin`` inside the table top's edges (``off_table``;
  re-drawn);
- the wrist path within the arm's reach (``reach.py``, by IK; ``unreachable``;
  re-drawn).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hop_robot.geometry import matrix_to_quat, quat_multiply, quat_to_matrix

from ..hoi import gravity_alignment
from .attempts import AttemptConfig, AttemptDraws

# Why a placement is refused (Placement.problem; "" where it is fine).
UNDER_TABLE = "under_table"
OFF_TABLE = "off_table"
UNREACHABLE = "unreachable"
PLACEMENT_PROBLEMS = (UNDER_TABLE, OFF_TABLE, UNREACHABLE)


@dataclass
class Placement:
    """N placements: x_robot = rot @ x + trans; ``lift`` (N,) m the trajectory
    was raised beyond the drawn clearance to keep the hand above the table;
    ``problem`` (N,) str, "" or one of ``PLACEMENT_PROBLEMS``."""

    rot: np.ndarray  # (N, 3, 3)
    trans: np.ndarray  # (N, 3)
    lift: np.ndarray  # (N,)
    problem: np.ndarray  # (N,) object array of str


def placements(
    targets: np.ndarray,
    object_pose: np.ndarray,
    object_points: np.ndarray,
    gravity: np.ndarray,
    draws: AttemptDraws,
    config: AttemptConfig,
    table_size: tuple[float, float, float] | None = None,
) -> Placement:
    """Rotations (N, 3, 3) and translations (N, 3) taking the trajectory's frame
    to the robot base frame, one per attempt, and what is wrong with each.

    targets (T, S, 3): robot keypoint targets (row 0 is the palm);
    object_pose (T, 7); object_points (P, 3) in the object frame;
    table_size: the table's full extents (x, y, thickness) for the
    on-the-table check (None: not checked)."""
    align = gravity_alignment(gravity)
    start = align @ object_pose[0, 0:3]
    palm = align @ targets[0, 0]
    toward_hand = (palm - start)[:2]
    n = len(draws.seeds)
    anchor = np.asarray(config.workspace_center) + draws.offset  # (N, 2) object start, base frame
    toward_robot = -anchor  # the base is at the origin
    if np.linalg.norm(toward_hand) > 1e-3:
        base_yaw = np.arctan2(toward_robot[:, 1], toward_robot[:, 0]) - np.arctan2(toward_hand[1], toward_hand[0])
    else:
        base_yaw = np.zeros(n)
    yaw = base_yaw + draws.yaw_jitter
    c, s = np.cos(yaw), np.sin(yaw)
    rot_z = np.zeros((n, 3, 3))
    rot_z[:, 0, 0], rot_z[:, 0, 1], rot_z[:, 1, 0], rot_z[:, 1, 1], rot_z[:, 2, 2] = c, -s, s, c, 1.0
    rot = rot_z @ align  # (N, 3, 3)
    # heights in the aligned frame (a yaw leaves them alone): the object's lowest point at
    # frame 0, and how far below it the hand keypoints and the object ever go
    obj0 = (align @ quat_to_matrix(object_pose[0, 3:7])) @ object_points.T  # (3, P)
    lowest = float((obj0[2] + start[2]).min())
    heights = targets @ align[2]  # (T, S) keypoint heights, aligned frame
    hand_low = float(heights.min())
    wrist_low = float(heights[:, 0].min())  # the palm keypoint, at the wrist end of the palm
    obj_low = _object_path_lowest(object_pose, object_points, align)
    trans = np.empty((n, 3))
    trans[:, 0:2] = anchor - (rot @ object_pose[0, 0:3])[:, 0:2]
    # placed heights above the table top (before any lift): hand = hand_low - lowest + clearance
    lift = np.maximum.reduce([
        np.zeros(n),
        config.table_margin - (hand_low - lowest + draws.clearance),
        config.wrist_margin - (wrist_low - lowest + draws.clearance),
        -(obj_low - lowest + draws.clearance),
    ])  # fmt: skip
    trans[:, 2] = draws.table_pose[:, 2] + draws.clearance - lowest + lift
    problem = np.full(n, "", dtype=object)
    if table_size is not None:
        problem[~on_table(trans[:, 0:2] + (rot @ object_pose[0, 0:3])[:, 0:2], draws.table_pose, table_size, config)] = OFF_TABLE
    problem[lift > config.max_object_lift + 1e-12] = UNDER_TABLE
    return Placement(rot, trans, lift, problem)


def _object_path_lowest(object_pose: np.ndarray, object_points: np.ndarray, align: np.ndarray) -> float:
    """Lowest z (aligned frame) of the object's points over the whole path."""
    pose = np.asarray(object_pose, dtype=np.float64)
    rot = align @ quat_to_matrix(pose[:, 3:7])  # (T, 3, 3)
    z = np.einsum("tj,pj->tp", rot[:, 2], np.asarray(object_points, dtype=np.float64))
    return float((z + (pose[:, 0:3] @ align.T)[:, 2:3]).min())


def on_table(xy: np.ndarray, table_pose: np.ndarray, table_size, config: AttemptConfig) -> np.ndarray:
    """(N,) bool: points xy (N, 2) lie on the table top, ``table_edge_margin`` inside its edges."""
    yaw = 2.0 * np.arctan2(table_pose[:, 6], table_pose[:, 3])
    d = xy - table_pose[:, 0:2]
    c, s = np.cos(yaw), np.sin(yaw)
    local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1)
    half = np.asarray(table_size[:2], dtype=np.float64) / 2.0 - config.table_edge_margin
    return np.all(np.abs(local) <= half, axis=1)


def apply_to_points(rot: np.ndarray, trans: np.ndarray, points: np.ndarray) -> np.ndarray:
    """points (T, S, 3) -> (N, T, S, 3) for each of N placements."""
    points = np.asarray(points, dtype=np.float64)
    flat = points.reshape(1, -1, 3) @ rot.transpose(0, 2, 1)  # matmul: ~3x faster than einsum here
    return flat.reshape(len(rot), *points.shape) + trans[:, None, None, :]


def apply_to_poses(rot: np.ndarray, trans: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """poses (T, 7) position + quaternion w,x,y,z -> (N, T, 7)."""
    n, t = len(rot), len(poses)
    out = np.empty((n, t, 7))
    out[..., 0:3] = np.asarray(poses[:, 0:3], dtype=np.float64)[None] @ rot.transpose(0, 2, 1) + trans[:, None, :]
    q_rot = matrix_to_quat(rot)  # (N, 4)
    out[..., 3:7] = quat_multiply(q_rot[:, None, :], poses[None, :, 3:7])
    return out
