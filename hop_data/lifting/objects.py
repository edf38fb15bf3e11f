"""Objects of the lifting stage: a proxy anchored to the hand during contact
(default), or MCC-HO where installed.

The anchored proxy (``anchored_object``). Retargeting needs an object pose per
frame and the object's surface points; a monocular video of an arbitrary
object gives neither. The proxy follows the rule a grasp imposes:

- Contact intervals come from the annotations (100 Days of Hands contact
  states, interpolated between annotated frames) or, without them, from the
  grip: the hand is holding while the thumb tip and the index / middle tips
  are closer than ``GRIP_CLOSED`` hand sizes (with hysteresis and a minimum
  duration). A video in which the grip never closes is taken to be held
  throughout (the common case of a clip cut around a grasp).
- At the first contact frame the object's centre is the grip centre (halfway
  between the thumb tip and the mean of the index and middle tips) and its
  axes are the hand's axes (``hand_frame``). While held, the object is fixed
  in the hand frame: pose(t) = H(t) H(s)^-1 pose(s). Before the first grasp it
  rests where it was grasped; after a release it rests where it was released,
  and a later grasp picks it up from there (the pose never jumps).
- Shape: a cylinder whose diameter is the grip aperture (median over the
  contact frames, clamped to 3-15 cm) or, when an object box is annotated,
  the box's size at the hand's depth; height 1.5 diameters, clamped to
  4-25 cm. Its axis is the hand's y axis (across the palm, index to little
  finger knuckles), the axis of a power grasp. ``shape="box"`` gives a cube.

MCC-HO (``MccHoObjects``) reconstructs the object from the frame and the
hand; like HaMeR it is used only where its package and checkpoint are
installed, and fails at once naming what is missing otherwise.

Only numpy (runs in the lifting environment).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hop_robot.shapes import ObjectShape, surface_points

from hop_robot.geometry import matrix_to_quat

from .hands import HandBackendUnavailable
from .smooth import runs

THUMB_TIP, INDEX_TIP, MIDDLE_TIP = 4, 8, 12
WRIST, INDEX_MCP, MIDDLE_MCP, LITTLE_MCP = 0, 5, 9, 17
GRIP_CLOSED = 0.9  # aperture / hand size below which the hand is holding
GRIP_OPEN = 1.1  # ... and above which it has let go (hysteresis)
MIN_CONTACT_S = 0.2  # shorter closings are noise
DIAMETER_RANGE = (0.03, 0.15)  # m
HEIGHT_RANGE = (0.04, 0.25)  # m
NUM_OBJECT_POINTS = 512


@dataclass
class ObjectProxy:
    """pose (T, 7) position + quaternion w, x, y, z in the hand's frame of
    reference (NaN where the hand is unseen during contact); points (P, 3) in
    the object frame; contact (T,) bool; diameter, height (m)."""

    pose: np.ndarray
    points: np.ndarray
    contact: np.ndarray
    diameter: float
    height: float
    shape: str


def hand_frame(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """joints (T, 21, 3) -> rotation (T, 3, 3), origin (T, 3) of the hand frame:
    origin at the wrist, x towards the middle knuckle, y across the palm
    (index to little knuckle, made orthogonal to x), z = x cross y."""
    j = np.asarray(joints, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):  # degenerate (unseen) rows give NaN
        x = j[:, MIDDLE_MCP] - j[:, WRIST]
        x = x / np.linalg.norm(x, axis=-1, keepdims=True)
        y = j[:, LITTLE_MCP] - j[:, INDEX_MCP]
        y = y - np.sum(y * x, axis=-1, keepdims=True) * x
        y = y / np.linalg.norm(y, axis=-1, keepdims=True)
        z = np.cross(x, y)
    return np.stack([x, y, z], axis=-1), j[:, WRIST].copy()


def grip_centre(joints: np.ndarray) -> np.ndarray:
    """(T, 21, 3) -> (T, 3) halfway between the thumb tip and the mean of the index and middle tips."""
    j = np.asarray(joints, dtype=np.float64)
    fingers = 0.5 * (j[:, INDEX_TIP] + j[:, MIDDLE_TIP])
    return 0.5 * (j[:, THUMB_TIP] + fingers)


def grip_aperture(joints: np.ndarray) -> np.ndarray:
    """(T, 21, 3) -> (T,) distance from the thumb tip to the mean of the index and middle tips (m)."""
    j = np.asarray(joints, dtype=np.float64)
    return np.linalg.norm(j[:, THUMB_TIP] - 0.5 * (j[:, INDEX_TIP] + j[:, MIDDLE_TIP]), axis=-1)


def contact_from_grip(joints: np.ndarray, fps: float) -> np.ndarray:
    """(T,) bool: frames in which the grip is closed (see the module doc).
    Unseen frames (NaN) inside a closed run stay closed; a video whose grip
    never closes is held throughout its seen frames."""
    j = np.asarray(joints, dtype=np.float64)
    seen = np.isfinite(j).all(axis=(1, 2))
    size = np.linalg.norm(j[:, MIDDLE_MCP] - j[:, WRIST], axis=-1)
    ratio = grip_aperture(j) / np.nanmedian(np.where(seen, size, np.nan)) if seen.any() else np.full(len(j), np.nan)
    closed = np.zeros(len(j), dtype=bool)
    state = False
    for t in range(len(j)):
        if seen[t]:
            state = ratio[t] < GRIP_CLOSED if not state else ratio[t] < GRIP_OPEN
        closed[t] = state
    min_len = max(1, int(round(MIN_CONTACT_S * fps)))
    for s, e in runs(closed):
        if e - s < min_len:
            closed[s:e] = False
    if not closed.any():
        return seen.copy()
    return closed


def primitive_points(shape: str, diameter: float, height: float, count: int = NUM_OBJECT_POINTS) -> np.ndarray:
    """(count, 3) surface points of a primitive centred at the origin,
    deterministic (``hop_robot.shapes``). ``cylinder``: axis along y (the
    camera's down), caps included (by area); ``box``: a cube of side ``diameter``."""
    if shape == "cylinder":
        r = diameter / 2.0
        pts = surface_points(ObjectShape("cylinder", np.array([r, r, height / 2.0])), count)
        return pts[:, [0, 2, 1]].astype(np.float32)  # z axis -> y axis
    if shape == "box":
        return surface_points(ObjectShape("box", np.full(3, diameter / 2.0)), count).astype(np.float32)
    raise ValueError(f"unknown proxy shape {shape!r}; choose 'cylinder' or 'box'")


def anchored_object(
    joints: np.ndarray,
    fps: float,
    contact: np.ndarray | None = None,
    diameter: float | None = None,
    shape: str = "cylinder",
    num_points: int = NUM_OBJECT_POINTS,
) -> ObjectProxy:
    """The anchored proxy for hand joints (T, 21, 3) in one frame of
    reference (NaN rows where unseen). ``contact`` (T,) bool, or None to
    derive it from the grip; ``diameter`` (m) overrides the aperture-based size."""
    j = np.asarray(joints, dtype=np.float64)
    T = j.shape[0]
    seen = np.isfinite(j).all(axis=(1, 2))
    if not seen.any():
        raise ValueError("anchored_object: the hand is never seen")
    contact = contact_from_grip(j, fps) if contact is None else np.asarray(contact, dtype=bool).copy()
    if contact.shape != (T,):
        raise ValueError(f"contact must be ({T},), got {contact.shape}")
    if not (contact & seen).any():  # annotated contact where the hand is never seen: anchor at the first seen frame
        contact = seen.copy()
    if diameter is None:
        diameter = float(np.median(grip_aperture(j[contact & seen])))
    diameter = float(np.clip(diameter, *DIAMETER_RANGE))
    height = float(np.clip(1.5 * diameter, *HEIGHT_RANGE))

    R_hand, origin = hand_frame(j)
    centre = grip_centre(j)
    pos = np.full((T, 3), np.nan)
    rot = np.full((T, 3, 3), np.nan)
    current_p: np.ndarray | None = None  # the resting pose between grasps
    current_R: np.ndarray | None = None
    for s, e in runs(contact):
        held = [t for t in range(s, e) if seen[t]]
        if not held:
            continue
        k = held[0]
        if current_p is None:  # first grasp: anchor at the grip
            current_p, current_R = centre[k].copy(), R_hand[k].copy()
        # offset of the object in the hand frame at the grasp (constant while held)
        off_R = R_hand[k].T @ current_R
        off_p = R_hand[k].T @ (current_p - origin[k])
        Rs = R_hand[held]
        rot[held] = Rs @ off_R
        pos[held] = origin[held] + np.einsum("tij,j->ti", Rs, off_p)
        current_p, current_R = pos[held[-1]].copy(), rot[held[-1]].copy()
    # frames outside contact: the object rests where it was last released (or first grasped)
    first = next(t for t in range(T) if np.isfinite(pos[t]).all())
    rest_p, rest_R = pos[first].copy(), rot[first].copy()
    for t in range(T):
        if contact[t]:
            if np.isfinite(pos[t]).all():
                rest_p, rest_R = pos[t].copy(), rot[t].copy()
            continue
        pos[t], rot[t] = rest_p, rest_R
    pose = np.full((T, 7), np.nan)
    known = np.isfinite(pos).all(axis=1)
    pose[known, :3] = pos[known]
    pose[known, 3:] = matrix_to_quat(rot[known])
    return ObjectProxy(
        pose=pose.astype(np.float32),
        points=primitive_points(shape, diameter, height, num_points),
        contact=contact,
        diameter=diameter,
        height=height,
        shape=shape,
    )


# ---------------------------------------------------------------- MCC-HO
MCCHO_CHECKPOINT_ENV = "HOP_MCCHO_CHECKPOINT"


def mccho_missing() -> list[str]:
    """What MCC-HO still needs here (empty when its software and checkpoint are installed)."""
    missing = []
    for package, what in (("torch", "PyTorch (pip install torch)"), ("mcc_ho", "the MCC-HO code (its repository on PYTHONPATH as package mcc_ho)")):
        if importlib.util.find_spec(package) is None:
            missing.append(what)
    ckpt = os.environ.get(MCCHO_CHECKPOINT_ENV)
    if not ckpt or not Path(ckpt).is_file():
        missing.append(f"the MCC-HO checkpoint (set ${MCCHO_CHECKPOINT_ENV} to its path)")
    return missing


class MccHoObjects:
    """MCC-HO object reconstruction (same rule as HaMeR: used only where its
    code and checkpoint are installed). MCC-HO also needs a per-frame object
    mask, which this pipeline does not produce yet, so even where installed
    the constructor says so instead of running."""

    name = "mcc-ho"

    def __init__(self) -> None:
        missing = mccho_missing()
        if missing:
            raise HandBackendUnavailable(
                "--objects mcc-ho needs " + "; ".join(missing) + ". Nothing is downloaded at run time; "
                "use --objects anchored (the default) meanwhile."
            )
        raise HandBackendUnavailable(
            "--objects mcc-ho: MCC-HO is installed, but it reconstructs from per-frame object masks, which this "
            "pipeline does not produce yet; use --objects anchored"
        )


OBJECT_BACKENDS = ("anchored", "mcc-ho")
