"""Gravity of a lifted video, in the camera frame (OpenCV: x right, y down, z forward).

Retargeting turns the trajectory so that its gravity points down
(``hoi.gravity_alignment``): a wrong gravity tilts the whole scene — the
table the object stood on, the lift, the reach. Three sources, best first:

1. **Given**: ``--camera-pitch DEG``, how far the camera looks down (0: level,
   90: straight down), no roll: g = (0, cos p, sin p).
2. **From the scene**: the hand's motion while it holds the object. Objects
   are lifted off a table, carried and set down again, so the path of the
   grip centre while held bulges up from the chord between where the object
   was picked up and where it was put down (``arc``: the mean offset of the
   path from that chord); and the two spots lie on the same table top, so
   the chord itself is level (``level``). Gravity is the direction, searched
   over pitch (-30 to 90 deg) and roll (±30 deg, weakly pulled toward 0),
   that best agrees with these cues: up cues weigh by their length, level
   cues penalise any component along gravity. Only whole pick-and-places
   count (the hand seen free before the grasp and after the release); at
   least one arc of ``MIN_CUE_M`` is needed and the arcs must agree (each
   within ``MAX_SPREAD_DEG`` of the estimate).
3. **Camera-down**: (0, 1, 0), a level camera, with a note that says so.

Only numpy (runs in the lifting environment).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hop_data import hoi

from . import objects
from .smooth import runs

MIN_CUE_M = 0.03  # m the held path must bulge from its chord for a lift cue
MIN_REST_M = 0.05  # m between pick-up and put-down spots for a level cue
MAX_SPREAD_DEG = 35.0  # lift / set-down cues further apart than this (from the estimate) make it unreliable
PITCH_RANGE_DEG = (-30.0, 90.0)
ROLL_RANGE_DEG = (-30.0, 30.0)
ROLL_PRIOR = 0.3  # weight of the pull toward no roll (per rad², relative to a 1 m up cue)


@dataclass
class GravityEstimate:
    """gravity (3,) unit, camera frame; source ``given`` | ``scene`` |
    ``camera_down``; note: one sentence for the lift summary."""

    gravity: np.ndarray
    source: str
    note: str
    pitch_deg: float | None = None
    roll_deg: float | None = None
    cues: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "gravity": [round(float(v), 5) for v in self.gravity],
            "source": self.source,
            "note": self.note,
            "pitch_deg": None if self.pitch_deg is None else round(self.pitch_deg, 2),
            "roll_deg": None if self.roll_deg is None else round(self.roll_deg, 2),
            **self.cues,
        }


def from_angles(pitch_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """Gravity in the frame of a camera looking down by ``pitch_deg`` and rolled
    by ``roll_deg`` (positive: the image turned clockwise, gravity toward +x)."""
    p, r = math.radians(pitch_deg), math.radians(roll_deg)
    return np.array([math.sin(r), math.cos(r) * math.cos(p), math.cos(r) * math.sin(p)])


def camera_down(reason: str) -> GravityEstimate:
    return GravityEstimate(
        np.array(hoi.CAMERA_GRAVITY, dtype=np.float64), "camera_down",
        f"gravity assumed camera-down (0, 1, 0), a level camera: {reason}; pass --camera-pitch DEG if the camera looks down",
    )  # fmt: skip


def from_pitch(pitch_deg: float) -> GravityEstimate:
    if not -90.0 <= pitch_deg <= 90.0:
        raise ValueError(f"camera_pitch is in degrees, -90 to 90 (0: level, 90: looking straight down), got {pitch_deg}")
    return GravityEstimate(from_angles(pitch_deg), "given", f"gravity from the given camera pitch {pitch_deg:g} deg", pitch_deg, 0.0)


def motion_cues(joints: np.ndarray, contact: np.ndarray, fps: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(up vectors, level vectors) from the grip centre's path while the hand
    holds the object (see the module doc), for each contact run that starts
    and ends with the hand seen free (a whole pick-and-place: the object
    rests on the table at both ends): the mean offset of the path from the
    chord between where it was picked up and where it was put down (an
    object is carried above the table it rests on: the arc bulges up), when
    at least ``MIN_CUE_M``; and the chord itself, level, when at least
    ``MIN_REST_M`` long."""
    centre = objects.grip_centre(np.asarray(joints, dtype=np.float64))
    contact = np.asarray(contact, bool)
    seen = np.isfinite(centre).all(axis=1)
    up: list[np.ndarray] = []
    level: list[np.ndarray] = []
    for s, e in runs(contact):
        held = np.flatnonzero(seen[s:e]) + s
        if held.size < 3:
            continue
        path = centre[held]
        a, b = path[0], path[-1]
        chord = b - a
        length2 = float(chord @ chord)
        u = np.clip((path - a) @ chord / length2, 0.0, 1.0) if length2 > 1e-6 else np.zeros(len(path))
        picked = s > 0 and np.any(seen[:s] & ~contact[:s])
        put = e < len(contact) and np.any(seen[e:] & ~contact[e:])
        if not (picked and put):  # only a whole pick-and-place: the object rests on the table at both ends
            continue
        arc = (path - (a + u[:, None] * chord)).mean(axis=0)
        if np.linalg.norm(arc) >= MIN_CUE_M:
            up.append(arc)
        if np.sqrt(length2) >= MIN_REST_M:
            level.append(chord)
    return up, level


