"""Small vectorised geometry shared by simulation, retargeting and the robot side.

Quaternions are **w, x, y, z** everywhere in HOP (the MuJoCo and format-1
convention). Functions take any leading batch shape.
"""

from __future__ import annotations

import numpy as np


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Unit quaternions (..., 4) w,x,y,z -> rotation matrices (..., 3, 3)."""
    q = np.asarray(q, dtype=np.float64)
    w, x, y, z = np.moveaxis(q, -1, 0)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    m = np.stack(
        [
            1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
            2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
            2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
        ],
        axis=-1,
    )
    return m.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4) w,x,y,z with w >= 0."""
    m = np.asarray(m, dtype=np.float64)
    r = m.reshape(-1, 3, 3)
    d0, d1, d2 = r[:, 0, 0], r[:, 1, 1], r[:, 2, 2]
    # Four algebraically equal forms; each is well conditioned when its pivot is largest.
    pivots = np.stack([d0 + d1 + d2, d0 - d1 - d2, d1 - d0 - d2, d2 - d0 - d1], axis=1)
    s = np.sqrt(np.maximum(1.0 + pivots, 1e-12)) * 2  # (n, 4)
    a21, a12 = r[:, 2, 1], r[:, 1, 2]
    a02, a20 = r[:, 0, 2], r[:, 2, 0]
    a10, a01 = r[:, 1, 0], r[:, 0, 1]
    forms = np.stack(
        [
            np.stack([0.25 * s[:, 0], (a21 - a12) / s[:, 0], (a02 - a20) / s[:, 0], (a10 - a01) / s[:, 0]], 1),
            np.stack([(a21 - a12) / s[:, 1], 0.25 * s[:, 1], (a01 + a10) / s[:, 1], (a02 + a20) / s[:, 1]], 1),
            np.stack([(a02 - a20) / s[:, 2], (a01 + a10) / s[:, 2], 0.25 * s[:, 2], (a12 + a21) / s[:, 2]], 1),
            np.stack([(a10 - a01) / s[:, 3], (a02 + a20) / s[:, 3], (a12 + a21) / s[:, 3], 0.25 * s[:, 3]], 1),
        ],
        axis=1,
    )  # (n, 4 forms, 4)
    out = forms[np.arange(len(r)), np.argmax(pivots, axis=1)]
    out *= np.where(out[:, :1] < 0, -1.0, 1.0)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.reshape(m.shape[:-2] + (4,))


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """(..., 4) -> unit quaternions."""
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def slerp(q0: np.ndarray, q1: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Spherical interpolation of unit quaternions (..., 4) at fractions u (...,),
    along the shorter arc; near-equal pairs fall back to normalised lerp."""
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    u = np.asarray(u, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.clip(np.abs(dot), 0.0, 1.0)
    theta = np.arccos(dot)
    sin_theta = np.sin(theta)
    small = sin_theta < 1e-6
    safe = np.where(small, 1.0, sin_theta)
    w0 = np.where(small, 1.0 - u, np.sin((1.0 - u) * theta) / safe)
    w1 = np.where(small, u, np.sin(u * theta) / safe)
    return quat_normalize(w0 * q0 + w1 * q1)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a ⊗ b of (..., 4) w,x,y,z quaternions."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a, dtype=np.float64), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, dtype=np.float64), -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def yaw_quat(yaw: np.ndarray) -> np.ndarray:
    """Rotations about +z by ``yaw`` (...,) radians -> (..., 4) w,x,y,z."""
    yaw = np.asarray(yaw, dtype=np.float64)
    zeros = np.zeros_like(yaw)
    return np.stack([np.cos(yaw / 2), zeros, zeros, np.sin(yaw / 2)], axis=-1)


def transform_points(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Points (P, 3) in a body frame (or (N, P, 3), one set per pose), poses
    (N, 7) position + quaternion w,x,y,z -> points (N, P, 3) in the parent frame."""
    rot = quat_to_matrix(pose[..., 3:7])  # (N, 3, 3)
    if np.ndim(points) == 3:
        return points @ np.swapaxes(rot, -1, -2) + pose[..., None, 0:3]
    return np.einsum("nij,pj->npi", rot, points) + pose[..., None, 0:3]


def farthest_point_sample(points: np.ndarray, count: int, start: int = 0) -> np.ndarray:
    """Indices (count,) of a farthest-point subsample of ``points`` (M, 3).

    Deterministic for a given ``start``. If M < count, indices repeat
    cyclically so the result always has ``count`` entries (the policy and the
    store need a fixed point count)."""
    points = np.asarray(points, dtype=np.float64)
    m = len(points)
    if m == 0:
        raise ValueError("farthest_point_sample: no points")
    if m <= count:
        return np.arange(count) % m
    chosen = np.empty(count, dtype=np.int64)
    chosen[0] = start % m
    dist = np.sum((points - points[chosen[0]]) ** 2, axis=1)
    for i in range(1, count):
        chosen[i] = int(np.argmax(dist))
        dist = np.minimum(dist, np.sum((points - points[chosen[i]]) ** 2, axis=1))
    return chosen
