"""Is a placed wrist path within the arm's reach? Checked by IK before simulating.

The hand's pose is fixed by the palm keypoints that sit on the palm: the palm
site and the index, middle and ring finger bases (the thumb base swings
with the thumb). A human hand's 4 points (scaled to the robot's size) never
match the robot's layout exactly — that mismatch is 1.5-3.5 cm whether the
arm can get there or not — so the check asks for the robot's own layout
placed where the human hand is: per sample frame, the rigid fit (Kabsch) of
the robot's 4 keypoints (at the default pose) onto the human targets. That
pose is reachable exactly when the IK brings the 4 keypoints onto it.

For each attempt the check solves the arm's IK (7 joints, the fingers at
the default pose, where the fitted layout is exact; a bounded
Levenberg-Marquardt on all attempts at once, joint limits by projection)
along a few samples of the path — the first frame, one every
``reach_period_s``, the last — each warm-started from the previous
sample's solution, the first from the attempt's initial arm pose. The path
is reachable when the mean distance of the 4 keypoints to the fitted pose
stays under ``reach_tolerance`` at every sample. The check also reports how
low the forearm and wrist (the bodies of joints 5-7) come at those poses
(the step where the hand is lowest is always a sample): placement lifts the
path where they would come within ``arm_clearance`` of the table.

Every attempt is solved on its own (the batched solver's rows never mix), so
the verdict of an attempt does not depend on the batch it is checked in.
"""

from __future__ import annotations

import mujoco
import numpy as np

from hop_robot.embodiment import spec
from hop_robot.kinematics import RobotKinematics


# the arm links whose collision geometry is kept clear of the table: the forearm and wrist
# (the bodies of joints 5-7); the links nearer the base stay far above it in every grasp
CLEARANCE_LINKS = spec.ARM_LINK_NAMES[4:7]


class ArmGeometry:
    """How low the collision geometry of arm links reaches, from their frames.

    Each collision geom of the ``links`` bodies (primitives: sphere, capsule,
    cylinder, box, ellipsoid; others by their bounding sphere) is rigid in its
    link's frame, so its lowest point follows from the link's world rotation
    and origin: the centre's height less the geom's half-extent along the
    vertical. The joint origins alone say little: link6's capsule and
    cylinder reach up to 14 cm from its origin, lower or higher with the wrist's
    tilt."""

    def __init__(self, model: mujoco.MjModel, links: tuple[str, ...] = CLEARANCE_LINKS) -> None:
        data = mujoco.MjData(model)
        mujoco.mj_kinematics(model, data)
        joint_of = {int(model.jnt_bodyid[model.joint(name).id]): j for j, name in enumerate(spec.JOINT_NAMES)}
        bodies = {int(model.body(name).id) for name in links}
        rows = []
        for g in range(model.ngeom):
            b = int(model.geom_bodyid[g])
            if b not in bodies or not (model.geom_contype[g] or model.geom_conaffinity[g]):
                continue
            rb, rg = data.xmat[b].reshape(3, 3), data.geom_xmat[g].reshape(3, 3)
            rows.append((joint_of[b], rb.T @ (data.geom_xpos[g] - data.xpos[b]), rb.T @ rg, int(model.geom_type[g]), model.geom_size[g].copy(), float(model.geom_rbound[g])))
        if not rows:
            raise ValueError(f"no collision geometry on the links {links}")
        self.joint = np.array([r[0] for r in rows])
        self.pos = np.stack([r[1] for r in rows])  # (G, 3) in the link frame
        self.rot = np.stack([r[2] for r in rows])  # (G, 3, 3) geom axes in the link frame
        self.type = np.array([r[3] for r in rows])
        self.size = np.stack([r[4] for r in rows])
        self.rbound = np.array([r[5] for r in rows])

    def lowest(self, rots: np.ndarray, poss: np.ndarray) -> np.ndarray:
        """Joint-body frames (``RobotKinematics._frames``: (23, N, 3, 3), (23, N, 3))
        -> (N,) the lowest height any of the geoms reaches."""
        zrow = rots[self.joint, :, 2, :]  # (G, N, 3): the world z row of each link's rotation
        centre = poss[self.joint, :, 2] + np.einsum("gnj,gj->gn", zrow, self.pos)
        axes = np.einsum("gnj,gjk->gnk", zrow, self.rot)  # (G, N, 3): world z of the geom's axes
        az = np.abs(axes[..., 2])
        size = self.size[:, None, :]
        t = self.type[:, None]
        extent = np.select(
            [t == mujoco.mjtGeom.mjGEOM_SPHERE, t == mujoco.mjtGeom.mjGEOM_CAPSULE, t == mujoco.mjtGeom.mjGEOM_CYLINDER,
             t == mujoco.mjtGeom.mjGEOM_BOX, t == mujoco.mjtGeom.mjGEOM_ELLIPSOID],
            [size[..., 0] + 0 * az, az * size[..., 1] + size[..., 0],
             az * size[..., 1] + size[..., 0] * np.sqrt(np.clip(1.0 - az**2, 0.0, 1.0)),
             np.sum(np.abs(axes) * size, axis=-1), np.sqrt(np.sum((axes * size) ** 2, axis=-1))],
            self.rbound[:, None] + 0 * az,
        )  # fmt: skip
        return (centre - extent).min(axis=0)


PALM_SITES = ("kp_palm", "kp_index_base", "kp_middle_base", "kp_ring_base")
PALM_KEYPOINTS = tuple(spec.KEYPOINT_SITES.index(s) for s in PALM_SITES)


