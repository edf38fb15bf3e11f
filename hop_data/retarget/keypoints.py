"""Human hand joints -> robot keypoint targets (the x_h of Eq. 1).

The 9 robot keypoints (palm, 4 finger bases, 4 fingertips; the little finger
is dropped) follow the human joints named in ``spec.HUMAN_KEYPOINT_INDEX``.
The human hand is scaled about its wrist so that its size (wrist -> middle
MCP) matches the robot's (``kp_palm`` -> ``kp_middle_base``): the Allegro is
about 1.3x a human hand, and unscaled fingertip targets would curl its
fingers into the palm.
"""

from __future__ import annotations

import numpy as np

from hop_robot.embodiment import spec

from ..hoi import hand_size


def robot_keypoint_targets(hand_joints: np.ndarray, robot_hand_size: float) -> np.ndarray:
    """Human joints (T, 21, 3) -> robot keypoint targets (T, 9, 3), same frame.

    Scaled about the wrist by robot_hand_size / human_hand_size."""
    hand_joints = np.asarray(hand_joints, dtype=np.float64)
    if hand_joints.ndim != 3 or hand_joints.shape[1:] != (21, 3):
        raise ValueError(f"hand_joints must be (T, 21, 3), got {hand_joints.shape}")
    size = hand_size(hand_joints)
    if not np.isfinite(size) or size <= 0.0:
        raise ValueError("hand size is undefined: no frame shows both the wrist and the middle MCP")
    scale = robot_hand_size / size
    wrist = hand_joints[:, spec.HAND_SIZE_JOINTS[0], None]
    chosen = hand_joints[:, list(spec.HUMAN_KEYPOINT_INDEX)]
    return wrist + scale * (chosen - wrist)
