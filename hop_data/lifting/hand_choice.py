"""Which hand lifts: evidence of a hand lifting an object, from its 3D track
and from the image.

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
within one run (metres). Only numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .smooth import runs

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