class ReachCheck:
    """IK reachability of placed wrist paths; built once per retargeter."""

    def __init__(self, model, tolerance: float, period_s: float, iterations: int = 30) -> None:
        self.kinematics = RobotKinematics(model, sites=PALM_SITES)
        self.geometry = ArmGeometry(model)
        self.tolerance = float(tolerance)
        self.iterations = int(iterations)
        self.period = max(1, int(round(period_s * spec.CONTROL_HZ)))
        self.layout = self.kinematics.sites(spec.DEFAULT_POSE[None])[0]  # (4, 3) the robot's palm keypoints
        self.lower, self.upper = spec.JOINT_LOWER[spec.ARM], spec.JOINT_UPPER[spec.ARM]

    def fitted(self, goal: np.ndarray) -> np.ndarray:
        """goal (N, 4, 3) human palm keypoints -> (N, 4, 3) the robot's layout
        rigidly fitted onto them (least squares, no scaling)."""
        src = self.layout - self.layout.mean(axis=0)
        centre = goal.mean(axis=1, keepdims=True)
        h = np.einsum("pi,npj->nij", src, goal - centre)
        u, _, vt = np.linalg.svd(h)
        d = np.sign(np.linalg.det(u @ vt))
        u[:, :, -1] *= d[:, None]
        rot = np.transpose(u @ vt, (0, 2, 1))
        return np.einsum("nij,pj->npi", rot, src) + centre

    def samples(self, steps: int, lowest: int | None = None) -> np.ndarray:
        """Indices of the path steps checked (and the step where the hand is lowest)."""
        extra = [steps - 1] if lowest is None else [steps - 1, lowest]
        return np.unique(np.concatenate([np.arange(0, steps, self.period), extra]))

    def _solve(self, goal: np.ndarray, arm: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray]:
        """Arm joints (N, 7) bringing the palm keypoints onto goal (N, 4, 3), and
        the mean keypoint distance (N,) they leave."""
        n = len(arm)
        q = np.tile(spec.DEFAULT_POSE, (n, 1))
        q[:, spec.ARM] = arm
        x, jac = self.kinematics.sites_and_jacobians(q)
        r = (goal - x).reshape(n, -1)
        cost = np.sum(r * r, axis=1)
        mu = np.full(n, 1e-3)
        active = np.arange(n)
        eye = np.eye(arm.shape[1])
        for _ in range(iterations):
            if not active.size:
                break
            j = jac[active][..., spec.ARM].reshape(len(active), -1, arm.shape[1])
            jt = j.transpose(0, 2, 1)
            hess = jt @ j
            grad = (jt @ r[active][..., None])[..., 0]
            qa = q[active][:, spec.ARM]
            # active set: a joint at a limit that the descent direction pushes further out is frozen
            free = ~(((qa <= self.lower + 1e-12) & (grad < 0)) | ((qa >= self.upper - 1e-12) & (grad > 0)))
            keep = free[:, :, None] & free[:, None, :]
            diag = np.diagonal(hess, axis1=1, axis2=2)
            system = np.where(keep, hess, 0.0) + (mu[active, None] * diag + 1e-9 + ~free)[:, :, None] * eye
            step = np.linalg.solve(system, (grad * free)[..., None])[..., 0]
            trial = np.clip(qa + step, self.lower, self.upper)
            qt = q[active].copy()
            qt[:, spec.ARM] = trial
            xt, jt_ = self.kinematics.sites_and_jacobians(qt)
            rt = (goal[active] - xt).reshape(len(active), -1)
            ct = np.sum(rt * rt, axis=1)
            better = ct < cost[active]
            idx = active[better]
            gain = cost[active] - ct
            q[idx], r[idx], jac[idx], cost[idx] = qt[better], rt[better], jt_[better], ct[better]
            mu[active] = np.where(better, np.maximum(mu[active] * 0.3, 1e-9), mu[active] * 10.0)
            done = (better & (gain < 1e-10)) | (mu[active] > 1e6) | (cost[active] < 1e-8)
            active = active[~done]
        err = np.linalg.norm(r.reshape(n, -1, 3), axis=-1).mean(axis=1)
        return q[:, spec.ARM], err

    def residuals(self, path: np.ndarray, init_qpos: np.ndarray) -> np.ndarray:
        """path (N, K, 9, 3) robot keypoint targets (placed) at the sample steps
        (``samples``), init_qpos (N, 23) -> (N,) the worst mean distance (m) of
        the palm keypoints to the asked hand pose over the samples."""
        return self.check(path, init_qpos)[0]

    def check(self, path: np.ndarray, init_qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(worst residual (N,) m, lowest height (N,) m of the forearm and wrist
        joints — the bodies of joints 5-7 — at the IK poses of the samples)."""
        n = path.shape[0]
        if n == 0:
            return np.zeros(0), np.zeros(0)
        arm = np.asarray(init_qpos, dtype=np.float64)[:, spec.ARM]
        worst = np.zeros(n)
        low = np.full(n, np.inf)
        q = np.tile(spec.DEFAULT_POSE, (n, 1))
        for k in range(path.shape[1]):
            goal = self.fitted(path[:, k][:, PALM_KEYPOINTS])
            arm, err = self._solve(goal, arm, 3 * self.iterations if k == 0 else self.iterations)
            worst = np.maximum(worst, err)
            q[:, spec.ARM] = arm
            low = np.minimum(low, self.geometry.lowest(*self.kinematics._frames(q)))
        return worst, low

    def unreachable(self, path: np.ndarray, init_qpos: np.ndarray) -> np.ndarray:
        """(N,) bool: at some sample the arm cannot bring the hand within the tolerance."""
        return self.residuals(path, init_qpos) > self.tolerance
