"""Batched forward kinematics and site Jacobians of the robot.

Built once from a compiled ``mujoco.MjModel`` (so the MJCF stays the only
source of link geometry), then evaluated for many joint configurations at
once: retargeting solves 700 attempts per step with it, and the robot's safety
layer uses it for the palm workspace box. Agrees with ``mj_kinematics`` and
``mj_jacSite`` to machine precision (tested).

Two implementations of the same arithmetic: NumPy (always there; the robot
side needs nothing more) and a compiled Numba loop (``_kinematics_jit``),
used when Numba is installed (the ``data`` extra), several times faster at
retargeting sizes (``bench/retarget.py``).

Shapes: ``q (N, 23)`` in ``spec.JOINT_NAMES`` order -> ``sites (N, S, 3)``,
``jac (N, S, 3, 23)``.
"""

from __future__ import annotations

import mujoco
import numpy as np

from hop_robot.embodiment import spec

try:  # the compiled path, when Numba is installed
    from hop_robot import _kinematics_jit
except ImportError:  # pragma: no cover - exercised where numba is absent
    _kinematics_jit = None


class RobotKinematics:
    """Forward kinematics of named sites of the robot for batches of joint angles.

    Every robot joint sits on its own body. Bodies without a joint are folded
    into the nearest jointed ancestor at construction, and jointed bodies are
    grouped by depth, so a forward pass is one vectorised update per tree
    level (7 arm levels, then the 4 fingers side by side), not per body.
    """

    def __init__(
        self, model: mujoco.MjModel, sites: tuple[str, ...] = spec.KEYPOINT_SITES, backend: str = "auto"
    ) -> None:
        if backend not in ("auto", "numpy", "numba"):
            raise ValueError(f"backend must be 'auto', 'numpy' or 'numba', got {backend!r}")
        if backend == "numba" and _kinematics_jit is None:
            raise ImportError("backend='numba' needs the numba package (pip install numba)")
        self.backend = "numpy" if backend == "numpy" or _kinematics_jit is None else "numba"
        jbody = {}  # joint index (spec order) -> MuJoCo body id
        for i, name in enumerate(spec.JOINT_NAMES):
            jid = model.joint(name).id
            if model.jnt_type[jid] != mujoco.mjtJoint.mjJNT_HINGE:
                raise ValueError(f"robot joint {name!r} must be a hinge joint")
            b = int(model.jnt_bodyid[jid])
            if model.body_jntnum[b] != 1:
                raise ValueError(f"body {model.body(b).name!r} must carry exactly one joint")
            jbody[i] = b
        joint_of_body = {b: j for j, b in jbody.items()}

        def local(b: int) -> tuple[np.ndarray, np.ndarray]:
            rot = np.empty(9)
            mujoco.mju_quat2Mat(rot, model.body_quat[b])
            return rot.reshape(3, 3), model.body_pos[b].copy()

        def up_to_joint(b: int) -> tuple[int, np.ndarray, np.ndarray]:
            """Nearest jointed strict ancestor (joint index, -1 = world) and the
            fixed transform from its frame to body b's parent frame."""
            rot, pos = np.eye(3), np.zeros(3)
            parent = int(model.body_parentid[b])
            while parent > 0 and parent not in joint_of_body:
                r, p = local(parent)
                rot, pos = r @ rot, r @ pos + p
                parent = int(model.body_parentid[parent])
            return (joint_of_body[parent] if parent > 0 else -1), rot, pos

        parent = np.full(spec.NUM_JOINTS, -1)
        base_rot = np.empty((spec.NUM_JOINTS, 3, 3))  # joint body frame at q = 0, in the parent joint's frame
        base_pos = np.empty((spec.NUM_JOINTS, 3))
        axis = np.empty((spec.NUM_JOINTS, 3))
        anchor = np.empty((spec.NUM_JOINTS, 3))
        for j, b in jbody.items():
            parent[j], frot, fpos = up_to_joint(b)
            r, p = local(b)
            base_rot[j], base_pos[j] = frot @ r, frot @ p + fpos
            jid = model.body_jntadr[b]
            axis[j] = model.jnt_axis[jid] / np.linalg.norm(model.jnt_axis[jid])
            anchor[j] = model.jnt_pos[jid]
        depth = np.zeros(spec.NUM_JOINTS, dtype=int)
        for j in range(spec.NUM_JOINTS):
            k = parent[j]
            while k >= 0:
                depth[j] += 1
                k = parent[k]
        self._levels = [np.flatnonzero(depth == d) for d in range(depth.max() + 1)]
        self._parent = parent
        # Rotation about the joint by q in the parent frame, Rodrigues:
        #   base_rot (I + sin q K + (1 - cos q) K²),
        # and the body origin moves so that the anchor stays fixed:
        #   pos(q) = base_pos − base_rot (sin q K + (1 - cos q) K²) anchor.
        skew = np.zeros((spec.NUM_JOINTS, 3, 3))
        skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
        skew -= skew.transpose(0, 2, 1)
        rot_terms = np.stack([base_rot, base_rot @ skew, base_rot @ skew @ skew], axis=1)  # (23, 3, 3, 3)
        pos_terms = np.stack(
            [base_pos, -np.einsum("jab,jb->ja", rot_terms[:, 1], anchor), -np.einsum("jab,jb->ja", rot_terms[:, 2], anchor)],
            axis=1,
        )  # (23, 3, 3)
        # One small matrix product per level: [1, sin q, 1 - cos q] @ terms
        self._rot_terms = rot_terms.reshape(spec.NUM_JOINTS, 3, 9)
        self._pos_terms = pos_terms
        self._axis = axis
        self._anchor = anchor

        site_ids = [model.site(s).id for s in sites]
        self._site_joint = np.empty(len(site_ids), dtype=int)
        self._site_pos = np.empty((len(site_ids), 3))
        for s, sid in enumerate(site_ids):
            b = int(model.site_bodyid[sid])
            if b in joint_of_body:
                j, rot, pos = joint_of_body[b], np.eye(3), np.zeros(3)
            else:  # a site on a fixed body: express it in the jointed ancestor's frame
                j, frot, fpos = up_to_joint(b)
                r, p = local(b)
                rot, pos = frot @ r, frot @ p + fpos
            if j < 0:
                raise ValueError(f"site {sites[s]!r} is not moved by any robot joint")
            self._site_joint[s] = j
            self._site_pos[s] = rot @ model.site_pos[sid] + pos
        # (site, joint) pairs where the joint moves the site: the Jacobian's non-zeros
        pairs = []
        for s, j in enumerate(self._site_joint):
            while j >= 0:
                pairs.append((s, j))
                j = parent[j]
        self._pair_site, self._pair_joint = np.array(pairs).T
        self._order = np.concatenate(self._levels)
        self.site_names = tuple(sites)

    def _compiled(self, q: np.ndarray, want_jac: bool) -> tuple[np.ndarray, np.ndarray]:
        return _kinematics_jit.sites_and_jacobians(
            np.ascontiguousarray(q), self._order, self._parent, self._rot_terms, self._pos_terms,
            self._axis, self._anchor, self._site_joint, self._site_pos, self._pair_site, self._pair_joint, want_jac,
        )  # fmt: skip

    @property
    def num_sites(self) -> int:
        return len(self.site_names)

    def _frames(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World rotations (23, N, 3, 3) and origins (23, N, 3) of the joint bodies."""
        n = q.shape[0]
        rots = np.empty((spec.NUM_JOINTS, n, 3, 3))
        poss = np.empty((spec.NUM_JOINTS, n, 3))
        for level in self._levels:
            angle = q[:, level].T  # (L, N)
            coef = np.stack([np.ones_like(angle), np.sin(angle), 1.0 - np.cos(angle)], axis=-1)  # (L, N, 3)
            local_rot = (coef @ self._rot_terms[level]).reshape(len(level), n, 3, 3)
            local_pos = coef @ self._pos_terms[level]
            parents = self._parent[level]
            if parents[0] < 0:  # the root level hangs from the world
                rots[level], poss[level] = local_rot, local_pos
            else:
                pr = rots[parents]
                rots[level] = pr @ local_rot
                poss[level] = poss[parents] + (pr @ local_pos[..., None])[..., 0]
        return rots, poss

    def sites(self, q: np.ndarray) -> np.ndarray:
        """Site positions (N, S, 3) for joint angles q (N, 23)."""
        if self.backend == "numba":
            return self._compiled(self._check(q), False)[0]
        rots, poss = self._frames(self._check(q))
        return self._site_positions(rots, poss).transpose(1, 0, 2)

    def _site_positions(self, rots: np.ndarray, poss: np.ndarray) -> np.ndarray:
        j = self._site_joint
        return poss[j] + (rots[j] @ self._site_pos[:, None, :, None])[..., 0]  # (S, N, 3)

    def sites_and_jacobians(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Site positions (N, S, 3) and their Jacobians (N, S, 3, 23) w.r.t. q."""
        q = self._check(q)
        if self.backend == "numba":
            return self._compiled(q, True)
        rots, poss = self._frames(q)
        x = self._site_positions(rots, poss)  # (S, N, 3)
        omega = (rots @ self._axis[:, None, :, None])[..., 0]  # (23, N, 3) world joint axes
        origin = poss + (rots @ self._anchor[:, None, :, None])[..., 0]  # (23, N, 3) joint anchors
        ps, pj = self._pair_site, self._pair_joint
        w, d = omega[pj], x[ps] - origin[pj]  # (pairs, N, 3)
        cross = np.stack(
            [w[..., 1] * d[..., 2] - w[..., 2] * d[..., 1],
             w[..., 2] * d[..., 0] - w[..., 0] * d[..., 2],
             w[..., 0] * d[..., 1] - w[..., 1] * d[..., 0]],
            axis=-1,
        )  # fmt: skip
        jac = np.zeros((q.shape[0], self.num_sites, 3, spec.NUM_JOINTS))
        jac[:, ps, :, pj] = cross  # advanced indices first: (pairs, N, 3)
        return x.transpose(1, 0, 2), jac

    @staticmethod
    def _check(q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        if q.ndim != 2 or q.shape[1] != spec.NUM_JOINTS:
            raise ValueError(f"q must be (N, {spec.NUM_JOINTS}), got {q.shape}")
        return q
