"""The object a hand holds, followed in the image by optical flow, so that a
hidden hand can be carried with it (``tracking.HandTracker`` uses it; OpenCV
is imported only when a flow is made)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .hands import HandObservation
from .image_geometry import IDENTITY, PALM, apply, compose

if TYPE_CHECKING:
    from .tracking import HandTracker


class ObjectFlow:
    """The region a hand touches, followed by optical flow as one similarity
    transform (see the module doc). Built on the grey frame where the hand was
    last seen; ``step(grey)`` per following frame; ``matrix`` (2, 3) maps
    full-resolution pixels of the anchor frame to the current frame."""

    def __init__(
        self, grey: np.ndarray, obs: HandObservation | None, scale: float, min_points: int = 5, mask: np.ndarray | None = None
    ):
        import cv2

        self._cv2 = cv2
        self.scale = scale  # flow image pixels per full-resolution pixel
        self.min_points = min_points
        self.matrix = IDENTITY.copy()
        self.moved = 0.0  # largest displacement of the region's centre so far (full-res px)
        self.segment = obs is not None  # a hand's region: find the object in it; a given mask: it is the object
        h, w = grey.shape[:2]
        if obs is not None:
            xy = obs.image_xy * scale
        else:  # an object mask (flow resolution, non-zero = the object)
            ys, xs = np.nonzero(mask)
            xy = np.stack([xs, ys], axis=1).astype(np.float64) if len(xs) else np.zeros((1, 2))
        x1, y1 = xy.min(axis=0)
        x2, y2 = xy.max(axis=0)
        size = max(x2 - x1, y2 - y1, 8.0)
        self.box = np.array([x1, y1, x2, y2]) / scale  # the region's box at the seed (full resolution)
        if mask is None:
            assert obs is not None
            # the hand's box, widened, reaching past the fingertips (where a grasped object sits)
            reach = (xy[[8, 12, 16]].mean(axis=0) - xy[0]) * 0.5
            tips = xy + reach
            allp = np.concatenate([xy, tips])
            bx1, by1 = allp.min(axis=0) - 0.15 * size
            bx2, by2 = allp.max(axis=0) + 0.15 * size
            mask = np.zeros((h, w), np.uint8)
            mask[int(max(0, by1)) : int(min(h, by2)), int(max(0, bx1)) : int(min(w, bx2))] = 255
        mask = np.where(np.asarray(mask) > 0, 255, 0).astype(np.uint8)
        self.mask = mask
        spacing = max(3, int(size / 12))
        pts = cv2.goodFeaturesToTrack(grey, maxCorners=200, qualityLevel=0.01, minDistance=spacing, mask=mask, blockSize=5)
        self.points = pts.reshape(-1, 2) if pts is not None else np.zeros((0, 2), np.float32)
        # background reference: a ring around the region (camera motion)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        ring = np.zeros((h, w), np.uint8)
        R = 1.6 * size
        ring[int(max(0, cy - R)) : int(min(h, cy + R)), int(max(0, cx - R)) : int(min(w, cx + R))] = 255
        ring[mask > 0] = 0
        bg = cv2.goodFeaturesToTrack(grey, maxCorners=60, qualityLevel=0.01, minDistance=2 * spacing, mask=ring, blockSize=5)
        self.background = bg.reshape(-1, 2) if bg is not None else np.zeros((0, 2), np.float32)
        self.origin = self.points.mean(axis=0) if len(self.points) else np.zeros(2)
        self.seed = self.points.copy()  # where each point started (flow pixels)
        self.bg_total = IDENTITY.copy()  # the background's motion since the seed
        self.prev = grey
        self.ok = len(self.points) >= min_points

    def _track(self, pts: np.ndarray, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """LK from the previous frame, forward-backward checked: (new points, ok mask)."""
        cv2 = self._cv2
        if len(pts) == 0:
            return pts, np.zeros(0, bool)
        p0 = pts.reshape(-1, 1, 2).astype(np.float32)
        lk = dict(winSize=(15, 15), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(self.prev, grey, p0, None, **lk)
        p0b, st2, _ = cv2.calcOpticalFlowPyrLK(grey, self.prev, p1, None, **lk)
        fb = np.linalg.norm((p0 - p0b).reshape(-1, 2), axis=1)
        ok = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb < 1.0)
        return p1.reshape(-1, 2), ok

    def step(self, grey: np.ndarray) -> bool:
        """Follow the region into the next frame; False when it is lost."""
        cv2 = self._cv2
        p1, ok = self._track(self.points, grey)
        b1, bok = self._track(self.background, grey)
        p0, p1, seed = self.points[ok], p1[ok], self.seed[ok]
        if len(p0) < self.min_points:
            self.prev = grey
            return False
        # the background's motion (identity for a static camera)
        bg = IDENTITY.copy()
        if bok.sum() >= 6:
            M, _ = cv2.estimateAffinePartial2D(self.background[bok], b1[bok], method=cv2.RANSAC, ransacReprojThreshold=1.0)
            if M is not None:
                bg = M
        self.background = b1[bok]
        self.bg_total = compose(bg, self.bg_total)
        # points that keep to the background are not the object: once a coherent group of points
        # has moved against the background since the seed, the region is that group (the rest is dropped)
        moving = np.linalg.norm(p1 - apply(self.bg_total, seed), axis=1) > 1.0
        M = None
        if self.segment and moving.sum() >= self.min_points and moving.mean() >= 0.08:
            Mm, inl = cv2.estimateAffinePartial2D(p0[moving], p1[moving], method=cv2.RANSAC, ransacReprojThreshold=1.0)
            if Mm is not None and inl.sum() >= max(self.min_points, 0.5 * moving.sum()):
                M = Mm
                keep = np.zeros(len(p0), bool)
                keep[np.flatnonzero(moving)[inl.ravel() == 1]] = True
                p0, p1, seed = p0[keep], p1[keep], seed[keep]
        if M is None:  # nothing moves coherently: the region moves as a whole (with the background)
            M, _ = cv2.estimateAffinePartial2D(p0, p1, method=cv2.RANSAC, ransacReprojThreshold=1.0)
        if M is None:
            self.prev = grey
            return False
        self.seed = seed
        self.points = p1
        self.prev = grey
        # compose in full-resolution pixels: x_full -> (M (s x_full)) / s
        s = self.scale
        step = np.concatenate([M[:, :2], M[:, 2:] / s], axis=1)
        self.matrix = compose(step, self.matrix)
        centre = apply(self.matrix, self.origin / s)
        self.moved = max(self.moved, float(np.linalg.norm(centre - self.origin / s)))
        return True


class _WithObject:
    """A hand carried with the given object (``HandTracker.object_mask``): the
    object's own motion since the anchor frame, as ``ObjectFlow`` offers it."""

    def __init__(self, tracker: HandTracker, anchor: int):
        self.tracker, self.anchor, self.t = tracker, anchor, anchor
        self.matrix = IDENTITY.copy()
        self.moved = 0.0
        self.ok = anchor in tracker.object_mats

    def step(self, grey: np.ndarray) -> bool:
        self.t += 1
        mats = self.tracker.object_mats
        if self.t not in mats or self.anchor not in mats:
            return False
        A = mats[self.anchor]
        inv = np.linalg.inv(np.vstack([A, [0.0, 0.0, 1.0]]))[:2]
        self.matrix = compose(mats[self.t], inv)
        box = self.tracker._object_box(self.anchor)
        c = 0.5 * (box[:2] + box[2:]) if box is not None else np.zeros(2)
        self.moved = max(self.moved, float(np.linalg.norm(apply(self.matrix, c) - c)))
        return True


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    d = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / d) if d > 1e-9 else 0.0