def estimate(joints: np.ndarray, contact: np.ndarray, fps: float, grasp_seen: bool = True) -> GravityEstimate:
    """Gravity from the hand's motion around its grasps, or camera-down with the reason."""
    if not grasp_seen or not np.any(contact):
        return camera_down("no grasp is seen in the video, so nothing tells which way is up")
    up, level = motion_cues(joints, contact, fps)
    if not up:
        return camera_down(
            "no whole pick-and-place is seen (a grasp and a release with the hand free around them, "
            "the object's path rising 3 cm above where it was picked up and put down)"
        )
    pitch = np.radians(np.arange(PITCH_RANGE_DEG[0], PITCH_RANGE_DEG[1] + 1e-9, 1.0))
    roll = np.radians(np.arange(ROLL_RANGE_DEG[0], ROLL_RANGE_DEG[1] + 1e-9, 1.0))
    P, R = np.meshgrid(pitch, roll, indexing="ij")
    g = np.stack([np.sin(R), np.cos(R) * np.cos(P), np.cos(R) * np.sin(P)], axis=-1)  # (p, r, 3)
    U = np.asarray(up)
    score = -(g @ U.T).sum(axis=-1)  # up cues: g opposite, weighed by length (m)
    if level:
        Lv = np.asarray(level)
        score -= ((g @ Lv.T) ** 2 / np.linalg.norm(Lv, axis=1)).sum(axis=-1)
    score -= ROLL_PRIOR * R**2 * float(np.linalg.norm(U, axis=1).sum())
    i, k = np.unravel_index(int(np.argmax(score)), score.shape)
    best = g[i, k]
    unit = U / np.linalg.norm(U, axis=1, keepdims=True)
    angles = np.degrees(np.arccos(np.clip(-(unit @ best), -1.0, 1.0)))
    cues = {"up_cues": len(up), "level_cues": len(level), "cue_angles_deg": [round(float(a), 1) for a in angles]}
    if float(np.max(angles)) > MAX_SPREAD_DEG:
        est = camera_down(
            f"the lifts disagree (up to {np.max(angles):.0f} deg from their best fit), "
            "so the hand's motion does not tell which way is up"
        )
        est.cues = cues
        return est
    pitch_deg, roll_deg = float(np.degrees(P[i, k])), float(np.degrees(R[i, k]))
    note = (
        f"gravity from the hand's motion: {len(up)} lift(s) and {len(level)} level cue(s) "
        f"agree within {np.max(angles):.0f} deg; camera pitch {pitch_deg:.0f} deg, roll {roll_deg:.0f} deg"
    )
    return GravityEstimate(best, "scene", note, pitch_deg, roll_deg, cues)


def video_gravity(
    joints: np.ndarray, contact: np.ndarray, fps: float, camera_pitch: float | None = None, grasp_seen: bool = True
) -> GravityEstimate:
    """The gravity a lifted video records: given pitch, else the scene, else camera-down."""
    if camera_pitch is not None:
        return from_pitch(camera_pitch)
    return estimate(joints, contact, fps, grasp_seen)
