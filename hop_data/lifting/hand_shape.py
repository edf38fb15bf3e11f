"""One geometry per hand: its reflections chosen for the whole video
(``steady_reflections``, below) and one palm, moved as a rigid body
(``rigid_palm``).

A human palm (wrist, thumb base, the four knuckles) hardly changes shape —
the knuckles arch by a few millimetres when the hand cups. MediaPipe's metric
landmarks of a hand half hidden by what it holds, or seen edge-on, break
that: on the real cups video the index and ring knuckles come within a tenth
of a hand size of each other in some frames (a palm folded flat, 0.3-0.4
hand sizes apart otherwise). No hand takes that shape and no robot hand can
follow it: retargeting fits the robot's palm keypoints onto the human's and
such a frame alone leaves more than its 3 cm error threshold, so the whole
file is rejected. The depth placed from such a shape jumps as well.

``rigid_palm`` therefore gives every frame of a hand the same palm: the
video's own (``canonical_palm``: the median of its widest palms — a quarter of
its frames — in their own frame, aligned once more by least squares; a fold
or a foreshortening only narrows a palm) fitted rigidly (rotation and
translation, Kabsch) onto that frame's palm joints; each finger is moved with
its base joint (its own bends and direction kept). Metric landmarks, hand-
centred, one size per video (the scale prior comes first).
"""

from __future__ import annotations

import numpy as np

# the joints moved as one body (MediaPipe / MANO order): wrist, thumb CMC, index, middle, ring, little
# MCP — image_geometry.PALM (the palm centre's) and the thumb's base
RIGID = (0, 1, 5, 9, 13, 17)
# each finger's joints after its base joint (the base in RIGID)
FINGERS = {1: (2, 3, 4), 5: (6, 7, 8), 9: (10, 11, 12), 13: (14, 15, 16), 17: (18, 19, 20)}
# a frame whose hand, turned as its neighbours have it, has a chirality this far on the other side
# (dimensionless, ``hoi.chirality``: 0.1-0.8 in magnitude for a hand that tells) is of the other hand
OTHER_HAND = 0.1
# what one frame's chirality on the wrong side costs against a turn (1 - cosine of the pointing and the
# across directions) between frames in ``steady_reflections``. On the cups video (16 attempts per file,
# with the rigid palm; docs/lifting.md) 0.25 keeps 28 of 48 attempts over 65 % of the frames, 2 keeps 27
# over 76 % but leaves turns of 100-130° between frames, a per-frame choice 1
CHIRALITY_WEIGHT = 0.25
# the fraction of a hand's frames, those of the widest palm (index -> little knuckle against wrist ->
# middle knuckle), that shape its palm: MediaPipe on open hands in photos gives 0.6-0.85, on hands
# holding something 0.2-0.5, and a video's widest quarter 0.5-0.7 (the real videos here)
WIDEST = 0.25


def _local(palm: np.ndarray) -> np.ndarray:
    """(N, 6, 3) palms -> (N, 3, 3) rows: the palm's own axes (wrist -> middle
    knuckle; across the knuckles, index side; their normal)."""
    e1 = palm[:, 3] - palm[:, 0]
    e1 /= np.linalg.norm(e1, axis=-1, keepdims=True)
    across = palm[:, 2] - palm[:, 5]
    e2 = across - np.sum(across * e1, axis=-1, keepdims=True) * e1
    e2 /= np.linalg.norm(e2, axis=-1, keepdims=True)
    return np.stack([e1, e2, np.cross(e1, e2)], axis=1)