def went_with_hand(
    grey0: np.ndarray, grey1: np.ndarray, before: HandObservation, after: HandObservation, scale: float
) -> float | None:
    """Did what the hand touched go with it? Two grey frames (flow resolution,
    ``scale`` flow pixels per full-resolution pixel) a few tenths of a second
    apart, the hand seen in both. The region the hand touches in the first
    (its landmark box reaching half a hand past the fingertips, widened 15 %,
    less the hand itself) is compared, by normalised cross-correlation, with
    the second frame twice: moved as the hand moved (its similarity fitted to
    the 21 landmarks) and left in place. Returns the first minus the second:
    > 0 when the touched thing went with the hand (an object held and moved),
    < 0 when it stayed (a hand moving over a still scene). None when the hand
    hardly moved or the region is too small."""
    import cv2

    a, b = before.image_xy * scale, after.image_xy * scale
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None
    h, w = grey0.shape[:2]
    x1, y1 = a.min(axis=0)
    x2, y2 = a.max(axis=0)
    size = max(x2 - x1, y2 - y1, 8.0)
    if float(np.linalg.norm(b[list(PALM)].mean(axis=0) - a[list(PALM)].mean(axis=0))) < 0.3 * size:
        return None
    M, _ = cv2.estimateAffinePartial2D(a.astype(np.float32), b.astype(np.float32))
    if M is None:
        return None
    reach = (a[[8, 12, 16]].mean(axis=0) - a[0]) * 0.5
    allp = np.concatenate([a, a + reach])
    bx1, by1 = allp.min(axis=0) - 0.15 * size
    bx2, by2 = allp.max(axis=0) + 0.15 * size
    region = np.zeros((h, w), np.uint8)
    region[int(max(0, by1)) : int(min(h, by2)), int(max(0, bx1)) : int(min(w, bx2))] = 255
    grow = np.ones((2 * max(1, int(0.08 * size)) + 1,) * 2, np.uint8)

    def hull(xy: np.ndarray) -> np.ndarray:
        m = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(m, cv2.convexHull(xy.astype(np.float32)).astype(np.int32), 255)
        return cv2.dilate(m, grow) > 0

    hand0, hand1 = hull(a), hull(b)
    obj0 = (region > 0) & ~hand0
    moved = cv2.warpAffine(grey0, M, (w, h), flags=cv2.INTER_LINEAR)
    obj_moved = cv2.warpAffine(obj0.astype(np.uint8), M, (w, h), flags=cv2.INTER_NEAREST) > 0
    inside = np.zeros((h, w), bool)
    inside[2 : h - 2, 2 : w - 2] = True
    with_mask = obj_moved & ~hand1 & inside
    stay_mask = obj0 & ~hand1 & ~hand0 & inside
    if with_mask.sum() < 0.05 * size * size or stay_mask.sum() < 0.05 * size * size:
        return None
    return _ncc(moved[with_mask], grey1[with_mask]) - _ncc(grey0[stay_mask], grey1[stay_mask])
