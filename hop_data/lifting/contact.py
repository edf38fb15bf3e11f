"""Contact phases of a lifted video: when the hand holds the object, and whether it ever does.

Lifting sees the hand, not the object, so contact is read from the hand
(unless 100 Days of Hands annotations say it):

- **grip**: the thumb tip closes on the index / middle tips
  (``objects.contact_from_grip``: under 0.9 hand sizes, released above 1.1);
- **wrap**: the fingers flex well beyond the video's own open posture — the
  mean flexion of the four fingers (the bend at knuckle, middle and end
  joints, summed) more than ``FLEX_RISE_DEG`` above its 10th percentile over
  the video, for at least ``objects.MIN_CONTACT_S`` (a power grasp of a wide
  object closes the fingers without closing the thumb onto them).

The hand holds wherever either says so. Where neither ever does:

- fingers extended and the thumb away from them throughout (median flexion
  under ``OPEN_HAND_FLEX_DEG``, grip aperture over ``objects.GRIP_OPEN``
  hand sizes): an open hand, **no hand-object interaction** (a hand waved or
  held up in front of the camera). The video is flagged in the lift summary,
  its file records no contact frame, and retargeting refuses it unless told
  otherwise (``--allow-no-interaction``);
- otherwise the clip is taken to be cut around a grasp: held throughout
  (as before), with a note that no grasp was seen.

Phases (``PHASES``), per frame: **approach** before a contact run (after a
release, the second half of the pause before the next grasp); **grasp** from
the start of a contact run until the grip centre has moved ``LIFT_START_M``
from where the hand closed (or ``GRASP_MAX_S`` passed): the hand closes on
the object; **carry** the rest of the run: the object moves with the hand;
**release** after the run (the first half of a pause before another grasp).

Only numpy (runs in the lifting environment).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from hop_data import hoi

from . import objects
from .smooth import runs

PHASES = ("approach", "grasp", "carry", "release")
FLEX_RISE_DEG = 25.0  # degrees of mean finger flexion above the video's open posture that count as wrapping
OPEN_HAND_FLEX_DEG = 50.0  # an open hand: median mean-finger flexion below this ...
LIFT_START_M = 0.02  # m the grip centre moves from where the hand closed: the grasp is over, the object moves
GRASP_MAX_S = 1.0  # s: the grasp phase lasts at most this long
MERGE_GAP_S = 0.2  # contact runs closer than this are one


@dataclass
class ContactReport:
    """What the lifting stage found about contact in one video.

    contact (T,) bool: the hand holds the object (all False without
    interaction); phase (T,) str, one of ``PHASES`` ("" where there is no
    interaction); interaction: whether the hand ever holds the object;
    how: ``annotations``, ``grip`` (grip / wrap seen), ``held_throughout``
    (no grasp seen, taken as held) or ``open_hand`` (no interaction);
    verdict: one sentence for a person."""

    contact: np.ndarray
    phase: np.ndarray
    interaction: bool
    how: str
    verdict: str
    stats: dict = field(default_factory=dict)

    def segments(self, fps: float) -> list[dict]:
        """The phases as runs: [{phase, start, stop (frames, stop exclusive), start_s, stop_s}]."""
        out = []
        for name in PHASES:
            for s, e in runs(self.phase == name):
                out.append({"phase": name, "start": s, "stop": e, "start_s": round(s / fps, 3), "stop_s": round(e / fps, 3)})
        return sorted(out, key=lambda d: d["start"])

    def summary(self, fps: float) -> dict:
        """JSON-ready: interaction, how, verdict, phase seconds, segments."""
        seconds = {name: round(float(np.sum(self.phase == name)) / fps, 3) for name in PHASES}
        return {
            "interaction": self.interaction,
            "how": self.how,
            "verdict": self.verdict,
            "contact_frames": int(self.contact.sum()),
            "phase_seconds": seconds,
            "segments": self.segments(fps),
            **self.stats,
        }


def finger_flexion(joints: np.ndarray) -> np.ndarray:
    """(T, 21, 3) -> (T,) mean over index, middle, ring and little of the
    finger's total bend (degrees): the angles between consecutive bones
    wrist -> knuckle -> middle joint -> end joint -> tip, summed. About 0 for
    a flat hand, 60-80 relaxed, 100-180 wrapped around an object. NaN where unseen."""
    j = np.asarray(joints, dtype=np.float64)
    total = np.zeros(len(j))
    for mcp in (5, 9, 13, 17):
        chain = [j[:, 0], j[:, mcp], j[:, mcp + 1], j[:, mcp + 2], j[:, mcp + 3]]
        bones = [b - a for a, b in zip(chain[:-1], chain[1:])]
        for a, b in zip(bones[:-1], bones[1:]):
            with np.errstate(invalid="ignore", divide="ignore"):
                c = np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
            total += np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))
    return total / 4.0


def _min_runs(mask: np.ndarray, min_len: int) -> np.ndarray:
    out = mask.copy()
    for s, e in runs(mask):
        if e - s < min_len:
            out[s:e] = False
    return out


def _merge(mask: np.ndarray, max_gap: int) -> np.ndarray:
    out = mask.copy()
    spans = runs(mask)
    for (_, e0), (s1, _) in zip(spans[:-1], spans[1:]):
        if s1 - e0 <= max_gap:
            out[e0:s1] = True
    return out


def detect_contact(joints: np.ndarray, fps: float) -> tuple[np.ndarray, str, dict]:
    """(contact (T,) bool, how, stats) from the hand alone (see the module doc)."""
    j = np.asarray(joints, dtype=np.float64)
    seen = np.isfinite(j).all(axis=(1, 2))
    size = float(np.nanmedian(np.linalg.norm(j[seen, 9] - j[seen, 0], axis=-1))) if seen.any() else float("nan")
    ratio = objects.grip_aperture(j) / size
    flex = finger_flexion(j)
    min_len = max(1, int(round(objects.MIN_CONTACT_S * fps)))
    stats = {
        "median_finger_flexion_deg": round(float(np.nanmedian(flex[seen])), 1) if seen.any() else None,
        "median_grip_aperture": round(float(np.nanmedian(ratio[seen])), 3) if seen.any() else None,
    }
    closes = bool(np.any(ratio[seen] < objects.GRIP_CLOSED))
    grip = objects.contact_from_grip(j, fps) if closes else np.zeros(len(j), bool)
    if closes and np.array_equal(grip, seen) and not np.all(ratio[seen] < objects.GRIP_OPEN):
        grip = np.zeros(len(j), bool)  # closings shorter than the minimum: contact_from_grip fell back to "held"
    wrap = np.zeros(len(j), bool)
    if seen.sum() >= min_len:
        baseline = float(np.nanpercentile(flex[seen], 10))
        wrap = _min_runs(seen & (flex > baseline + FLEX_RISE_DEG), min_len)
    contact = _merge(grip | wrap, max(0, int(round(MERGE_GAP_S * fps))))
    if contact.any():
        return contact, "grip", stats
    if (
        seen.any()
        and stats["median_finger_flexion_deg"] < OPEN_HAND_FLEX_DEG
        and stats["median_grip_aperture"] > objects.GRIP_OPEN
    ):
        return np.zeros(len(j), bool), "open_hand", stats
    return seen.copy(), "held_throughout", stats


def phases_of(contact: np.ndarray, joints: np.ndarray, fps: float) -> np.ndarray:
    """(T,) str phase per frame from a contact mask (see the module doc)."""
    T = len(contact)
    phase = np.full(T, "", dtype=object)
    spans = runs(contact)
    if not spans:
        return phase
    centre = objects.grip_centre(joints)
    max_grasp = max(1, int(round(GRASP_MAX_S * fps)))
    phase[: spans[0][0]] = "approach"
    for k, (s, e) in enumerate(spans):
        moved = np.linalg.norm(centre[s:e] - centre[s], axis=-1)
        away = np.flatnonzero(np.nan_to_num(moved, nan=0.0) > LIFT_START_M)
        lift = s + int(away[0]) if away.size else e
        lift = min(lift, s + max_grasp, e)
        phase[s:lift] = "grasp"
        phase[lift:e] = "carry"
        nxt = spans[k + 1][0] if k + 1 < len(spans) else T
        half = e + (nxt - e) // 2 if k + 1 < len(spans) else T
        phase[e:half] = "release"
        phase[half:nxt] = "approach"
    return phase


def contact_phases(joints: np.ndarray, fps: float, annotated: np.ndarray | None = None) -> ContactReport:
    """The contact report of a lifted hand track (T, 21, 3), camera frame.
    ``annotated``: (T,) contact from annotations (None: read from the hand)."""
    j = np.asarray(joints, dtype=np.float64)
    T = len(j)
    if annotated is not None:
        contact, how = np.asarray(annotated, dtype=bool).copy(), "annotations"
        stats: dict = {}
    else:
        contact, how, stats = detect_contact(j, fps)
    if not contact.any():
        why = (
            "the annotations show no contact with a portable object"
            if how == "annotations"
            else f"the hand stays open in every frame (median finger flexion {stats['median_finger_flexion_deg']:.0f} deg, "
            f"grip aperture {stats['median_grip_aperture']:.2f} hand sizes): no object is held"
        )
        return ContactReport(np.zeros(T, bool), np.full(T, "", dtype=object), False, how, "no hand-object interaction: " + why, stats)
    if how == "held_throughout":
        verdict = "no grasp seen (the grip never closes): taken as held throughout, a clip cut around a grasp"
        phase = np.where(contact, "carry", "").astype(object)
    else:
        phase = phases_of(contact, j, fps)
        grasps = len(runs(contact))
        verdict = f"{grasps} grasp{'s' if grasps != 1 else ''} seen ({how}), held {contact.sum() / fps:.1f} s of {T / fps:.1f} s"
    return ContactReport(contact, phase, True, how, verdict, stats)


def annotate_trajectory(
    traj: hoi.HOITrajectory, annotated: np.ndarray | None = None, camera_pitch: float | None = None
) -> tuple[hoi.HOITrajectory, dict]:
    """A lifted trajectory (camera frame) with its ``contact`` frames and its
    ``gravity`` set (``gravity.video_gravity``: the given pitch, else the hand's
    motion while it holds the object, else camera-down), and the lift summary's
    ``interaction`` and ``gravity`` entries. ``annotated``: (T,) contact from
    annotations, or None to read it from the hand."""
    from . import gravity

    report = contact_phases(traj.hand_joints, traj.fps, annotated)
    grasp_seen = report.how in ("annotations", "grip")
    down = gravity.video_gravity(traj.hand_joints, report.contact, traj.fps, camera_pitch, grasp_seen=grasp_seen)
    out = replace(traj, gravity=down.gravity.astype(np.float32), contact=report.contact.copy())
    return out, {"interaction": report.summary(traj.fps), "gravity": down.summary()}


def lift_flags(stats: dict) -> list[str]:
    """What a person should know about a lifted video, from its summary's
    ``interaction`` and ``gravity`` entries, shortly: no interaction (flagged),
    gravity assumed. Appended to the video's one line in the lift summary;
    the sidecar (``<stem>.lift.json``) has the full verdict and note."""
    out = []
    interaction = stats.get("interaction") or {}
    if interaction.get("interaction") is False:
        out.append(f"FLAGGED: {interaction.get('verdict')} (retargeting refuses it; --allow-no-interaction forces it)")
    grav = stats.get("gravity") or {}
    if grav.get("source") == "camera_down":
        out.append("gravity assumed camera-down (pass --camera-pitch DEG if the camera looks down)")
    return out
