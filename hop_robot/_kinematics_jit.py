"""Compiled (Numba) forward kinematics and Jacobians: the fast path of
``hop_robot.kinematics.RobotKinematics`` when Numba is installed.

Same precomputed terms, same arithmetic as the NumPy path, but one fused loop
per configuration, run in parallel over configurations: NumPy's per-call
overhead on stacks of 3x3 matrices dominates at retargeting sizes (hundreds
of configurations, 23 joints, 9 sites).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=False, cache=True)
def sites_and_jacobians(q, order, parent, rot_terms, pos_terms, axis, anchor, site_joint, site_pos, pair_site, pair_joint, want_jac):
    n, dof = q.shape
    ns = site_joint.shape[0]
    x = np.empty((n, ns, 3))
    jac = np.zeros((n, ns, 3, dof)) if want_jac else np.zeros((1, 1, 1, 1))
    for i in range(n):
        rot = np.empty((dof, 3, 3))
        pos = np.empty((dof, 3))
        lr = np.empty((3, 3))
        lp = np.empty(3)
        for j in order:
            s = np.sin(q[i, j])
            c = 1.0 - np.cos(q[i, j])
            for a in range(3):
                lp[a] = pos_terms[j, 0, a] + s * pos_terms[j, 1, a] + c * pos_terms[j, 2, a]
                for b in range(3):
                    k = 3 * a + b
                    lr[a, b] = rot_terms[j, 0, k] + s * rot_terms[j, 1, k] + c * rot_terms[j, 2, k]
            p = parent[j]
            if p < 0:
                rot[j] = lr
                pos[j] = lp
            else:
                for a in range(3):
                    acc = pos[p, a]
                    for b in range(3):
                        acc += rot[p, a, b] * lp[b]
                        rot[j, a, b] = rot[p, a, 0] * lr[0, b] + rot[p, a, 1] * lr[1, b] + rot[p, a, 2] * lr[2, b]
                    pos[j, a] = acc
        for s_ in range(ns):
            j = site_joint[s_]
            for a in range(3):
                x[i, s_, a] = pos[j, a] + rot[j, a, 0] * site_pos[s_, 0] + rot[j, a, 1] * site_pos[s_, 1] + rot[j, a, 2] * site_pos[s_, 2]
        if want_jac:
            for t in range(pair_site.shape[0]):
                s_, j = pair_site[t], pair_joint[t]
                w0 = rot[j, 0, 0] * axis[j, 0] + rot[j, 0, 1] * axis[j, 1] + rot[j, 0, 2] * axis[j, 2]
                w1 = rot[j, 1, 0] * axis[j, 0] + rot[j, 1, 1] * axis[j, 1] + rot[j, 1, 2] * axis[j, 2]
                w2 = rot[j, 2, 0] * axis[j, 0] + rot[j, 2, 1] * axis[j, 1] + rot[j, 2, 2] * axis[j, 2]
                d0 = x[i, s_, 0] - (pos[j, 0] + rot[j, 0, 0] * anchor[j, 0] + rot[j, 0, 1] * anchor[j, 1] + rot[j, 0, 2] * anchor[j, 2])
                d1 = x[i, s_, 1] - (pos[j, 1] + rot[j, 1, 0] * anchor[j, 0] + rot[j, 1, 1] * anchor[j, 1] + rot[j, 1, 2] * anchor[j, 2])
                d2 = x[i, s_, 2] - (pos[j, 2] + rot[j, 2, 0] * anchor[j, 0] + rot[j, 2, 1] * anchor[j, 1] + rot[j, 2, 2] * anchor[j, 2])
                jac[i, s_, 0, j] = w1 * d2 - w2 * d1
                jac[i, s_, 1, j] = w2 * d0 - w0 * d2
                jac[i, s_, 2, j] = w0 * d1 - w1 * d0
    return x, jac
