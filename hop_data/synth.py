"""Synthetic corpus of human hand-object interactions in format 1 (``*.hoi.npz``).

The embedded default input of the demo and the tests: videos that look like
captured data after lifting (camera frame, metric, noisy, with dropouts), of a
person reaching for an object on a table, grasping it, lifting, carrying and
placing it, and withdrawing the hand.

How a video is made (``make_episode``), all in a z-up table frame first:

* Object: box, cylinder, sphere, mug (cylinder with a handle) or bar (a long
  box lying down), random size; ``object_points`` are 512 points sampled
  uniformly by area on its surface, in its own frame (origin at its centre).
* Hand: a kinematic 21-joint hand (``HandModel``) with anthropometric bone
  lengths (wrist -> middle MCP 9 cm times a per-video scale 0.85-1.15, each
  segment varied a few per cent), posed by three postural synergies
  (flexion of all fingers, thumb opposition, spread; after Santello et al.
  1998) around a relaxed rest posture.
* Grasp: a power grasp from the side (thumb up, the body's axis oblique
  across the palm as in real cylindrical grasps) for upright boxes, cylinders
  and mugs (handle away from the palm); from above for spheres, bars and low
  boxes: a palm grasp for objects wider than 0.8 hand sizes, otherwise a
  precision grasp with the object between thumb tip and finger tips. The
  pre-shape opens the hand to the object's size plus a 2-3.5 cm margin
  (maximum grip aperture, Jeannerod 1984). At the grasp pose the palm is
  backed off until clear, then each finger closes along its flexion synergy
  until one of its joints or segment midpoints touches the object surface or
  the table (signed distance vs. the finger radius), and the thumb picks the
  palmar abduction whose first contact best opposes the fingers: the digits
  end in contact with the object, wrapping round it.
* Motion: minimum-jerk profiles (Flash & Hogan 1985), overlapping
  sub-movements: rest -> reach with pre-shaping -> final approach (from the
  side or from above) -> close -> lift 10-25 cm -> carry 10-22 cm (with a yaw
  change) -> set down -> release -> withdraw. While held, the object is rigidly
  fixed in the hand frame; otherwise it rests on the table. One tempo per
  video scales all phases: 3-8 s in total, at 24, 30 or 60 fps. The wrist
  stays within a ~0.45 m square and the hand 0-35 cm above the table, like a
  table-top robot's workspace.
* Left hands (20 %): the whole table-frame scene is mirrored (y -> -y), so the
  hand has genuine left-hand geometry and reaches from the left.
* Camera: a static camera looking down at the table (pitch 35-63 deg) from
  the person's side or from across it, with a small roll, placed so that hand
  and object stay 0.4-0.9 m in front of it;
  rows are stored in its OpenCV frame (x right, y down, z forward), gravity
  is the camera-frame unit vector of down.
* Sensor-like noise: 2-3 mm Gaussian jitter per joint coordinate plus a
  smooth common depth wobble; short hand dropouts (NaN frames, < 0.2 s),
  occasionally a single unseen fingertip, occasionally a few frames of unknown
  object pose; 1 mm / 0.5 deg jitter on the object pose.

Determinism: video ``i`` of seed ``s`` is drawn from
``np.random.default_rng([s, i])`` alone, so it does not depend on how many
videos are made, and ``save`` writes fixed zip timestamps: the same seed gives
the same bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hop_data import hoi

NUM_OBJECT_POINTS = 512
FPS_CHOICES = (24.0, 30.0, 60.0)
FPS_PROBABILITIES = (0.2, 0.6, 0.2)
LEFT_HAND_PROBABILITY = 0.2
SHAPES = ("box", "cylinder", "sphere", "mug", "bar")
SHAPE_PROBABILITIES = (0.25, 0.25, 0.15, 0.2, 0.15)
HAND_SIZE_M = 0.09  # wrist -> middle MCP of the reference hand (adult, ~50th percentile)
HAND_SCALE_RANGE = (0.85, 1.15)

# ================================================================ hand model
# Hand frame: origin at the wrist, x distal (towards the middle MCP), y radial
# (towards the thumb) and z = x × y dorsal (out of the back of a right hand).
# Reference geometry in metres for a 9 cm hand (wrist -> middle MCP), from
# adult anthropometry (metacarpal / phalanx lengths after Buchholz et al. 1992,
# MediaPipe-style joint placement; the transverse arch puts ring and little
# MCPs palmar of index and middle).
_MCP = np.array([[0.085, 0.024, -0.002], [HAND_SIZE_M, 0.0, 0.0], [0.085, -0.020, -0.004], [0.077, -0.039, -0.009]])
_CMC = np.array([0.024, 0.022, -0.014])
_SPLAY = np.array([0.12, 0.0, -0.10, -0.22])  # rad, finger direction in the palm plane at zero abduction
_FINGER_LENGTHS = np.array([[0.039, 0.023, 0.020], [0.044, 0.027, 0.021], [0.041, 0.026, 0.021], [0.033, 0.019, 0.019]])
_THUMB_LENGTHS = np.array([0.040, 0.030, 0.026])  # CMC->MCP, MCP->IP, IP->tip
FINGER_RADIUS_M = 0.008  # joint centre to skin, reference hand
PALM_THICKNESS_M = 0.018  # bone plane to palm skin, reference hand

# Posture vector (21,): index, middle, ring, little as (abduction, MCP, PIP, DIP),
# then thumb (CMC yaw in the palm plane, CMC palmar pitch, axial roll, MCP, IP). Radians.
NUM_POSTURE = 21
_THUMB = slice(16, 21)
POSTURE_REST = np.array(
    [0.0, 0.30, 0.40, 0.20, 0.0, 0.35, 0.45, 0.22, 0.0, 0.42, 0.50, 0.25, 0.0, 0.50, 0.55, 0.28,
     0.80, 0.40, -0.75, 0.20, 0.15]
)  # fmt: skip
POSTURE_LOWER = np.array([-0.35, -0.05, 0.1, 0.05] * 4 + [-0.3, 0.05, -1.6, -0.3, -0.4])
POSTURE_UPPER = np.array([0.35, 1.6, 1.9, 1.4] * 4 + [1.3, 1.3, 0.3, 1.0, 1.4])
# Postural synergies (after Santello, Flanders & Soechting 1998): coordinated
# flexion of all digits, thumb opposition, finger spread.
SYNERGY_FLEX = np.array(
    [0.0, 1.0, 1.1, 0.75, 0.0, 1.0, 1.1, 0.75, 0.0, 1.05, 1.15, 0.8, 0.0, 1.05, 1.15, 0.8,
     -0.15, 0.2, -0.1, 0.45, 0.55]
)  # fmt: skip
SYNERGY_OPPOSITION = np.array([0.0, 0.15, 0.0, 0.0, 0.0, 0.08, 0.0, 0.0] + [0.0] * 8 + [-0.45, 0.45, -0.35, 0.15, 0.05])
# Thumb palmar abduction with extension of its phalanges: how a thumb opens round an object.
THUMB_ABDUCTION = np.array([0.0] * 16 + [-0.3, 0.7, -0.2, -0.3, -0.4])
SYNERGY_SPREAD = np.array([0.22, 0.0, 0.0, 0.0, 0.04, 0.0, 0.0, 0.0, -0.15, 0.0, 0.0, 0.0, -0.30, 0.0, 0.0, 0.0,
                           0.25, -0.1, 0.0, 0.0, 0.0])  # fmt: skip


def _rot(axis: str, angle) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about a coordinate axis by angles (...)."""
    a = np.asarray(angle, dtype=np.float64)
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    rows = {
        "x": ((o, z, z), (z, c, -s), (z, s, c)),
        "y": ((c, z, s), (z, o, z), (-s, z, c)),
        "z": ((c, -s, z), (s, c, z), (z, z, o)),
    }[axis]
    return np.stack([np.stack(r, -1) for r in rows], -2)


