"""The retargeting objective (HOP paper, Eq. 1), batched over attempts.

    c(a) = ½ Σ_s ‖x_h,s − f_s(a)‖² + λ ‖a − φ‖²,   lower ≤ a ≤ upper

x_h: robot keypoint targets (N, S, 3) from the human hand; f: forward
kinematics of the robot keypoint sites; φ (N, 23): the joint state the
simulator reached after the previous action. Both solvers (the NLopt
reference and the batched fast path) minimise exactly this function.
"""

from __future__ import annotations

import numpy as np

from hop_robot.kinematics import RobotKinematics

from .config import DEFAULT_SMOOTHNESS  # λ of Eq. 1 (why this value: there)


class RetargetObjective:
    """Cost, gradient, residuals and Jacobians of Eq. 1 for N attempts."""

    def __init__(self, kinematics: RobotKinematics, smoothness: float = DEFAULT_SMOOTHNESS) -> None:
        if smoothness < 0:
            raise ValueError(f"smoothness must be >= 0, got {smoothness}")
        self.kin = kinematics
        self.smoothness = float(smoothness)

    def cost(self, a: np.ndarray, targets: np.ndarray, prev: np.ndarray) -> np.ndarray:
        """c(a) per attempt, (N,)."""
        r = targets - self.kin.sites(a)
        return 0.5 * np.sum(r * r, axis=(1, 2)) + self.smoothness * np.sum((a - prev) ** 2, axis=1)

    def residuals(self, a: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoint residuals r = x_h − f(a) (N, 3S) and J = ∂f/∂a (N, 3S, 23)."""
        x, jac = self.kin.sites_and_jacobians(a)
        n = a.shape[0]
        return (targets - x).reshape(n, -1), jac.reshape(n, -1, a.shape[1])

    def cost_from_residuals(self, r: np.ndarray, a: np.ndarray, prev: np.ndarray) -> np.ndarray:
        return 0.5 * np.sum(r * r, axis=1) + self.smoothness * np.sum((a - prev) ** 2, axis=1)

    def cost_and_gradient(self, a: np.ndarray, targets: np.ndarray, prev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """c(a) (N,) and ∇c(a) (N, 23)."""
        r, jac = self.residuals(a, targets)
        grad = -(jac.transpose(0, 2, 1) @ r[..., None])[..., 0] + 2.0 * self.smoothness * (a - prev)
        return self.cost_from_residuals(r, a, prev), grad
