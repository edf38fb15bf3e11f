"""How the video sees the scene: a static camera looking down at the table,
and what lifting would make of it (sensor-like noise and dropouts; see the
package notes)."""

from __future__ import annotations

import numpy as np

from hop_data import hoi
from hop_robot.geometry import matrix_to_quat, quat_multiply, quat_normalize, quat_to_matrix

from .hand import _rot
from .motion import UP, Timeline


def place_camera(rng: np.random.Generator, joints: np.ndarray, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) table -> camera (OpenCV: x right, y down, z forward) of a camera
    looking down at the table (pitch 35-63 deg) from the person's side or from
    across it, with a small roll, placed so that the hand ``joints`` (T, 21, 3)
    and the object ``pose`` (T, 7) stay 0.4-0.9 m in front of it."""
    u = rng.uniform
    lo = np.minimum(joints.reshape(-1, 3).min(0), pose[:, :3].min(0))
    hi = np.maximum(joints.reshape(-1, 3).max(0), pose[:, :3].max(0))
    look_at = 0.5 * (lo + hi)
    view_yaw = u(-0.4, 0.4) if rng.uniform() < 0.5 else np.pi + u(-0.7, 0.7)
    pitch = u(0.6, 1.1)
    forward = np.array([np.cos(pitch) * np.cos(view_yaw), np.cos(pitch) * np.sin(view_yaw), -np.sin(pitch)])
    right = np.cross(forward, UP)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    roll = float(np.clip(rng.normal(0.0, 0.03), -0.08, 0.08))
    R_cw = np.stack([right, down, forward], axis=1) @ _rot("z", roll)  # camera axes as columns, table frame
    cam = look_at - forward * u(0.55, 0.75)
    depth = (np.concatenate([joints.reshape(-1, 3), pose[:, :3]]) - cam) @ forward
    # Keep everything 0.4-0.9 m in front (the near limit wins if the scene is deeper than that).
    cam -= forward * max(min(0.0, 0.9 - depth.max()), 0.42 - depth.min())
    R_c = R_cw.T  # table -> camera
    return R_c, -R_c @ cam


def observe(
    rng: np.random.Generator, tl: Timeline, joints: np.ndarray, pose: np.ndarray, R_c: np.ndarray, t_c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(hand joints (T, 21, 3), object pose (T, 7)) in the camera frame as lifting
    would give them: 2-3 mm Gaussian jitter per joint coordinate plus a smooth
    common depth wobble, 1 mm / 0.5 deg jitter on the object pose, and NaN
    frames where the hand, a fingertip or the object was not seen."""
    u, T = rng.uniform, len(tl.t)
    joints_cam = joints @ R_c.T + t_c
    R_obj_cam = R_c @ quat_to_matrix(pose[:, 3:])
    sigma = u(0.002, 0.003)
    joints_cam = joints_cam + rng.normal(0.0, sigma, joints_cam.shape)
    wobble = rng.normal(0.0, 0.0015, T)  # common depth wobble of monocular lifting, smoothed
    wobble = np.convolve(wobble, np.ones(5) / np.sqrt(5.0), mode="same")
    ray = joints_cam / np.linalg.norm(joints_cam, axis=-1, keepdims=True)
    joints_cam = joints_cam + wobble[:, None, None] * ray
    p_obj_cam = pose[:, :3] @ R_c.T + t_c + rng.normal(0.0, 0.001, (T, 3))
    rot_noise = rng.normal(0.0, np.deg2rad(0.5), (T, 3))
    angle = np.linalg.norm(rot_noise, axis=1, keepdims=True)
    dq = np.concatenate([np.cos(angle / 2), np.sinc(angle / (2 * np.pi)) * rot_noise / 2], axis=1)
    q_obj_cam = quat_normalize(quat_multiply(dq, matrix_to_quat(R_obj_cam)))
    hand_mask, obj_mask = _dropouts(rng, tl)
    joints_cam[hand_mask] = np.nan
    object_pose = np.concatenate([p_obj_cam, q_obj_cam], axis=1)
    object_pose[obj_mask] = np.nan
    return joints_cam, object_pose


def _dropouts(rng: np.random.Generator, tl: Timeline) -> tuple[np.ndarray, np.ndarray]:
    """(hand mask (T, 21), object mask (T,)) of unseen frames: short hand
    dropouts, occasionally a single unseen fingertip, occasionally a few frames
    of unknown object pose while it is held. Each gap is under 0.2 s, gaps at
    least 3 frames apart."""
    T, fps = len(tl.t), tl.fps
    max_len = max(1, int(np.floor(0.19 * fps)))
    taken = np.zeros(T, dtype=bool)

    def place_gap(length: int, lo_t: int = 0, hi_t: int | None = None) -> int | None:
        hi_t = T - length if hi_t is None else min(hi_t, T - length)
        for _ in range(20):
            s = int(rng.integers(lo_t, max(lo_t + 1, hi_t + 1)))
            if not taken[max(0, s - 3) : s + length + 3].any():
                taken[s : s + length] = True
                return s
        return None

    hand_mask = np.zeros((T, hoi.NUM_HUMAN_JOINTS), dtype=bool)
    for _ in range(int(rng.choice(4, p=[0.35, 0.35, 0.2, 0.1]))):
        length = int(rng.integers(1, max_len + 1))
        s = place_gap(length)
        if s is not None:
            hand_mask[s : s + length] = True
    if rng.uniform() < 0.2:  # one fingertip unseen for a few frames
        length = int(rng.integers(1, min(3, max_len) + 1))
        s = place_gap(length)
        if s is not None:
            hand_mask[s : s + length, int(rng.choice(hoi.FINGERTIPS))] = True
    obj_mask = np.zeros(T, dtype=bool)
    if rng.uniform() < 0.4:  # object occluded by the hand while held
        taken[:] = False
        for _ in range(int(rng.integers(1, 3))):
            length = int(rng.integers(1, min(4, max_len) + 1))
            s = place_gap(length, int(tl.arrive * fps), int(tl.placed * fps))
            if s is not None:
                obj_mask[s : s + length] = True
    return hand_mask, obj_mask