@dataclass(frozen=True)
class HandModel:
    """A right hand's kinematic skeleton (metres, hand frame; see module notes)."""

    mcp: np.ndarray  # (4, 3) index..little MCP positions
    cmc: np.ndarray  # (3,) thumb CMC position
    splay: np.ndarray  # (4,) rad
    finger_lengths: np.ndarray  # (4, 3) proximal, middle, distal phalanx
    thumb_lengths: np.ndarray  # (3,) metacarpal, proximal, distal
    scale: float

    @staticmethod
    def sample(rng: np.random.Generator) -> "HandModel":
        """A person's hand: global scale 0.85-1.15 and +-4 % per segment."""
        scale = float(rng.uniform(*HAND_SCALE_RANGE))
        jitter = lambda shape: 1.0 + rng.uniform(-0.04, 0.04, shape)  # noqa: E731
        mcp = _MCP * scale * jitter((4, 1))
        mcp[1] = _MCP[1] * scale  # the middle MCP defines the hand size exactly
        return HandModel(
            mcp=mcp,
            cmc=_CMC * scale * jitter(3),
            splay=_SPLAY + rng.normal(0.0, 0.02, 4),
            finger_lengths=_FINGER_LENGTHS * scale * jitter((4, 3)),
            thumb_lengths=_THUMB_LENGTHS * scale * jitter(3),
            scale=scale,
        )

    @property
    def size(self) -> float:
        return float(np.linalg.norm(self.mcp[1]))

    def fk(self, q: np.ndarray) -> np.ndarray:
        """Postures (..., 21) -> joint positions (..., 21, 3) in the hand frame (MANO order)."""
        q = np.asarray(q, dtype=np.float64)
        out = np.zeros(q.shape[:-1] + (hoi.NUM_HUMAN_JOINTS, 3))
        for f in range(4):
            abd, mcp, pip, dip = (q[..., 4 * f + k] for k in range(4))
            base = hoi.FINGER_MCPS[f]
            p = np.broadcast_to(self.mcp[f], out[..., base, :].shape)
            out[..., base, :] = p
            R = _rot("z", self.splay[f] + abd) @ _rot("y", mcp)
            for k, bend in enumerate((pip, dip, None)):
                p = p + R[..., :, 0] * self.finger_lengths[f, k]
                out[..., base + 1 + k, :] = p
                if bend is not None:
                    R = R @ _rot("y", bend)
        yaw, pitch, roll, t_mcp, t_ip = (q[..., 16 + k] for k in range(5))
        p = np.broadcast_to(self.cmc, out[..., 1, :].shape)
        out[..., 1, :] = p
        R = _rot("z", yaw) @ _rot("y", pitch) @ _rot("x", roll)
        for k, bend in enumerate((t_mcp, t_ip, None)):
            p = p + R[..., :, 0] * self.thumb_lengths[k]
            out[..., 2 + k, :] = p
            if bend is not None:
                R = R @ _rot("y", bend)
        return out


# Points of each digit that may touch the object while it closes: its joints
# beyond the base and the midpoints of its segments (as index pairs).
_DIGIT_JOINTS = {d: hoi.FINGER_JOINTS[name] for d, name in enumerate(("index", "middle", "ring", "little", "thumb"))}
_DIGIT_POSTURE = {0: slice(0, 4), 1: slice(4, 8), 2: slice(8, 12), 3: slice(12, 16), 4: _THUMB}


def _digit_points(joints: np.ndarray, digit: int) -> np.ndarray:
    """(..., 21, 3) -> (..., 6, 3) contact probe points of one digit."""
    j = _DIGIT_JOINTS[digit]
    chain = joints[..., list(j), :]  # base .. tip
    mids = 0.5 * (chain[..., :-1, :] + chain[..., 1:, :])
    return np.concatenate([chain[..., 1:, :], mids], axis=-2)


def _palm_points(model: HandModel) -> np.ndarray:
    """(K, 3) points on the palm's bone plane (hand frame): wrist, MCPs, CMC and a grid between."""
    corners = np.stack([np.zeros(3), model.mcp[0], model.mcp[3], model.cmc])
    u, v = np.meshgrid(np.linspace(0.2, 0.9, 4), np.linspace(0.0, 1.0, 4), indexing="ij")
    grid = u[..., None] * (model.mcp[0] + v[..., None] * (model.mcp[3] - model.mcp[0]))
    return np.concatenate([corners, model.mcp, grid.reshape(-1, 3)])


