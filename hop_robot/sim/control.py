"""The one joint control law of every simulation (retargeting, the simulated
robot, the task environments).

Actions are absolute joint targets at ``spec.CONTROL_HZ``; the simulation
PD-tracks them (``spec.ARM_GAINS``/``HAND_GAINS`` on MuJoCo position
actuators) for ``spec.SUBSTEPS`` substeps of 1/``spec.SIM_HZ`` s. As in the
HOP public code, the arm does not jump to its goal: at every substep its
internal target moves toward the goal by at most
``spec.ARM_MAX_STEP_PER_SUBSTEP`` rad per joint (1 rad/s); the hand's targets
are the goal itself.
"""

from __future__ import annotations

import numpy as np

from hop_robot.embodiment import spec

__all__ = ["RateLimitedTargets"]


class RateLimitedTargets:
    """Per-substep actuator targets for N robots from their 20 Hz goals.

    ``targets = RateLimitedTargets(n)``; ``targets.reset(q)`` when the robots
    are placed at joint angles ``q (n, 23)``; then, for each substep,
    ``ctrl = targets.substep(goal)`` with ``goal (n, 23)`` gives the ``(n, 23)``
    position-actuator targets of that substep.
    """

    def __init__(self, num: int) -> None:
        self.arm = np.zeros((int(num), spec.NUM_ARM_JOINTS))  # the arm's internal target (rad)

    def reset(self, q: np.ndarray, ids: np.ndarray | slice = slice(None)) -> None:
        """The robots ``ids`` rest at ``q (len(ids), 23)``: their arm target is where the arm is."""
        self.arm[ids] = np.asarray(q, dtype=np.float64)[..., spec.ARM]

    def substep(self, goal: np.ndarray) -> np.ndarray:
        """Advance one substep toward ``goal (n, 23)``; the actuator targets ``(n, 23)``."""
        goal = np.asarray(goal, dtype=np.float64)
        limit = spec.ARM_MAX_STEP_PER_SUBSTEP
        self.arm += np.clip(goal[..., spec.ARM] - self.arm, -limit, limit)
        return np.concatenate([self.arm, goal[..., spec.HAND]], axis=-1)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The arm's internal targets: the law's only memory, so a saved run resumes on them."""
        return {"arm": self.arm.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        arm = np.asarray(state["arm"], dtype=np.float64)
        if arm.shape != self.arm.shape:
            raise ValueError(f"arm targets must be {self.arm.shape}, got {arm.shape}")
        self.arm[:] = arm
