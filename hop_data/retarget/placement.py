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
"""

from __future__ import annotations

import numpy as np

from hop_robot.geometry import matrix_to_quat, quat_multiply, quat_to_matrix

from ..hoi import gravity_alignment
from .attempts import AttemptConfig, AttemptDraws


def placements(
    targets: np.ndarray,
    object_pose: np.ndarray,
    object_points: np.ndarray,
    gravity: np.ndarray,
    draws: AttemptDraws,
    config: AttemptConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Rotations (N, 3, 3) and translations (N, 3) taking the trajectory's frame
    to the robot base frame, one per attempt.

    targets (T, S, 3): robot keypoint targets (row 0 is the palm);
    object_pose (T, 7); object_points (P, 3) in the object frame."""
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
    # the object's points at frame 0, in the aligned frame: their lowest z
    obj0 = (align @ quat_to_matrix(object_pose[0, 3:7])) @ object_points.T  # (3, P)
    lowest = float((obj0[2] + start[2]).min())
    trans = np.empty((n, 3))
    trans[:, 0:2] = anchor - (rot @ object_pose[0, 0:3])[:, 0:2]
    trans[:, 2] = draws.table_pose[:, 2] + draws.clearance - lowest
    return rot, trans


def apply_to_points(rot: np.ndarray, trans: np.ndarray, points: np.ndarray) -> np.ndarray:
    """points (T, S, 3) -> (N, T, S, 3) for each of N placements."""
    return np.einsum("nij,tsj->ntsi", rot, points) + trans[:, None, None, :]


def apply_to_poses(rot: np.ndarray, trans: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """poses (T, 7) position + quaternion w,x,y,z -> (N, T, 7)."""
    n, t = len(rot), len(poses)
    out = np.empty((n, t, 7))
    out[..., 0:3] = np.einsum("nij,tj->nti", rot, poses[:, 0:3]) + trans[:, None, :]
    q_rot = matrix_to_quat(rot)  # (N, 4)
    out[..., 3:7] = quat_multiply(q_rot[:, None, :], poses[None, :, 3:7])
    return out
