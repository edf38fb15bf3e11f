"""The hand to follow, and which hand lifts: the evidence of a hand lifting
an object, from its 3D track and from the image.

Following (``follow_hand``): the tracks are stitched into hands
(``tracking.stitch``) and one is chosen (``tracking.choose_hand``): the hand
the 100DOH annotated boxes overlap (``annotated_side_and_boxes``: the acting
side, its boxes, contact and object size), else among the hands of the
requested side the one that clearly lifts something (below; ``hand_lifts``
lifts each hand in 3D to tell, with the pipeline's ``lift_observations``
passed in), else the one that interacts most.

A hand that moves a lot is not necessarily the one that handles the object
the way a robot should learn: one hand may slide objects on the table while
the other lifts one, and a hand waved in the air rises with nothing in it. A
lift is the wrist rising against gravity while what the hand touched went
with it:

- **went with the hand** (``object_flow.went_with_hand``, measured by the
  tracker for every hand seen that moved by a third of its size over the
  last 0.25-0.6 s): the region the hand touched then (less the hand itself)
  matches the image now better where the hand took it than where it was;
- **held**: the hand's contact read from its fingers, at both ends;
- **rising**: the wrist's height along -gravity between the two frames (the
  gravity the lift records: ``--camera-pitch``, else estimated from the
  hand's own pick-and-places, else camera-down).

The frames spanned by such pairs (what the hand touched went with it, held
at both ends) make runs; a hand's lift is the largest rise of its wrist
within one run (metres).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from hop_data import hoi

from . import camera, tracking
from . import contact as scene_contact
from .options import LiftOptions
from .smooth import runs
from .video import LiftError, NoHandError

WENT_WITH = 0.1  # went_with_hand above this: the touched region matches better where the hand took it
MIN_LIFT_M = 0.03  # a lift: the wrist rises at least this far with the object (as gravity.MIN_CUE_M)
CLEARER = 1.5  # a hand's lift is clearer than another's when this many times as high


@dataclass
class Lift:
    """A hand's clearest lift: ``rise_m`` (0 when none) between frames ``frames``."""

    rise_m: float = 0.0
    frames: tuple[int, int] | None = None
    went_with: float | None = None

    def summary(self) -> dict:
        return {
            "rise_cm": round(100 * self.rise_m, 1),
            "frames": list(self.frames) if self.frames else None,
            "went_with": None if self.went_with is None else round(self.went_with, 3),
        }


def clearest_lift(joints: np.ndarray, gravity: np.ndarray, held: np.ndarray, went_with: dict[int, tuple[int, float]]) -> Lift:
    """The largest rise of the wrist (along -``gravity``) within a run of
    frames spanned by pairs (``went_with``: later frame -> (earlier frame,
    score)) where what the hand touched went with it and the hand held at
    both ends."""
    j = np.asarray(joints, dtype=np.float64)
    g = np.asarray(gravity, dtype=np.float64)
    g = g / max(1e-9, float(np.linalg.norm(g)))
    T = len(j)
    held = np.asarray(held, dtype=bool)
    seen = np.isfinite(j[:, 0]).all(axis=1)
    up = -(np.nan_to_num(j[:, 0]) @ g)
    covered = np.zeros(T, bool)
    scores = np.full(T, np.nan)
    for t1, (t0, score) in went_with.items():
        if 0 <= t0 < t1 < T and score >= WENT_WITH and seen[t0] and seen[t1] and held[t0] and held[t1]:
            covered[t0 : t1 + 1] = True
            scores[t0 : t1 + 1] = np.fmax(scores[t0 : t1 + 1], score)
    best = Lift()
    for s, e in runs(covered & seen):
        u = up[s:e]
        low = np.minimum.accumulate(u)
        k = int(np.argmax(u - low))
        if u[k] - low[k] > best.rise_m:
            start = s + int(np.flatnonzero(u[: k + 1] == low[k])[-1])
            best = Lift(float(u[k] - low[k]), (start, s + k), float(np.nanmax(scores[start : s + k + 1])))
    return best


def lifts_clearly(lift: Lift, others: list[Lift]) -> bool:
    """``lift`` is a lift (``MIN_LIFT_M``) and clearer than every other (``CLEARER`` times as high)."""
    return lift.rise_m >= MIN_LIFT_M and all(lift.rise_m >= CLEARER * o.rise_m for o in others)


