"""Cutting a lifted video into interaction segments: the whole-video
trajectory is cut at every gap the retargeting rule cannot bridge and at
every jump, pieces too long for retargeting are split where the hand pauses
low, and each piece long enough and showing interaction gets its own
trajectory (its own object proxy), checked with what retargeting runs; the
others carry the reason they were dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hop_data import hoi

from . import camera, objects
from .options import LiftOptions


@dataclass
class LiftedSegment:
    """One piece of a lifted video: frames [start, stop) and, when written, its trajectory."""

    start: int
    stop: int
    traj: hoi.HOITrajectory | None = None
    reason: str = ""  # why it was dropped (empty when kept)

    def as_dict(self, fps: float) -> dict:
        d = {"frames": [self.start, self.stop - 1], "seconds": round((self.stop - self.start) / fps, 3)}
        if self.reason:
            d["reason"] = self.reason
        return d


def _interaction(traj: hoi.HOITrajectory, contact: np.ndarray | None) -> str | None:
    """How a piece shows interaction (None: the hand idles): carried frames,
    annotated contact, a grip that changes (the thumb-to-fingers aperture
    ranges over at least a quarter of a hand size), or motion (the wrist
    travels at least one hand size)."""
    prov = hoi.provenance(traj)
    if (prov == hoi.CARRIED).any():
        return "carried"
    if contact is not None and contact.any():
        return "annotated contact"
    j = traj.hand_joints.astype(np.float64)
    seen = hoi.hand_seen(j)
    size = hoi.hand_size(j[seen])
    ratio = objects.grip_aperture(j[seen]) / size
    if np.percentile(ratio, 95) - np.percentile(ratio, 5) >= 0.25:
        return "grip"
    w = j[seen, 0]
    if np.linalg.norm(np.diff(w, axis=0), axis=1).sum() >= size:
        return "motion"
    return None


def _shorten(segments: list[hoi.Segment], traj: hoi.HOITrajectory, max_s: float | None, rule: hoi.GapRule) -> list[hoi.Segment]:
    """Split usable pieces longer than ``max_s`` where the hand is slow and
    low (a pause between actions, near the table: retargeting puts the
    object's first pose on its table), never into pieces shorter than the rule's
    minimum: retargeting judges every step of a file, so one bad moment
    costs a long file whole, while short pieces cost only themselves."""
    if not max_s:
        return segments
    fps = traj.fps
    wrist = traj.hand_joints[:, 0].astype(np.float64)
    speed = np.linalg.norm(np.gradient(wrist, axis=0), axis=1) * fps
    height = -(wrist @ traj.gravity.astype(np.float64))  # up, along -gravity
    min_n = rule.min_frames(fps)
    out: list[hoi.Segment] = []
    todo = list(segments)
    while todo:
        seg = todo.pop(0)
        n = seg.stop - seg.start
        if not seg.usable or n <= max_s * fps or n < 2 * min_n:
            out.append(seg)
            continue
        # the cut: a slow, low frame between min_n from either end, favouring the middle — a piece
        # should start as a hand at rest near the table does (retargeting sets the object down there)
        lo, hi = seg.start + min_n, seg.stop - min_n
        ks = np.arange(lo, hi + 1)
        low = height[ks] - np.nanmin(height[seg.start : seg.stop])
        v = np.where(np.isfinite(speed[ks]), speed[ks] + 5.0 * low, np.inf) + 0.05 * np.abs(ks - (seg.start + seg.stop) / 2) / fps
        k = int(ks[int(np.argmin(v))])
        todo[:0] = [hoi.Segment(seg.start, k, True), hoi.Segment(k, seg.stop, True)]
    return out


def cut_segments(
    traj: hoi.HOITrajectory,
    options: LiftOptions,
    contact: np.ndarray | None = None,
    object_box_px: float | None = None,
    intrinsics: camera.Intrinsics | None = None,
    rule: hoi.GapRule = hoi.RETARGET_RULE,
) -> list[LiftedSegment]:
    """A whole-video trajectory -> its pieces (``hoi.split_segments``: cut at
    every gap the rule cannot bridge and at every jump; pieces longer than
    ``options.max_segment_s`` split where the hand is slowest). A piece long enough
    and with interaction gets its own trajectory (its object proxy made from
    its own frames; source ``<source>/frames_<first>-<last>``, or the video's
    source when the piece is the whole video), checked with ``hoi.prepare``
    (what retargeting runs); the others carry the reason they were dropped."""
    T = traj.num_frames
    out: list[LiftedSegment] = []
    prov_all = hoi.provenance(traj)
    for seg in _shorten(hoi.split_segments(traj.hand_joints, traj.fps, rule), traj, options.max_segment_s, rule):
        piece = LiftedSegment(seg.start, seg.stop)
        out.append(piece)
        if not seg.usable:
            piece.reason = seg.reason
            continue
        sl = slice(seg.start, seg.stop)
        joints = traj.hand_joints[sl].astype(np.float64)
        prov = prov_all[sl].copy()
        carried = prov == hoi.CARRIED
        c = None if contact is None else contact[sl]
        if c is not None and not c.any():
            c = None
        diameter = None
        if object_box_px is not None and intrinsics is not None:
            diameter = object_box_px * float(np.nanmedian(joints[..., 2])) / intrinsics.fx
        if c is None:
            c = objects.contact_from_grip(joints, traj.fps) | carried
        proxy = objects.anchored_object(joints, traj.fps, contact=c, diameter=diameter, shape=options.object_shape)
        whole = seg.start == 0 and seg.stop == T
        seg_traj = hoi.HOITrajectory(
            hand_joints=joints.astype(np.float32), object_pose=proxy.pose, object_points=proxy.points, fps=traj.fps,
            gravity=traj.gravity, hand_side=traj.hand_side,
            source=traj.source if whole else f"{traj.source}/frames_{seg.start}-{seg.stop - 1}", hand_provenance=prov,
        )  # fmt: skip
        why = _interaction(seg_traj, None if contact is None else contact[sl])
        if why is None:
            piece.reason = "no interaction (the hand idles: no carried frame, its grip and place hardly change)"
            continue
        try:
            hoi.prepare(seg_traj)  # what retargeting runs: a piece lifting keeps is one it accepts
        except hoi.HOIFormatError as e:
            piece.reason = f"refused by the retargeting rule: {e.problem}"
            continue
        piece.traj = seg_traj
    return out