def kabsch(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (N, 3, 3) and translation (N, 3) taking source (P, 3) onto each
    target (N, P, 3) in the least-squares sense (proper rotations only)."""
    src = source - source.mean(axis=0)
    centre = target.mean(axis=1)
    h = np.einsum("pi,npj->nij", src, target - centre[:, None])
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(u @ vt))
    u[:, :, -1] *= d[:, None]
    rot = np.transpose(u @ vt, (0, 2, 1))
    return rot, centre - np.einsum("nij,j->ni", rot, source.mean(axis=0))


def canonical_palm(metric: np.ndarray) -> np.ndarray:
    """(T, 21, 3) metric joints (NaN where unseen) -> (6, 3) the hand's palm
    (``RIGID`` order, wrist at the origin), from its ``WIDEST`` frames. Raises
    ValueError when no frame shows the whole palm."""
    m = np.asarray(metric, dtype=np.float64)
    palm = m[:, RIGID]
    ok = np.isfinite(palm).all(axis=(1, 2))
    if not ok.any():
        raise ValueError("no frame shows the whole palm (wrist, thumb base and the four knuckles)")
    with np.errstate(invalid="ignore", divide="ignore"):
        span = np.linalg.norm(palm[:, 2] - palm[:, 5], axis=-1) / np.linalg.norm(palm[:, 3] - palm[:, 0], axis=-1)
    ok &= np.isfinite(span)
    ok &= span >= np.quantile(span[ok], 1.0 - WIDEST)
    p = palm[ok] - palm[ok, :1]
    shape = np.median(np.einsum("nij,npj->npi", _local(palm[ok]), p), axis=0)
    rot, trans = kabsch(shape, p)  # once more: each frame's palm brought onto it by least squares
    back = np.einsum("nji,npj->npi", rot, p - trans[:, None])
    shape = np.median(back, axis=0)
    return shape - shape[0]


def rigid_palm(metric: np.ndarray, shape: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(T, 21, 3) metric joints -> (the joints with the palm ``shape``
    (default ``canonical_palm``) fitted rigidly onto each frame's palm and
    each finger moved with its base, (T,) the mean distance (m) the palm's
    joints moved). Unseen frames (NaN) stay unseen."""
    m = np.asarray(metric, dtype=np.float64)
    shape = canonical_palm(m) if shape is None else np.asarray(shape, dtype=np.float64)
    out = m.copy()
    moved = np.full(len(m), np.nan)
    ok = np.isfinite(m[:, RIGID]).all(axis=(1, 2))
    if not ok.any():
        return out, moved
    rot, trans = kabsch(shape, m[ok][:, RIGID])
    palm = np.einsum("nij,pj->npi", rot, shape) + trans[:, None]
    delta = palm - m[ok][:, RIGID]
    rows = out[ok]
    rows[:, RIGID] = palm
    for k, base in enumerate(RIGID):
        if base in FINGERS:
            rows[:, list(FINGERS[base])] += delta[:, k, None]
    out[ok] = rows
    moved[ok] = np.linalg.norm(delta, axis=-1).mean(axis=1)
    return out, moved


def reflect_in_depth(joints: np.ndarray) -> np.ndarray:
    """(..., 21, 3) -> the same hands reflected in depth about their centres
    (the other hand a monocular view cannot tell from this one)."""
    j = np.array(joints, dtype=np.float64)
    c = j[..., 2].mean(axis=-1, keepdims=True)
    j[..., 2] = 2.0 * c - j[..., 2]
    return j


def _directions(joints: np.ndarray) -> np.ndarray:
    """(N, 21, 3) -> (N, 2, 3) unit wrist -> middle knuckle and index -> little
    knuckle: where the hand points and how its palm lies (both reflect as positions)."""
    v = np.stack([joints[:, 9] - joints[:, 0], joints[:, 17] - joints[:, 5]], axis=1)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def steady_reflections(metric: np.ndarray, side: str, chirality_weight: float = CHIRALITY_WEIGHT) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame metric hands (T, 21, 3; NaN rows unseen) -> (the hands, each
    as given or reflected in depth, (T,) float: the chosen hand's chirality
    signed so that > 0 agrees with ``side``; NaN where unseen).

    Each frame's hand can be the one given or its reflection in depth (the
    same image; one is a right hand, the other a left one). A per-frame
    choice by chirality alone flips the hand back and forth where the backend's
    handedness wavers (on the cups video it calls the right hand a left one in
    26 of 30 frames, then a right one for single frames, pointing the fingers
    at the camera each time: reflected, they point away): a hand turning 100°
    and back between two frames, which smoothing then folds into a hand of a
    few centimetres. So the choice is made for the whole video at once
    (Viterbi over two states per frame): each frame pays ``chirality_weight``
    times how far its chirality is on the wrong side, each step between seen
    frames pays the turn of the hand's pointing and across directions
    (1 - cosine, each; divided by the frames between them). A hand does not
    turn 100° in a frame, so the turn weighs most: the hand is turned to the
    other reflection only across a gap or after a run of frames of the other
    hand (~15 frames at chirality 0.3); frames left of the other hand are
    marked by their negative chirality (``OTHER_HAND``)."""
    from hop_data import hoi

    m = np.asarray(metric, dtype=np.float64)
    sign = 1.0 if side == "right" else -1.0
    seen = np.flatnonzero(np.isfinite(m).all(axis=(1, 2)))
    out = m.copy()
    agree = np.full(len(m), np.nan)
    if not seen.size:
        return out, agree
    cand = np.stack([m[seen], reflect_in_depth(m[seen])], axis=1)  # (n, 2, 21, 3)
    chir = sign * np.stack([hoi.chirality(cand[:, 0]), -hoi.chirality(cand[:, 0])], axis=1)  # (n, 2)
    unary = chirality_weight * np.maximum(0.0, -np.nan_to_num(chir))
    dirs = np.stack([_directions(cand[:, 0]), _directions(cand[:, 1])], axis=1)  # (n, 2, 2, 3)
    cost = unary[0].copy()
    back = np.zeros((len(seen), 2), dtype=np.int64)
    for k in range(1, len(seen)):
        gap = seen[k] - seen[k - 1]
        # turn[i, j]: from state i at the previous frame to state j now
        turn = np.sum(1.0 - np.einsum("iad,jad->ija", dirs[k - 1], dirs[k]), axis=-1) / gap
        total = cost[:, None] + turn
        back[k] = np.argmin(total, axis=0)
        cost = total[back[k], [0, 1]] + unary[k]
    state = np.empty(len(seen), dtype=np.int64)
    state[-1] = int(np.argmin(cost))
    for k in range(len(seen) - 1, 0, -1):
        state[k - 1] = back[k, state[k]]
    out[seen] = cand[np.arange(len(seen)), state]
    agree[seen] = chir[np.arange(len(seen)), state]
    return out, agree
