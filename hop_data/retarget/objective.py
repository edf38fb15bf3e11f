"""The retargeting objective (HOP paper, Eq. 1), batched over attempts.

    c(a) = ½ Σ_s w_s ‖x_h,s − f_s(a)‖² + Σ_j λ_j (a_j − φ_j)²,   lower ≤ a ≤ upper

x_h: robot keypoint targets (N, S, 3) from the human hand; f: forward
kinematics of the robot keypoint sites; φ (N, 23): the joint state the
simulator reached after the previous action. w (S,): keypoint weights
(``config.keypoint_weights``; all 1 is the paper's plain sum); λ (23,): the
regulariser per joint (``config.joint_smoothness``: the arm's λ, the hand's
smaller, see there). Both solvers (the NLopt reference and the batched fast
path) minimise exactly this function.
"""

from __future__ import annotations

import numpy as np

from hop_robot.kinematics import RobotKinematics

from .config import DEFAULT_SMOOTHNESS  # λ of Eq. 1 (why this value: there)


class RetargetObjective:
    """Cost, gradient, residuals and Jacobians of Eq. 1 for N attempts.

    ``smoothness``: λ, one value for every joint or one per joint (23,).
    ``weights``: w, one per keypoint (S,), or None (all 1). The residuals
    and Jacobians are the weighted ones (√w_s times), so a least-squares
    solver needs no other change."""

    def __init__(self, kinematics: RobotKinematics, smoothness: float | np.ndarray = DEFAULT_SMOOTHNESS, weights: np.ndarray | None = None) -> None:
        lam = np.asarray(smoothness, dtype=np.float64)
        if np.any(lam < 0) or lam.ndim > 1:
            raise ValueError(f"smoothness must be >= 0, one value or one per joint, got {smoothness}")
        self.kin = kinematics
        self.smoothness = float(lam) if lam.ndim == 0 else lam
        if weights is None:
            self.weights, self._sqrt_w = None, None
        else:
            w = np.asarray(weights, dtype=np.float64)
            if w.ndim != 1 or np.any(w <= 0) or not np.all(np.isfinite(w)):
                raise ValueError(f"keypoint weights must be one positive number per keypoint, got {weights}")
            self.weights, self._sqrt_w = w, np.sqrt(w)

    def _regulariser(self, a: np.ndarray, prev: np.ndarray) -> np.ndarray:
        return np.sum(self.smoothness * (a - prev) ** 2, axis=1)

    def cost(self, a: np.ndarray, targets: np.ndarray, prev: np.ndarray) -> np.ndarray:
        """c(a) per attempt, (N,)."""
        r = targets - self.kin.sites(a)
        if self._sqrt_w is not None:
            r = r * self._sqrt_w[:, None]
        return 0.5 * np.sum(r * r, axis=(1, 2)) + self._regulariser(a, prev)

    def residuals(self, a: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weighted keypoint residuals r = √w (x_h − f(a)) (N, 3S) and J = √w ∂f/∂a (N, 3S, 23)."""
        x, jac = self.kin.sites_and_jacobians(a)
        n = a.shape[0]
        r = targets - x
        if self._sqrt_w is not None:
            r = r * self._sqrt_w[:, None]
            jac = jac * self._sqrt_w[:, None, None]
        return r.reshape(n, -1), jac.reshape(n, -1, a.shape[1])

    def cost_from_residuals(self, r: np.ndarray, a: np.ndarray, prev: np.ndarray) -> np.ndarray:
        return 0.5 * np.sum(r * r, axis=1) + self._regulariser(a, prev)

    def cost_and_gradient(self, a: np.ndarray, targets: np.ndarray, prev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """c(a) (N,) and ∇c(a) (N, 23)."""
        r, jac = self.residuals(a, targets)
        grad = -(jac.transpose(0, 2, 1) @ r[..., None])[..., 0] + 2.0 * self.smoothness * (a - prev)
        return self.cost_from_residuals(r, a, prev), grad
