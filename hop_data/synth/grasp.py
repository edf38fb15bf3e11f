"""The grasp: where the hand takes the object (side or top, power or
precision), its pre-shape, and the fit of the digits round the object (see the
package notes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .hand import (
    _DIGIT_POSTURE,
    FINGER_RADIUS_M,
    NUM_POSTURE,
    PALM_THICKNESS_M,
    POSTURE_LOWER,
    POSTURE_UPPER,
    SYNERGY_FLEX,
    SYNERGY_OPPOSITION,
    THUMB_ABDUCTION,
    HandModel,
    Person,
    _digit_points,
    _palm_points,
    _rot,
)
from .objects import ObjectShape


@dataclass(frozen=True)
class Grasp:
    """The grasp of one video, table frame: the hand's pose at the grasp and
    the postures it goes through, and the object's pose before it is taken."""

    kind: str  # "side" or "top"
    R: np.ndarray  # (3, 3) hand orientation at the grasp
    p: np.ndarray  # (3,) wrist position at the grasp
    back: np.ndarray  # (3,) the direction the hand comes in from
    yaw0: float  # object yaw before it is taken
    R_obj0: np.ndarray  # (3, 3)
    p_obj0: np.ndarray  # (3,)
    preshape: np.ndarray  # (21,) postures: opened for the approach,
    posture: np.ndarray  # closed round the object,
    release: np.ndarray  # and partly opened again to let go
    grip: float  # object width the hand spans (m)
    aperture: float  # thumb-index aperture aimed at by the pre-shape (m)


def plan(rng: np.random.Generator, obj: ObjectShape, person: Person) -> Grasp:
    """The grasp of ``obj`` by ``person``'s hand, the object placed on the table."""
    model, rest = person.model, person.rest
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
    synergies = rest + c_opp * person.opposition + c_spread * person.spread + c_flex[:, None] * person.flex
    cands = np.clip(synergies, POSTURE_LOWER, POSTURE_UPPER)
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
    return Grasp(
        kind=grasp_kind, R=R_grasp, p=p_grasp, back=back, yaw0=yaw0, R_obj0=R_obj0, p_obj0=p_obj0,
        preshape=preshape, posture=posture_grasp, release=release, grip=grip, aperture=float(aperture_target),
    )  # fmt: skip


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
