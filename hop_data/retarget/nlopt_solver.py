"""The reference solver: NLopt L-BFGS (``LD_LBFGS``) on one attempt at a time.

This is how the HOP paper retargets, one frame after another; it is the
baseline the batched solver is measured against (cost parity, speed).
"""

from __future__ import annotations

import nlopt
import numpy as np

from hop_robot.embodiment import spec

from .objective import RetargetObjective


class NloptSolver:
    """Solve Eq. 1 with NLopt L-BFGS, one attempt after another.

    A step on which NLopt raises keeps the best point it reached (or the
    previous solution) and is counted in ``failures``. NLopt's exceptions do
    not share a base class with ``RuntimeError`` in every release (2.11), so
    every exception from ``optimize`` is caught.
    """

    def __init__(self, objective: RetargetObjective, ftol_abs: float = 1e-12, xtol_rel: float = 1e-8, max_evaluations: int = 300) -> None:
        self.objective = objective
        self.ftol_abs, self.xtol_rel, self.max_evaluations = ftol_abs, xtol_rel, max_evaluations
        self.failures = 0
        self.evaluations = 0

    def _solve_one(self, target: np.ndarray, prev: np.ndarray, init: np.ndarray) -> np.ndarray:
        obj = self.objective
        best = {"x": None, "f": np.inf}

        def f(x: np.ndarray, grad: np.ndarray) -> float:
            self.evaluations += 1
            cost, g = obj.cost_and_gradient(x[None], target[None], prev[None])
            if grad.size:
                grad[:] = g[0]
            if cost[0] < best["f"]:
                best["x"], best["f"] = x.copy(), float(cost[0])
            return float(cost[0])

        opt = nlopt.opt(nlopt.LD_LBFGS, spec.NUM_JOINTS)
        opt.set_lower_bounds(spec.JOINT_LOWER)
        opt.set_upper_bounds(spec.JOINT_UPPER)
        opt.set_min_objective(f)
        opt.set_ftol_abs(self.ftol_abs)
        opt.set_xtol_rel(self.xtol_rel)
        opt.set_maxeval(self.max_evaluations)
        x0 = np.clip(init, spec.JOINT_LOWER, spec.JOINT_UPPER)
        try:
            return opt.optimize(x0)
        except Exception:  # noqa: BLE001 - nlopt errors are not RuntimeErrors in every release
            self.failures += 1
            return best["x"] if best["x"] is not None else x0

    def solve(self, targets: np.ndarray, prev: np.ndarray, init: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Same contract as ``BatchedSolver.solve``: (N, 23) solutions and (N,) costs."""
        init = prev if init is None else init
        a = np.stack([self._solve_one(targets[i], prev[i], init[i]) for i in range(len(prev))])
        return a, self.objective.cost(a, targets, prev)
