"""Arm + hand as one 23-joint robot: the xArm7 (joints 0-6) with the Allegro (7-22)."""

from __future__ import annotations

import logging

import numpy as np

from hop_robot.embodiment import spec

from .base import Driver, JointState

__all__ = ["ArmHandRobot"]

log = logging.getLogger(__name__)


class ArmHandRobot(Driver):
    """``Driver`` over an arm driver (``spec.ARM`` joints) and a hand driver
    (``spec.HAND`` joints). Connects the arm first and the hand second;
    stops both (each even if the other fails) and disconnects both."""

    name = "arm+hand"

    def __init__(self, arm: Driver, hand: Driver) -> None:
        if arm.num_joints != spec.NUM_ARM_JOINTS or hand.num_joints != spec.NUM_HAND_JOINTS:
            raise ValueError(f"arm must drive {spec.NUM_ARM_JOINTS} joints and hand {spec.NUM_HAND_JOINTS}, "
                             f"got {arm.num_joints} and {hand.num_joints}")  # fmt: skip
        if arm.read_only != hand.read_only:
            raise ValueError("arm and hand must both be read-only or both not")
        super().__init__(spec.JOINT_LOWER, spec.JOINT_UPPER, read_only=arm.read_only)
        self.arm, self.hand = arm, hand
        self.name = f"{arm.name}+{hand.name}"

    def _connect(self) -> None:
        self.arm.connect()
        self.hand.connect()

    def _observe(self) -> JointState:
        a, h = self.arm.observe(), self.hand.observe()
        return JointState(np.concatenate([a.q, h.q]), min(a.stamp, h.stamp), {"arm": a.extra, "hand": h.extra})

    def _act(self, targets: np.ndarray) -> None:
        self.arm.act(targets[spec.ARM])
        self.hand.act(targets[spec.HAND])

    def _both(self, method: str) -> None:
        errors = []
        for part in (self.arm, self.hand):
            try:
                getattr(part, method)()
            except Exception as exc:  # noqa: BLE001 - the other part must still be handled
                log.exception("%s.%s failed", part.name, method)
                errors.append(exc)
        if errors:
            raise errors[0]

    def _stop(self) -> None:
        self._both("stop")

    def emergency_stop(self) -> None:
        with self._state_lock:
            self._stopped = True
        self._both("emergency_stop")

    def _disconnect(self) -> None:
        self._both("disconnect")
