"""The human hand's 21 joints in MANO / MediaPipe order: the one place for
their names, fingers, tips and tree (``hop_data.hoi`` re-exports them)."""

from __future__ import annotations

from hop_robot.embodiment import spec

# MANO / MediaPipe order; the one place for the 21 human joint names.
HUMAN_FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "little")
HUMAN_JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "little_mcp", "little_pip", "little_dip", "little_tip",
)  # fmt: skip
NUM_HUMAN_JOINTS = len(HUMAN_JOINT_NAMES)  # 21
WRIST = 0
# Joint indices of each finger, base to tip (thumb: CMC, MCP, IP, tip).
FINGER_JOINTS: dict[str, tuple[int, int, int, int]] = {
    finger: tuple(range(1 + 4 * i, 5 + 4 * i)) for i, finger in enumerate(HUMAN_FINGERS)
}
FINGERTIPS: tuple[int, ...] = (4, 8, 12, 16, 20)
FINGER_MCPS: tuple[int, ...] = (5, 9, 13, 17)  # index, middle, ring, little
# Parent of each joint in the kinematic tree (-1 for the wrist): bones for drawing / bone lengths.
HUMAN_JOINT_PARENTS: tuple[int, ...] = (
    -1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19,
)  # fmt: skip
assert spec.HAND_SIZE_JOINTS == (WRIST, FINGER_MCPS[1])  # hand size: wrist -> middle MCP
