"""The synthetic human hand: a kinematic 21-joint skeleton (``HandModel``) with
anthropometric bone lengths, posed by postural synergies, and the points of it
that may touch an object (see the package notes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hop_data import hoi

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



@dataclass(frozen=True)
class Person:
    """One person's hand and its habits: the skeleton, a relaxed rest posture
    and the weights of the three synergies (flexion, opposition, spread)."""

    model: HandModel
    rest: np.ndarray  # (21,) posture
    flex: np.ndarray  # (21,) synergy directions, per-person weights
    opposition: np.ndarray
    spread: np.ndarray

    @staticmethod
    def sample(rng: np.random.Generator) -> "Person":
        model = HandModel.sample(rng)
        # Per-person posture variation: rest posture and synergy weights.
        rest = np.clip(POSTURE_REST + rng.normal(0.0, 0.04, NUM_POSTURE), POSTURE_LOWER, POSTURE_UPPER)
        flex = SYNERGY_FLEX * (1.0 + rng.normal(0.0, 0.08, NUM_POSTURE))
        opposition = SYNERGY_OPPOSITION * (1.0 + rng.normal(0.0, 0.08, NUM_POSTURE))
        spread = SYNERGY_SPREAD * (1.0 + rng.normal(0.0, 0.08, NUM_POSTURE))
        return Person(model, rest, flex, opposition, spread)