# ================================================================ objects
@dataclass(frozen=True)
class ObjectShape:
    """A rigid object; its frame has the origin at the body's centre, z up when resting."""

    kind: str
    half: np.ndarray  # (3,) half extents of the body (cylinder / mug / sphere: radius, radius, half height)
    handle: tuple[float, float, float] = (0.0, 0.0, 0.0)  # mug: centre x, major radius, minor radius

    @property
    def rest_height(self) -> float:
        """z of the frame origin when the object stands on the table."""
        return float(self.half[2])

    def sdf(self, p: np.ndarray) -> np.ndarray:
        """Signed distance (...,) of object-frame points (..., 3) to the surface (< 0 inside)."""
        p = np.asarray(p, dtype=np.float64)
        if self.kind in ("box", "bar"):
            q = np.abs(p) - self.half
            return np.linalg.norm(np.maximum(q, 0.0), axis=-1) + np.minimum(q.max(-1), 0.0)
        if self.kind == "sphere":
            return np.linalg.norm(p, axis=-1) - self.half[0]
        d = np.stack([np.linalg.norm(p[..., :2], axis=-1) - self.half[0], np.abs(p[..., 2]) - self.half[2]], -1)
        body = np.linalg.norm(np.maximum(d, 0.0), axis=-1) + np.minimum(d.max(-1), 0.0)
        if self.kind == "cylinder":
            return body
        cx, major, minor = self.handle  # mug: a torus in the x-z plane
        ring = np.stack([np.hypot(p[..., 0] - cx, p[..., 2]) - major, p[..., 1]], -1)
        return np.minimum(body, np.linalg.norm(ring, axis=-1) - minor)

    def sample_surface(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, 3) points uniform by area on the surface, object frame."""
        if self.kind == "mug":  # body and handle overlap: keep the points on the union's surface
            out = np.zeros((0, 3))
            while len(out) < n:
                pts = self._sample_parts(rng, n + n // 4)
                out = np.concatenate([out, pts[np.abs(self.sdf(pts)) < 1e-6]])
            return out[:n]
        return self._sample_parts(rng, n)

    def _sample_parts(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.kind == "sphere":
            v = rng.normal(size=(n, 3))
            return self.half[0] * v / np.linalg.norm(v, axis=1, keepdims=True)
        if self.kind in ("box", "bar"):
            hx, hy, hz = self.half
            areas = np.array([hy * hz, hy * hz, hx * hz, hx * hz, hx * hy, hx * hy])
            face = rng.choice(6, size=n, p=areas / areas.sum())
            pts = rng.uniform(-1.0, 1.0, (n, 3)) * self.half
            axis = face // 2
            sign = np.where(face % 2 == 0, 1.0, -1.0)
            pts[np.arange(n), axis] = sign * self.half[axis]
            return pts
        r, hh = self.half[0], self.half[2]
        parts = {"side": 2 * np.pi * r * 2 * hh, "cap": 2 * np.pi * r * r}
        if self.kind == "mug":
            _, major, minor = self.handle
            parts["handle"] = 0.5 * 4 * np.pi**2 * major * minor  # outer half of the torus
        names = list(parts)
        areas = np.array([parts[k] for k in names])
        which = rng.choice(len(names), size=n, p=areas / areas.sum())
        pts = np.zeros((n, 3))
        side = which == names.index("side")
        a = rng.uniform(0, 2 * np.pi, side.sum())
        pts[side] = np.stack([r * np.cos(a), r * np.sin(a), rng.uniform(-hh, hh, side.sum())], 1)
        cap = which == names.index("cap")
        a, rad = rng.uniform(0, 2 * np.pi, cap.sum()), r * np.sqrt(rng.uniform(0, 1, cap.sum()))
        pts[cap] = np.stack([rad * np.cos(a), rad * np.sin(a), np.where(rng.uniform(size=cap.sum()) < 0.5, hh, -hh)], 1)
        if self.kind == "mug":
            handle = which == names.index("handle")
            pts[handle] = self._sample_handle(rng, int(handle.sum()))
        return pts

    def _sample_handle(self, rng: np.random.Generator, n: int) -> np.ndarray:
        cx, major, minor = self.handle
        out = np.zeros((0, 3))
        while len(out) < n:  # rejection: area element of a torus is proportional to (R + r cos v)
            m = 4 * n + 16
            u = rng.uniform(-np.pi / 2, np.pi / 2, m)  # outer half, away from the body
            v = rng.uniform(0, 2 * np.pi, m)
            keep = rng.uniform(0, 1, m) < (major + minor * np.cos(v)) / (major + minor)
            ring = major + minor * np.cos(v)
            pts = np.stack([cx + ring * np.cos(u), minor * np.sin(v), ring * np.sin(u)], 1)[keep]
            out = np.concatenate([out, pts])
        return out[:n]

    @staticmethod
    def sample(rng: np.random.Generator, kind: str) -> "ObjectShape":
        if kind == "box":
            return ObjectShape(kind, np.array([rng.uniform(0.02, 0.035), rng.uniform(0.03, 0.05), rng.uniform(0.03, 0.075)]))
        if kind == "cylinder":
            r = rng.uniform(0.025, 0.042)
            return ObjectShape(kind, np.array([r, r, rng.uniform(0.045, 0.09)]))
        if kind == "sphere":
            r = rng.uniform(0.03, 0.05)
            return ObjectShape(kind, np.array([r, r, r]))
        if kind == "mug":
            r = rng.uniform(0.035, 0.043)
            major = rng.uniform(0.025, 0.03)
            return ObjectShape(kind, np.array([r, r, rng.uniform(0.045, 0.055)]), (r - 0.004, major, 0.006))
        if kind == "bar":
            return ObjectShape(kind, np.array([rng.uniform(0.08, 0.12), rng.uniform(0.012, 0.022), rng.uniform(0.012, 0.022)]))
        raise ValueError(f"unknown shape {kind!r}, expected one of {SHAPES}")


# ================================================================ motion primitives
def min_jerk(tau: np.ndarray) -> np.ndarray:
    """Minimum-jerk position profile s(tau) = 10 tau^3 - 15 tau^4 + 6 tau^5, tau clipped to [0, 1]."""
    tau = np.clip(tau, 0.0, 1.0)
    return tau**3 * (10.0 - 15.0 * tau + 6.0 * tau**2)


def _bell(tau: np.ndarray) -> np.ndarray:
    """Smooth bump 16 tau^2 (1 - tau)^2: 0 at both ends with zero slope, 1 in the middle."""
    tau = np.clip(tau, 0.0, 1.0)
    return 16.0 * tau**2 * (1.0 - tau) ** 2


def _phase(t: np.ndarray, start: float, duration: float) -> np.ndarray:
    return (t - start) / duration


def _keyframes(t: np.ndarray, times: list[float], values: list[np.ndarray]) -> np.ndarray:
    """Piecewise minimum-jerk interpolation through (time, value) keys; held outside."""
    times_a = np.asarray(times)
    vals = np.stack(values)
    k = np.clip(np.searchsorted(times_a, t, side="right") - 1, 0, len(times_a) - 2)
    span = np.maximum(times_a[k + 1] - times_a[k], 1e-9)
    s = min_jerk((t - times_a[k]) / span)
    return vals[k] + (vals[k + 1] - vals[k]) * s[:, None]


def _slerp_matrices(R0: np.ndarray, R1: np.ndarray, s: np.ndarray) -> np.ndarray:
    q0, q1 = hoi.matrix_to_quat(R0), hoi.matrix_to_quat(R1)
    return hoi.quat_to_matrix(hoi.slerp(np.broadcast_to(q0, s.shape + (4,)), np.broadcast_to(q1, s.shape + (4,)), s))


def _yaw_quat(yaw: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(yaw / 2), np.zeros_like(yaw), np.zeros_like(yaw), np.sin(yaw / 2)], -1)


# ================================================================ one video
@dataclass
class SynthVideo:
    """A generated video: the trajectory as stored, plus the ground truth behind it."""

    traj: hoi.HOITrajectory
    shape: str
    object_shape: ObjectShape
    grasp: str  # "side" or "top"
    hand_scale: float
    phases: dict[str, tuple[float, float]]  # seconds: approach, preshape, grasp, lift, move, place, release, retreat
    hand_joints_table: np.ndarray  # (T, 21, 3) clean joints, z-up table frame (table top z = 0)
    object_pose_table: np.ndarray  # (T, 7) clean object pose, table frame
    camera_from_table: np.ndarray  # (4, 4): x_camera = R x_table + t
    extra: dict = field(default_factory=dict)


def _plan_grasp(rng: np.random.Generator, shape: ObjectShape, model: HandModel):
    """Grasp type, hand orientation (table frame), object yaw and the grasp point
    in the object frame and hand frame."""
    kind = shape.kind
    side = kind in ("cylinder", "mug") or (kind == "box" and shape.half[2] >= 0.045)
    if kind == "cylinder" and shape.half[2] < 0.06 and rng.uniform() < 0.4:
        side = False
    L = model.size
    if side:
        phi = rng.uniform(-0.5, 1.0)  # finger direction (yaw); palm faces phi + 90 deg
        R_hand = _rot("z", phi) @ _rot("y", rng.uniform(-0.35, -0.05)) @ _rot("x", np.pi / 2 + rng.uniform(-0.25, 0.15))
        # grasp height on the body: lower-middle to upper part
        z_obj = (rng.uniform(0.35, 0.6) * 2.0 - 1.0) * shape.half[2]
        grasp_obj = np.array([0.0, 0.0, z_obj])
        if kind == "box":  # palm on a broad face: the box's x axis along the palm normal
            yaw = phi + np.pi / 2 + np.pi * rng.integers(2) + rng.normal(0, 0.08)
            extent = shape.half[0]
        elif kind == "mug":  # handle away from the palm, towards the wrist side
            yaw = phi + np.pi + rng.uniform(-0.35, 0.35)
            extent = shape.half[0]
        else:
            yaw = rng.uniform(-np.pi, np.pi)
            extent = shape.half[0]
        grip = 2.0 * extent
    else:
        phi = rng.uniform(-0.5, 0.7)
        pitch = rng.uniform(0.0, 1.0)  # fingers down: 0.15-0.45 rad over large objects, 0.35-0.75 over small ones
        grasp_obj = np.zeros(3)
        if kind == "bar":  # fingers across the bar, somewhere along it
            yaw = phi + np.pi / 2 + np.pi * rng.integers(2) + rng.normal(0, 0.1)
            grasp_obj[0] = rng.uniform(-0.3, 0.3) * shape.half[0]
            grip = 2.0 * shape.half[1]
        elif kind == "box":
            yaw = phi + np.pi / 2 * rng.integers(4) + rng.normal(0, 0.1)
            grip = 2.0 * min(shape.half[0], shape.half[1])
        else:
            yaw = rng.uniform(-np.pi, np.pi)
            grip = 2.0 * shape.half[0]
        extent = shape.half[2]
        pitch = (0.35 + 0.4 * pitch) if grip < 0.8 * L else (0.15 + 0.3 * pitch)
        R_hand = _rot("z", phi) @ _rot("y", pitch) @ _rot("x", rng.uniform(-0.2, 0.2))
    # Where the object's grasp point sits in the hand frame: over the palm,
    # just proximal of the knuckles, one palm thickness + the object's extent out.
    thickness = PALM_THICKNESS_M * model.scale
    if side:  # across the proximal phalanges
        along = rng.uniform(0.8, 0.95)
    else:  # from above, under the knuckles (small objects are re-placed between the fingertips later)
        along = rng.uniform(0.85, 1.0)
    grasp_hand = np.array([along * L, rng.uniform(-0.15, 0.0) * L, -(thickness + extent)])
    return ("side" if side else "top"), R_hand, float(yaw), grasp_obj, grasp_hand, float(grip)


def _clearance(shape, R_obj, p_obj, points_world, radius, split=False):
    """Signed clearance (...,) of spheres at points_world against object and table
    (or the two separately with ``split``)."""
    local = (points_world - p_obj) @ R_obj  # R^T (x - p)
    to_object, to_table = shape.sdf(local) - radius, points_world[..., 2] - radius
    return (to_object, to_table) if split else np.minimum(to_object, to_table)


def _solve_grasp(shape, model, R_hand, p_wrist, R_obj, p_obj, preshape, grasp_point, back):
    """Fit the hand to the object at the grasp pose.

    The palm is backed off along ``back`` (the direction the hand came from)
    until it no longer penetrates the object, and raised off the table; a
    finger that still penetrates in the pre-shape is opened against its
    flexion synergy until it is clear, else the hand backs off (or rises)
    further. Each finger then closes along its flexion synergy until it first
    touches the object or the table. The thumb searches a grid of palmar
    abduction x closing for the first contact most opposite the index and
    middle fingertips about the grasp point: it wraps round the object,
    opposing the fingers. Returns (pre-shape, grasp posture, wrist position)."""
    r_f = FINGER_RADIUS_M * model.scale
    r_palm = PALM_THICKNESS_M * model.scale
    palm = _palm_points(model)
    opening = np.linspace(0.0, 1.0, 21)
    closing = np.linspace(0.0, 1.8, 73)
    directions = []
    for digit in range(5):
        direction = np.zeros(NUM_POSTURE)
        sl = _DIGIT_POSTURE[digit]
        direction[sl] = SYNERGY_FLEX[sl] + (0.6 * SYNERGY_OPPOSITION[sl] if digit == 4 else 0.0)
        directions.append(direction)
    thumb_abd = np.linspace(-0.4, 1.5, 20)
    thumb_close = np.linspace(-0.6, 1.8, 61)
    thumb_grid = (thumb_abd[:, None, None] * THUMB_ABDUCTION + thumb_close[None, :, None] * directions[4]).reshape(-1, NUM_POSTURE)

    def digit_clearance(q, digit):
        pts = _digit_points(p_wrist + model.fk(q) @ R_hand.T, digit)
        return _clearance(shape, R_obj, p_obj, pts, r_f).min(axis=-1)

    opened = preshape.copy()
    for _ in range(10):
        palm_world = p_wrist + palm @ R_hand.T
        low = (palm_world[:, 2] - 0.5 * r_palm).min()  # the palm's edge may rest on the table, no lower
        if low < -0.001:
            p_wrist = p_wrist + np.array([0.0, 0.0, -low])
            continue
        c_p = (shape.sdf((palm_world - p_obj) @ R_obj) - r_palm).min()
        if c_p < -0.001:
            p_wrist = p_wrist + back * (-c_p + 0.001)
            continue
        # A digit that cannot open clear of the object backs the hand off;
        # one that cannot clear the table lifts the hand.
        opened, back_off, lift = preshape.copy(), 0.0, 0.0
        for digit in range(4):
            sl = _DIGIT_POSTURE[digit]
            q = np.clip(preshape - opening[:, None] * directions[digit], POSTURE_LOWER, POSTURE_UPPER)
            pts = _digit_points(p_wrist + model.fk(q) @ R_hand.T, digit)
            h_obj, h_table = (h.min(axis=-1) for h in _clearance(shape, R_obj, p_obj, pts, r_f, split=True))
            clear = np.flatnonzero((h_obj > 0.0) & (h_table > 0.0))
            if len(clear):
                opened[sl] = q[clear[0], sl]
            else:
                back_off, lift = min(back_off, h_obj[-1]), min(lift, h_table[-1])
        thumb_start = digit_clearance(np.clip(preshape + thumb_abd[:, None] * THUMB_ABDUCTION
                                              + thumb_close[0] * directions[4], POSTURE_LOWER, POSTURE_UPPER), 4)
        if not (thumb_start > 0.0).any():
            back_off = min(back_off, thumb_start.max())
        if back_off < 0.0 or lift < 0.0:
            p_wrist = p_wrist + back * (max(0.0, -back_off) + 0.001) + np.array([0.0, 0.0, max(0.0, -lift)])
            continue
        break
    grasp = opened.copy()
    for digit in range(4):
        sl = _DIGIT_POSTURE[digit]
        q = np.clip(opened + closing[:, None] * directions[digit], POSTURE_LOWER, POSTURE_UPPER)
        h = digit_clearance(q, digit)
        hit = np.flatnonzero(h <= 0.0)
        if len(hit) == 0:
            c = closing[-1]
        elif hit[0] == 0:
            c = 0.0
        else:
            j = hit[0]
            c = closing[j - 1] + (closing[j] - closing[j - 1]) * h[j - 1] / (h[j - 1] - h[j])
        grasp[sl] = np.clip(opened + c * directions[digit], POSTURE_LOWER, POSTURE_UPPER)[sl]

    # Thumb: per abduction row, the last clear closing before first contact.
    thumb_q = np.clip(preshape + thumb_grid, POSTURE_LOWER, POSTURE_UPPER)
    thumb_h = digit_clearance(thumb_q, 4).reshape(len(thumb_abd), len(thumb_close))
    thumb_q = thumb_q.reshape(len(thumb_abd), len(thumb_close), -1)
    blocked = np.cumsum(thumb_h <= 0.0, axis=1) > 0  # at or after first contact
    rows_ok = thumb_h[:, 0] > 0.0
    last_clear = np.where(blocked.any(axis=1), np.argmax(blocked, axis=1) - 1, len(thumb_close) - 1)
    touches = blocked.any(axis=1) & rows_ok
    rows = np.flatnonzero(touches) if touches.any() else np.flatnonzero(rows_ok)
    sl = _DIGIT_POSTURE[4]
    if len(rows):
        cands = thumb_q[rows, last_clear[rows]]
        cands_full = np.repeat(grasp[None], len(rows), axis=0)
        cands_full[:, sl] = cands[:, sl]
        joints = p_wrist + model.fk(cands_full) @ R_hand.T
        to_thumb = joints[:, 4] - grasp_point
        to_fingers = 0.5 * (joints[:, 8] + joints[:, 12]) - grasp_point
        cosine = np.sum(to_thumb * to_fingers, -1) / (np.linalg.norm(to_thumb, axis=-1) * np.linalg.norm(to_fingers, axis=-1))
        best = int(np.argmin(cosine))
        row, j = rows[best], last_clear[rows[best]]
        grasp[sl] = thumb_q[row, j, sl]
        # Pre-shape thumb: the same abduction, about 0.6 rad less closed (still clear).
        step = thumb_close[1] - thumb_close[0]
        opened[sl] = thumb_q[row, max(0, j - int(round(0.6 / step))), sl]
    return opened, grasp, p_wrist


def make_episode(
    rng: np.random.Generator,
    index: int,
    seed: int | None = None,
    *,
    hand_side: str | None = None,
    shape: str | None = None,
) -> SynthVideo:
    """Generate one synthetic video from ``rng`` (see the module notes).

    ``hand_side`` / ``shape`` force a choice (tests, demos); otherwise they are
    drawn. The source id is ``synth/<seed>/<index:04d>``."""
    # ---------------------------------------------------------------- draws
    fps = float(rng.choice(FPS_CHOICES, p=FPS_PROBABILITIES))
    left = rng.uniform() < LEFT_HAND_PROBABILITY
    kind = str(rng.choice(SHAPES, p=SHAPE_PROBABILITIES))
    if hand_side is not None:
        if hand_side not in hoi.HAND_SIDES:
            raise ValueError(f"hand_side must be one of {hoi.HAND_SIDES}, got {hand_side!r}")
        left = hand_side == "left"
    if shape is not None:
        kind = shape
    obj = ObjectShape.sample(rng, kind)
    model = HandModel.sample(rng)
    # Per-person posture variation: rest posture and synergy weights.
    rest = np.clip(POSTURE_REST + rng.normal(0.0, 0.04, NUM_POSTURE), POSTURE_LOWER, POSTURE_UPPER)
    flex = SYNERGY_FLEX * (1.0 + rng.normal(0.0, 0.08, NUM_POSTURE))
    opposition = SYNERGY_OPPOSITION * (1.0 + rng.normal(0.0, 0.08, NUM_POSTURE))
    spread = SYNERGY_SPREAD * (1.0 + rng.normal(0.0, 0.08, NUM_POSTURE))

    # ---------------------------------------------------------------- grasp
    grasp_kind, R_grasp, yaw0, grasp_obj, grasp_hand, grip = _plan_grasp(rng, obj, model)
    p_obj0 = np.array([rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08), obj.rest_height])
    R_obj0 = _rot("z", yaw0)
    G = p_obj0 + R_obj0 @ grasp_obj
    # Pre-shape: opposition and spread, then the flexion whose thumb-index
    # aperture best matches the object's size plus a margin (max grip aperture).
    c_opp = rng.uniform(0.4, 0.8)
    precision = grasp_kind == "top" and grip < 0.8 * model.size
    if grasp_kind == "side":  # fingers side by side round a handle-like body
        c_spread = rng.uniform(-0.2, 0.2)
    elif precision:
        c_spread = rng.uniform(0.0, 0.5)
    else:  # spread wider for wider objects from above
        c_spread = np.clip(0.3 + 8.0 * (grip - 0.03), 0.2, 1.0) + rng.uniform(-0.1, 0.1)
    c_flex = np.linspace(-0.6, 0.3, 37)  # the opening branch: beyond ~0.4 the fingers curl past the thumb
    cands = np.clip(rest + c_opp * opposition + c_spread * spread + c_flex[:, None] * flex, POSTURE_LOWER, POSTURE_UPPER)
    tips = model.fk(cands)
    aperture = np.linalg.norm(tips[:, 4] - tips[:, 8], axis=-1)
    aperture_target = np.clip(grip + rng.uniform(0.02, 0.035), 0.05, 0.14 * model.scale)
    preshape = cands[np.argmin(np.abs(aperture - aperture_target))]
    if precision:
        # Objects smaller than the hand, from above: put the object between the
        # thumb tip and the index / middle tips of the posture whose aperture
        # just spans it (a precision grasp; the fingers would hit the table
        # before wrapping round it from the palm).
        pinch = tips[np.argmin(np.abs(aperture - grip - 2 * FINGER_RADIUS_M * model.scale))]
        grasp_hand = 0.5 * (pinch[4] + pinch[[8, 12, 16]].mean(axis=0))
    p_grasp = G - R_grasp @ grasp_hand
    # The hand comes in along its dorsal axis from the side, or down from above.
    back = R_grasp[:, 2] if grasp_kind == "side" else np.array([0.0, 0.0, 1.0])
    preshape, posture_grasp, p_grasp = _solve_grasp(obj, model, R_grasp, p_grasp, R_obj0, p_obj0, preshape, G, back)
    # Lift off the table a hand that ended too low (short objects, side grasps).
    low = (p_grasp + model.fk(posture_grasp) @ R_grasp.T)[:, 2].min()
    if low < 0.005:
        p_grasp = p_grasp + np.array([0.0, 0.0, 0.005 - low])
    release = posture_grasp + rng.uniform(0.6, 0.8) * (preshape - posture_grasp)

    # ---------------------------------------------------------------- timeline (s)
    # Phase durations at a reference pace, then one tempo per person / video
    # (total kept within 3-8 s). Sub-movements overlap as in human reaching.
    u = rng.uniform
    d = {
        "wait": u(0.15, 0.4), "reach": u(0.7, 1.3), "final": u(0.3, 0.55), "close": u(0.25, 0.5),
        "hold": u(0.05, 0.25), "lift": u(0.5, 0.9), "move": u(0.7, 1.8), "place": u(0.5, 0.9),
        "settle": u(0.05, 0.2), "release": u(0.2, 0.4), "retreat": u(0.5, 1.0), "end": u(0.1, 0.4),
    }  # fmt: skip
    span = (d["wait"] + 0.75 * d["reach"] + d["final"] + d["close"] + d["hold"] + 0.7 * d["lift"] + d["move"]
            + 0.7 * d["place"] + d["settle"] + d["release"] - 0.1 + d["retreat"] + d["end"])  # fmt: skip
    tempo = float(np.clip(u(0.7, 1.3), 3.0 / span, 8.0 / span))
    d = {k: tempo * v for k, v in d.items()}
    t_reach0 = d["wait"]
    d_reach, d_final = d["reach"], d["final"]
    t_final0 = t_reach0 + 0.75 * d_reach
    t_arrive = t_final0 + d_final
    t_closed = t_arrive + d["close"]
    t_lift0 = t_closed + d["hold"]
    d_lift, d_move, d_place = d["lift"], d["move"], d["place"]
    t_move0 = t_lift0 + 0.7 * d_lift
    t_place0 = t_move0 + d_move - 0.3 * d_place
    t_placed = t_place0 + d_place
    t_rel0 = t_placed + d["settle"]
    t_rel1 = t_rel0 + d["release"]
    t_ret0 = t_rel1 - 0.1 * tempo
    d_ret = d["retreat"]
    t_ret1 = t_ret0 + d_ret
    total = t_ret1 + d["end"]
    T = int(round(total * fps))
    t = np.arange(T) / fps

    # ---------------------------------------------------------------- rest pose
    # The hand starts relaxed, palm down, 18-28 cm short of its grasp pose and
    # to its own side (right hands to the right), resting on or above the table.
    up = np.array([0.0, 0.0, 1.0])
    R_rest = _rot("z", u(-0.1, 0.5)) @ _rot("y", u(0.0, 0.3)) @ _rot("x", u(-0.3, 0.3))
    p_rest = np.array([p_grasp[0] - u(0.18, 0.28), p_grasp[1] - u(0.0, 0.12), u(0.05, 0.10)])
    low = (p_rest + model.fk(rest) @ R_rest.T)[:, 2].min()
    p_rest[2] += max(0.0, 0.008 - low)

    # ---------------------------------------------------------------- object path
    # Set down 10-22 cm away with a yaw change, inside the +-0.12 m workspace
    # square, keeping the wrist's path within a 0.4 m square.
    dyaw = u(-0.5, 0.5)
    for _ in range(200):
        a, dist = u(-np.pi, np.pi), u(0.10, 0.22)
        p_obj1 = p_obj0 + dist * np.array([np.cos(a), np.sin(a), 0.0])
        wrist_place = p_obj1 + _rot("z", dyaw) @ (p_grasp - p_obj0)
        spread_xy = np.ptp(np.stack([p_rest, p_grasp, wrist_place])[:, :2], axis=0)
        if np.all(np.abs(p_obj1[:2]) <= 0.12) and np.all(spread_xy <= 0.4):
            break
    else:  # (never seen) fall back to a short move straight away from the body
        p_obj1 = p_obj0 + np.array([0.1, 0.0, 0.0])
    hand_grasp_local = model.fk(posture_grasp) @ R_grasp.T + p_grasp
    top = max(hand_grasp_local[:, 2].max(), p_obj0[2] + obj.half[2])
    lift = float(np.clip(min(u(0.10, 0.25), 0.34 - top), 0.05, 0.25))
    s_lift, s_move, s_place = (min_jerk(_phase(t, t0, dt)) for t0, dt in ((t_lift0, d_lift), (t_move0, d_move), (t_place0, d_place)))
    p_obj = p_obj0 + np.outer(s_lift - s_place, [0.0, 0.0, lift]) + np.outer(s_move, p_obj1 - p_obj0)
    yaw = yaw0 + dyaw * s_move
    R_obj = _rot("z", yaw)

    # ---------------------------------------------------------------- wrist path
    p_pre = p_grasp + back * u(0.05, 0.09) + up * u(0.02, 0.05)
    tau_reach = _phase(t, t_reach0, d_reach)
    p_wrist = (
        p_rest
        + np.outer(min_jerk(tau_reach), p_pre - p_rest)
        + np.outer(min_jerk(_phase(t, t_final0, d_final)), p_grasp - p_pre)
        + np.outer(_bell(tau_reach), up * u(0.02, 0.06))
    )
    R_wrist = _slerp_matrices(R_rest, R_grasp, min_jerk(_phase(t, t_reach0, 0.75 * d_reach + 0.5 * d_final)))
    held = t >= t_lift0
    rel_R = R_obj @ R_obj0.T  # (T, 3, 3) object motion since the grasp
    R_wrist[held] = rel_R[held] @ R_grasp
    p_wrist[held] = p_obj[held] + np.einsum("tij,j->ti", rel_R[held], p_grasp - p_obj0)
    # After release: withdraw away from the palm and up, relaxing towards a rest orientation.
    after = t >= t_ret0
    R_place = rel_R[-1] @ R_grasp
    p_place = p_obj1 + rel_R[-1] @ (p_grasp - p_obj0)
    p_ret = p_place + R_place[:, 2] * u(0.05, 0.09) + up * u(0.05, 0.10) + np.array([-u(0.02, 0.08), 0.0, 0.0])
    R_ret = _slerp_matrices(R_place, R_rest, np.array(u(0.3, 0.6)))
    tau_ret = _phase(t[after], t_ret0, d_ret)
    p_wrist[after] = p_place + np.outer(min_jerk(tau_ret), p_ret - p_place) + np.outer(_bell(tau_ret), up * u(0.0, 0.03))
    R_wrist[after] = _slerp_matrices(R_place, R_ret, min_jerk(tau_ret))

    # ---------------------------------------------------------------- fingers
    t_ps0, t_ps1 = t_reach0 + 0.1 * d_reach, t_reach0 + 0.75 * d_reach
    posture = _keyframes(
        t,
        [0.0, t_ps0, t_ps1, t_arrive, t_closed, t_rel0, t_rel1, t_ret1, max(total, t_ret1 + 1e-3)],
        [rest, rest, preshape, preshape, posture_grasp, posture_grasp, release, rest, rest],
    )
    local = model.fk(posture)
    joints = p_wrist[:, None, :] + np.einsum("tij,tkj->tki", R_wrist, local)
    # A withdrawing hand must neither sink into the table as its fingers relax
    # nor rise above the 0.34 m work height: shift the withdrawal smoothly.
    ramp = min_jerk(tau_ret) / max(min_jerk(tau_ret).max(), 1e-6)
    shortfall = np.max(0.005 - joints[after, :, 2].min(axis=1), initial=0.0)
    excess = np.max(joints[after, :, 2].max(axis=1) - 0.34, initial=0.0)
    if shortfall > 0.0 or excess > 0.0:
        p_wrist[after, 2] += ramp * (shortfall if shortfall > 0.0 else -excess)
        joints = p_wrist[:, None, :] + np.einsum("tij,tkj->tki", R_wrist, local)
    # Likewise a reaching hand whose fingers pre-shape near the table: a higher arc.
    bell = _bell(tau_reach)
    reaching = bell > 0.05
    need = np.max((0.005 - joints[reaching, :, 2].min(axis=1)) / bell[reaching], initial=0.0)
    if need > 0.0:
        p_wrist[:, 2] += bell * min(need, 0.1)
        joints = p_wrist[:, None, :] + np.einsum("tij,tkj->tki", R_wrist, local)
    pose = np.concatenate([p_obj, _yaw_quat(yaw)], axis=1)
    points = obj.sample_surface(rng, NUM_OBJECT_POINTS)

    # ---------------------------------------------------------------- left hands: mirror the scene
    if left:
        M = np.diag([1.0, -1.0, 1.0])
        joints = joints @ M
        R_o = M @ hoi.quat_to_matrix(pose[:, 3:]) @ M
        pose = np.concatenate([pose[:, :3] @ M, hoi.matrix_to_quat(R_o)], axis=1)
        points = points @ M

    # ---------------------------------------------------------------- camera
    lo = np.minimum(joints.reshape(-1, 3).min(0), pose[:, :3].min(0))
    hi = np.maximum(joints.reshape(-1, 3).max(0), pose[:, :3].max(0))
    look_at = 0.5 * (lo + hi)
    view_yaw = u(-0.4, 0.4) if rng.uniform() < 0.5 else np.pi + u(-0.7, 0.7)
    pitch = u(0.6, 1.1)
    forward = np.array([np.cos(pitch) * np.cos(view_yaw), np.cos(pitch) * np.sin(view_yaw), -np.sin(pitch)])
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    roll = float(np.clip(rng.normal(0.0, 0.03), -0.08, 0.08))
    R_cw = np.stack([right, down, forward], axis=1) @ _rot("z", roll)  # camera axes as columns, table frame
    cam = look_at - forward * u(0.55, 0.75)
    depth = (np.concatenate([joints.reshape(-1, 3), pose[:, :3]]) - cam) @ forward
    # Keep everything 0.4-0.9 m in front (the near limit wins if the scene is deeper than that).
    cam -= forward * max(min(0.0, 0.9 - depth.max()), 0.42 - depth.min())
    R_c = R_cw.T  # table -> camera
    t_c = -R_c @ cam
    joints_cam = joints @ R_c.T + t_c
    R_obj_cam = R_c @ hoi.quat_to_matrix(pose[:, 3:])
    gravity = R_c @ np.array([0.0, 0.0, -1.0])

    # ---------------------------------------------------------------- sensor noise
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
    q_obj_cam = hoi.quat_multiply(dq, hoi.matrix_to_quat(R_obj_cam))
    q_obj_cam = hoi.quat_normalize(q_obj_cam)

    # Dropouts: each gap under 0.2 s, gaps at least 3 frames apart.
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
    joints_cam[hand_mask] = np.nan
    obj_mask = np.zeros(T, dtype=bool)
    if rng.uniform() < 0.4:  # object occluded by the hand while held
        taken[:] = False
        for _ in range(int(rng.integers(1, 3))):
            length = int(rng.integers(1, min(4, max_len) + 1))
            s = place_gap(length, int(t_arrive * fps), int(t_placed * fps))
            if s is not None:
                obj_mask[s : s + length] = True
    object_pose = np.concatenate([p_obj_cam, q_obj_cam], axis=1)
    object_pose[obj_mask] = np.nan

    source = f"synth/{seed}/{index:04d}" if seed is not None else f"synth/{index:04d}"
    traj = hoi.HOITrajectory(
        hand_joints=joints_cam.astype(np.float32),
        object_pose=object_pose.astype(np.float32),
        object_points=points.astype(np.float32),
        fps=fps,
        gravity=gravity.astype(np.float32),
        hand_side="left" if left else "right",
        source=source,
    )
    camera_from_table = np.eye(4)
    camera_from_table[:3, :3], camera_from_table[:3, 3] = R_c, t_c
    phases = {
        "approach": (t_reach0, t_arrive),
        "preshape": (t_ps0, t_ps1),
        "grasp": (t_arrive, t_closed),
        "lift": (t_lift0, t_lift0 + d_lift),
        "move": (t_move0, t_move0 + d_move),
        "place": (t_place0, t_placed),
        "release": (t_rel0, t_rel1),
        "retreat": (t_ret0, t_ret1),
    }
    return SynthVideo(
        traj=hoi.validate(traj),
        shape=kind,
        object_shape=obj,
        grasp=grasp_kind,
        hand_scale=model.scale,
        phases=phases,
        hand_joints_table=joints,
        object_pose_table=pose,
        camera_from_table=camera_from_table,
        extra={"lift_m": lift, "grip_m": grip, "aperture_m": float(aperture_target)},
    )


def make_trajectory(rng: np.random.Generator, index: int, seed: int | None = None) -> hoi.HOITrajectory:
    """One synthetic video as a format-1 trajectory (``make_episode(...).traj``)."""
    return make_episode(rng, index, seed).traj


def video_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of video ``index`` of corpus ``seed``: independent of the corpus size."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    return np.random.default_rng([int(seed), int(index)])


def synthesize(out_dir: str | os.PathLike, videos: int, seed: int) -> list[Path]:
    """Write ``videos`` synthetic trajectories to ``out_dir`` as ``<index:04d>.hoi.npz``
    (source ids ``synth/<seed>/<index:04d>``); returns their paths in index order.
    Deterministic: the same seed gives the same bytes."""
    if videos < 0:
        raise ValueError(f"videos must be >= 0, got {videos}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(videos):
        traj = make_trajectory(video_rng(seed, index), index, seed)
        paths.append(hoi.save(out / f"{index:04d}.hoi.npz", traj))
    return paths
