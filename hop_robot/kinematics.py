"""Batched forward kinematics and site Jacobians of the robot, in NumPy.

Built once from a compiled ``mujoco.MjModel`` (so the MJCF stays the only
source of link geometry), then evaluated for many joint configurations at
once: retargeting solves 700 attempts per step with it, and the robot's safety
layer uses it for the palm workspace box. Agrees with ``mj_kinematics`` and
``mj_jacSite`` to machine precision (tested).

Shapes: ``q (N, 23)`` in ``spec.JOINT_NAMES`` order -> ``sites (N, S, 3)``,
``jac (N, S, 3, 23)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from hop_robot.embodiment import spec


def _axis_rotations(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotations (N, 3, 3) by ``angle`` (N,) about the unit ``axis`` (3,)."""
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + s * k + (1.0 - c) * (k @ k)


@dataclass(frozen=True)
class _Body:
    parent: int  # index into the chain's body list, -1 for the world
    pos: np.ndarray  # (3,) in the parent frame
    rot: np.ndarray  # (3, 3) in the parent frame
    joint: int  # index into q, or -1 for a fixed body
    axis: np.ndarray  # (3,) joint axis in the body frame
    anchor: np.ndarray  # (3,) joint anchor in the body frame


class RobotKinematics:
    """Forward kinematics of named sites of the robot for batches of joint angles."""

    def __init__(self, model: mujoco.MjModel, sites: tuple[str, ...] = spec.KEYPOINT_SITES) -> None:
        joint_of_qpos = {}
        for i, name in enumerate(spec.JOINT_NAMES):
            jid = model.joint(name).id
            if model.jnt_type[jid] != mujoco.mjtJoint.mjJNT_HINGE:
                raise ValueError(f"robot joint {name!r} must be a hinge joint")
            joint_of_qpos[jid] = i
        site_ids = [model.site(s).id for s in sites]
        needed: set[int] = set()
        for sid in site_ids:
            b = int(model.site_bodyid[sid])
            while b > 0:
                needed.add(b)
                b = int(model.body_parentid[b])
        order = sorted(needed)  # MuJoCo numbers parents before children
        slot = {b: i for i, b in enumerate(order)}
        bodies = []
        for b in order:
            jnum, jadr = int(model.body_jntnum[b]), int(model.body_jntadr[b])
            if jnum > 1:
                raise ValueError(f"body {model.body(b).name!r} has {jnum} joints; the robot chain allows one")
            joint, axis, anchor = -1, np.zeros(3), np.zeros(3)
            if jnum == 1:
                if jadr not in joint_of_qpos:
                    raise ValueError(f"joint {model.joint(jadr).name!r} on the robot chain is not a robot joint")
                joint, axis, anchor = joint_of_qpos[jadr], model.jnt_axis[jadr].copy(), model.jnt_pos[jadr].copy()
            rot = np.empty(9)
            mujoco.mju_quat2Mat(rot, model.body_quat[b])
            bodies.append(
                _Body(
                    parent=slot.get(int(model.body_parentid[b]), -1),
                    pos=model.body_pos[b].copy(),
                    rot=rot.reshape(3, 3),
                    joint=joint,
                    axis=axis / np.linalg.norm(axis) if joint >= 0 else axis,
                    anchor=anchor,
                )
            )
        self._bodies = bodies
        self._site_body = np.array([slot[int(model.site_bodyid[s])] for s in site_ids])
        self._site_pos = np.stack([model.site_pos[s] for s in site_ids])  # (S, 3) body frame
        # ancestors[s, j]: joint j moves site s
        ancestors = np.zeros((len(site_ids), spec.NUM_JOINTS), dtype=bool)
        for s, b in enumerate(self._site_body):
            while b >= 0:
                if bodies[b].joint >= 0:
                    ancestors[s, bodies[b].joint] = True
                b = bodies[b].parent
        self._moves = ancestors
        self._joint_body = np.full(spec.NUM_JOINTS, -1)
        for i, body in enumerate(bodies):
            if body.joint >= 0:
                self._joint_body[body.joint] = i
        self.site_names = tuple(sites)

    @property
    def num_sites(self) -> int:
        return len(self.site_names)

    def _frames(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World rotations (B, N, 3, 3) and positions (B, N, 3) of every chain body."""
        n = q.shape[0]
        rots = np.empty((len(self._bodies), n, 3, 3))
        poss = np.empty((len(self._bodies), n, 3))
        for i, body in enumerate(self._bodies):
            if body.parent < 0:
                r = np.broadcast_to(body.rot, (n, 3, 3))
                p = np.broadcast_to(body.pos, (n, 3))
            else:
                pr, pp = rots[body.parent], poss[body.parent]
                r = pr @ body.rot
                p = pp + pr @ body.pos
            if body.joint >= 0:
                rj = r @ _axis_rotations(body.axis, q[:, body.joint])
                # rotation about the joint anchor, not the body origin
                p = p + r @ body.anchor - rj @ body.anchor
                r = rj
            rots[i], poss[i] = r, p
        return rots, poss

    def sites(self, q: np.ndarray) -> np.ndarray:
        """Site positions (N, S, 3) for joint angles q (N, 23)."""
        rots, poss = self._frames(self._check(q))
        r, p = rots[self._site_body], poss[self._site_body]  # (S, N, ...)
        out = p + np.einsum("snij,sj->sni", r, self._site_pos)
        return out.transpose(1, 0, 2)

    def sites_and_jacobians(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Site positions (N, S, 3) and their Jacobians (N, S, 3, 23) w.r.t. q."""
        q = self._check(q)
        rots, poss = self._frames(q)
        r, p = rots[self._site_body], poss[self._site_body]
        x = p + np.einsum("snij,sj->sni", r, self._site_pos)  # (S, N, 3)
        n = q.shape[0]
        jac = np.zeros((self.num_sites, n, 3, spec.NUM_JOINTS))
        for j in range(spec.NUM_JOINTS):
            b = self._joint_body[j]
            if b < 0:
                continue
            body = self._bodies[b]
            omega = rots[b] @ body.axis  # (N, 3) world axis
            origin = poss[b] + rots[b] @ body.anchor  # (N, 3)
            moved = self._moves[:, j]
            jac[moved, :, :, j] = np.cross(omega[None], x[moved] - origin[None])
        return x.transpose(1, 0, 2), jac.transpose(1, 0, 2, 3)

    @staticmethod
    def _check(q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        if q.ndim != 2 or q.shape[1] != spec.NUM_JOINTS:
            raise ValueError(f"q must be (N, {spec.NUM_JOINTS}), got {q.shape}")
        return q