# ================================================================ the hand to follow
def annotated_side_and_boxes(annotations: object, side: str, T: int) -> tuple[str, dict[int, np.ndarray], np.ndarray | None, float | None]:
    """From 100DOH annotations: (acting side, frame -> the acting hand's box,
    contact mask or None, median object box size px or None)."""
    side = annotations.acting_side() or side  # type: ignore[attr-defined]
    boxes: dict[int, np.ndarray] = {}
    sizes = []
    for k in annotations.frames:  # type: ignore[attr-defined]
        hand = annotations.acting_hand(k, None if side == "auto" else side)  # type: ignore[attr-defined]
        if hand is not None and 0 <= k < T:
            boxes[k] = np.asarray(hand.box, dtype=np.float64)
            obox = annotations.object_box(k, None if side == "auto" else side)  # type: ignore[attr-defined]
            if obox is not None:
                sizes.append(max(obox[2] - obox[0], obox[3] - obox[1]))
    contact = annotations.contact_mask(T, None if side == "auto" else side)  # type: ignore[attr-defined]
    if contact is not None and not contact.any():
        contact = None  # never holding a portable object: fall back to the grip
    return side, boxes, contact, (float(np.median(sizes)) if sizes else None)


def hand_lifts(
    hands: list[tracking.Hand], T: int, fps: float, intrinsics: camera.Intrinsics, options: LiftOptions, min_frames: int,
    lift: Callable[..., tuple[hoi.HOITrajectory, dict]],
) -> dict[int, Lift]:
    """id(hand) -> its clearest lift (``clearest_lift``), for the hands present at
    least ``min_frames`` (each lifted in 3D as it would be followed, by ``lift``
    — ``api.lift_observations``: its contact from its fingers, the gravity the
    lift would record)."""
    out: dict[int, Lift] = {}
    for h in hands:
        went = h.went_with()
        if len(h.entries) < min_frames or not went:
            continue
        try:
            traj, _ = lift([h.entries.get(t) for t in range(T)], fps, intrinsics, h.side, "", options)
        except (LiftError, ValueError):
            continue
        report = scene_contact.contact_phases(traj.hand_joints, fps)
        from . import gravity

        down = gravity.video_gravity(traj.hand_joints, report.contact, fps, options.camera_pitch, grasp_seen=report.how == "grip")
        out[id(h)] = clearest_lift(traj.hand_joints, down.gravity, report.contact, went)
    return out


def follow_hand(
    tracks: list[tracking.Track], T: int, fps: float, side: str = "auto", boxes: dict[int, np.ndarray] | None = None,
    intrinsics: camera.Intrinsics | None = None, options: LiftOptions | None = None,
    lift: Callable[..., tuple[hoi.HOITrajectory, dict]] | None = None,
) -> tuple[list[tracking.Entry | None], str, dict]:
    """Tracks -> (per-frame entries of the hand to follow, its side, facts).
    ``side`` auto: the interacting hand, its side measured from the joints'
    chirality; right / left: the interacting hand of that measured side.
    With ``intrinsics`` (and ``lift``, ``api.lift_observations``), a hand that
    clearly lifts something is preferred (``hand_lifts``; each hand present for
    the retargeting rule's minimum duration is lifted in 3D to tell). Annotated
    boxes choose the hand they overlap (its side the annotated one)."""
    if intrinsics is not None and lift is None:
        raise TypeError("follow_hand: intrinsics given without lift (api.lift_observations)")
    hands = tracking.stitch(tracks, fps)
    min_frames = int(math.ceil(hoi.RETARGET_RULE.min_duration_s * fps))
    lifts = {}
    if intrinsics is not None and not boxes and len(hands) > 1:
        lifts = hand_lifts(hands, T, fps, intrinsics, (options or LiftOptions()).validated(), min_frames, lift)  # type: ignore[arg-type]
    hand = tracking.choose_hand(hands, side, boxes, lifts, min_frames)
    if hand is None:
        if not hands:
            raise NoHandError("", "no hand is seen")
        seen = ", ".join(sorted({h.side for h in hands}))
        raise NoHandError("", f"no {side} hand is followed (hands seen: {seen})")
    chosen_side = hand.side if side == "auto" else side
    entries: list[tracking.Entry | None] = [hand.entries.get(t) for t in range(T)]
    facts = {
        "hands_tracked": len(hands),
        "tracks": len(tracks),
        "followed_tracks": [tr.id for tr in hand.tracks],
        "followed_chirality": round(hand.chirality, 3),
        "hand_scores": [round(h.score, 2) for h in sorted(hands, key=lambda h: -h.score)],
        "hand_lifts": [
            {"side": h.side, "present_frames": len(h.entries), "score": round(h.score, 2), "followed": h is hand, **lifts[id(h)].summary()}
            for h in hands if id(h) in lifts
        ],  # fmt: skip
    }
    return entries, chosen_side, facts
