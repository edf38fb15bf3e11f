"""Interchange format 1: one video's 3D hand-object interaction (``*.hoi.npz``).

The format (DESIGN.md, "Interchange format 1"; docs/hoi_format.md has the full
rules):

=================  ==================  ==============================================
key                dtype, shape        meaning
=================  ==================  ==============================================
``hand_joints``    float32 (T, 21, 3)  metres, ``HUMAN_JOINT_NAMES`` order; NaN = unseen
``object_pose``    float32 (T, 7)      position (m) + unit quaternion w, x, y, z; NaN rows = unknown
``object_points``  float32 (P, 3)      object surface points in the object's frame, P >= 100
``fps``            float (0-d)         frame rate of the rows
``gravity``        float32 (3,)        unit gravity vector in this frame (camera default (0, 1, 0))
``hand_side``      str (0-d unicode)   ``right`` or ``left``
``source``         str (0-d unicode)   stable id of the video
``contact``        bool (T,)           optional: the hand holds / touches the object in this frame
=================  ==================  ==============================================

Optional: ``hand_provenance`` uint8 (T,), how each frame's hand was obtained
(``OBSERVED`` / ``RECOVERED`` / ``CARRIED`` / ``INTERPOLATED`` / ``UNSEEN``);
absent = every seen frame observed.

This module holds the format in code: ``HOITrajectory``, ``save`` / ``load``
(which validate every key and never guess), and the preparation for
retargeting (``prepare``: gap filling, resampling to the control rate,
duration check, left-to-right mirroring) plus ``gravity_alignment``, and the
one rule for gaps and jumps (``GapRule``, ``RETARGET_RULE``, ``check_rule``,
``split_segments``) that both ``prepare`` and video lifting apply. Everything
is plain vectorised numpy; quaternions are always w, x, y, z.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from hop_robot.embodiment import spec

# The human hand's joints (MANO / MediaPipe order) and the rule for gaps and jumps
# live in their own modules; their names are this module's too.
from .hand_joints import (  # noqa: E402,F401
    FINGER_JOINTS,
    FINGER_MCPS,
    FINGERTIPS,
    HUMAN_FINGERS,
    HUMAN_JOINT_NAMES,
    HUMAN_JOINT_PARENTS,
    NUM_HUMAN_JOINTS,
    WRIST,
)
from .gaps import RETARGET_RULE, GapRule, Segment, _runs, find_jumps, hand_seen, split_segments  # noqa: E402,F401

# ---------------------------------------------------------------- format constants
KEYS: tuple[str, ...] = ("hand_joints", "object_pose", "object_points", "fps", "gravity", "hand_side", "source")
# Optional keys: written when known, read when present (absent = unknown).
OPTIONAL_KEYS: tuple[str, ...] = ("hand_provenance", "contact")
# How a frame's hand joints were obtained (key 'hand_provenance', uint8 (T,)); the one place for these codes.
OBSERVED = 0  # detected in the frame
RECOVERED = 1  # detected again in a crop around the predicted hand (after the whole-frame detector lost it)
CARRIED = 2  # hidden: the last observed hand moved rigidly with the tracked object it holds
INTERPOLATED = 3  # a short gap bridged between valid frames
UNSEEN = 4  # unknown: every joint NaN
PROVENANCE_NAMES: tuple[str, ...] = ("observed", "recovered", "carried", "interpolated", "unseen")
HAND_SIDES: tuple[str, ...] = ("right", "left")
MIN_OBJECT_POINTS = 100
MIN_FRAMES = 2
# A stored quaternion whose norm is within this of 1 is normalised; further off it is refused
# (it is not a rotation someone rounded, it is something else).
QUAT_NORM_TOLERANCE = 0.1
CAMERA_GRAVITY = (0.0, 1.0, 0.0)  # OpenCV camera frame: y points down the image
# Zip entries carry a timestamp; a fixed one makes equal trajectories give equal bytes.
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)


class HOIFormatError(ValueError):
    """A trajectory (file or in-memory value) breaks format 1.

    ``file`` names the file (or the trajectory's source for in-memory values),
    ``key`` the offending key (None when the problem is the file itself) and
    ``problem`` says what is wrong."""

    def __init__(self, file: str, key: str | None, problem: str):
        self.file, self.key, self.problem = file, key, problem
        where = f"{file}: key '{key}' " if key else f"{file}: "
        super().__init__(where + problem)


@dataclass
class HOITrajectory:
    """One video's hand-object interaction in one frame of reference.

    hand_joints   (T, 21, 3) float32, metres, ``HUMAN_JOINT_NAMES`` order, NaN where unseen
    object_pose   (T, 7) float32, position + unit quaternion (w, x, y, z), NaN rows where unknown
    object_points (P, 3) float32, object-frame surface points, P >= 100
    fps           frame rate of the rows (Hz)
    gravity       (3,) float32 unit vector of gravity in this frame
    hand_side     "right" or "left"
    source        stable id of the video
    hand_provenance  optional (T,) uint8 ``OBSERVED`` ... ``UNSEEN`` per frame; None = observed where seen
    """

    hand_joints: np.ndarray
    object_pose: np.ndarray
    object_points: np.ndarray
    fps: float
    gravity: np.ndarray
    hand_side: str
    source: str
    hand_provenance: np.ndarray | None = field(default=None)
    contact: np.ndarray | None = field(default=None)  # optional (T,) bool: the hand holds / touches the object

    @property
    def num_frames(self) -> int:
        return int(self.hand_joints.shape[0])

    @property
    def duration(self) -> float:
        """Seconds of video the rows cover: frames / fps."""
        return self.num_frames / float(self.fps)

    @property
    def times(self) -> np.ndarray:
        """(T,) float64 time of each row in seconds, from 0."""
        return np.arange(self.num_frames) / float(self.fps)


# ================================================================ validation
def _float_array(value: Any, name: str, key: str) -> np.ndarray:
    arr = np.asarray(value) if not isinstance(value, np.ndarray) else value
    if arr.dtype.kind != "f":
        raise HOIFormatError(name, key, f"must be a float array, got dtype {arr.dtype}")
    return arr


def _to_float32(arr: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):  # float64 beyond float32 range -> inf, caught next
        return np.ascontiguousarray(arr, dtype=np.float32)


def _first_index(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _string(value: Any, name: str, key: str) -> str:
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "U":
            raise HOIFormatError(name, key, f"must be a unicode string, got dtype {value.dtype}")
        if value.shape != ():
            raise HOIFormatError(name, key, f"must be a single string (shape ()), got shape {value.shape}")
        value = str(value[()])
    elif not isinstance(value, str):
        raise HOIFormatError(name, key, f"must be a string, got {type(value).__name__}")
    return value


def _validate_fields(fields: Mapping[str, Any], name: str) -> HOITrajectory:
    """Check every key of format 1 and return a normalised ``HOITrajectory``
    (float32 arrays, unit quaternions, unit gravity, plain str / float)."""
    missing = [k for k in KEYS if k not in fields]
    if missing:
        raise HOIFormatError(name, missing[0], "is missing" + (f" (also missing: {missing[1:]})" if missing[1:] else ""))

    # hand_joints (T, 21, 3)
    hand = _float_array(fields["hand_joints"], name, "hand_joints")
    if hand.ndim != 3 or hand.shape[1:] != (NUM_HUMAN_JOINTS, 3):
        raise HOIFormatError(name, "hand_joints", f"must be (T, {NUM_HUMAN_JOINTS}, 3), got {hand.shape}")
    T = hand.shape[0]
    if T < MIN_FRAMES:
        raise HOIFormatError(name, "hand_joints", f"must have at least {MIN_FRAMES} frames, got {T}")
    hand = _to_float32(hand)
    if np.isinf(hand).any():
        t, j, _ = _first_index(np.isinf(hand))
        raise HOIFormatError(name, "hand_joints", f"has an infinite value at frame {t}, joint {j} ({HUMAN_JOINT_NAMES[j]})")
    nan = np.isnan(hand)
    partial = nan.any(axis=2) & ~nan.all(axis=2)
    if partial.any():
        t, j = _first_index(partial)
        raise HOIFormatError(
            name, "hand_joints",
            f"has a partly-NaN joint at frame {t}, joint {j} ({HUMAN_JOINT_NAMES[j]}): "
            "a joint is either seen (3 finite coordinates) or unseen (3 NaN)",
        )  # fmt: skip

    # object_pose (T, 7)
    pose = _float_array(fields["object_pose"], name, "object_pose")
    if pose.shape != (T, 7):
        raise HOIFormatError(name, "object_pose", f"must be (T, 7) with T = {T} (the rows of 'hand_joints'), got {pose.shape}")
    pose = _to_float32(pose)
    if np.isinf(pose).any():
        t, _ = _first_index(np.isinf(pose))
        raise HOIFormatError(name, "object_pose", f"has an infinite value at frame {t}")
    nan_rows = np.isnan(pose)
    partial = nan_rows.any(axis=1) & ~nan_rows.all(axis=1)
    if partial.any():
        raise HOIFormatError(
            name, "object_pose",
            f"has a partly-NaN row at frame {_first_index(partial)[0]}: a row is either known (7 finite values) or unknown (7 NaN)",
        )  # fmt: skip
    known = ~nan_rows[:, 0]
    norms = np.linalg.norm(pose[:, 3:].astype(np.float64), axis=1)
    zero = known & (norms < 1e-6)
    if zero.any():
        raise HOIFormatError(name, "object_pose", f"has a zero-length quaternion at frame {_first_index(zero)[0]}")
    off = known & (np.abs(norms - 1.0) > QUAT_NORM_TOLERANCE)
    if off.any():
        t = _first_index(off)[0]
        raise HOIFormatError(
            name, "object_pose",
            f"has a quaternion of norm {norms[t]:.4g} at frame {t}; "
            f"quaternions (w, x, y, z) must be unit (tolerance {QUAT_NORM_TOLERANCE})",
        )  # fmt: skip
    pose = pose.copy()
    pose[known, 3:] = (pose[known, 3:] / norms[known, None]).astype(np.float32)

    # object_points (P, 3)
    points = _float_array(fields["object_points"], name, "object_points")
    if points.ndim != 2 or points.shape[1] != 3:
        raise HOIFormatError(name, "object_points", f"must be (P, 3), got {points.shape}")
    if points.shape[0] < MIN_OBJECT_POINTS:
        raise HOIFormatError(name, "object_points", f"must have at least {MIN_OBJECT_POINTS} points, got {points.shape[0]}")
    points = _to_float32(points)
    if not np.isfinite(points).all():
        raise HOIFormatError(name, "object_points", f"must be finite, point {_first_index(~np.isfinite(points))[0]} is not")

    # fps: a finite positive scalar
    fps = fields["fps"]
    if isinstance(fps, np.ndarray):
        if fps.shape != ():
            raise HOIFormatError(name, "fps", f"must be a scalar (shape ()), got shape {fps.shape}")
        if fps.dtype.kind not in "fiu":
            raise HOIFormatError(name, "fps", f"must be a number, got dtype {fps.dtype}")
        fps = fps[()]
    if isinstance(fps, (bool, np.bool_)) or not isinstance(fps, (int, float, np.integer, np.floating)):
        raise HOIFormatError(name, "fps", f"must be a number, got {type(fps).__name__}")
    fps = float(fps)
    if not np.isfinite(fps) or fps <= 0:
        raise HOIFormatError(name, "fps", f"must be finite and > 0, got {fps}")

    # gravity (3,): finite, non-zero; normalised
    gravity = _float_array(fields["gravity"], name, "gravity")
    if gravity.shape != (3,):
        raise HOIFormatError(name, "gravity", f"must be (3,), got {gravity.shape}")
    gravity = gravity.astype(np.float64)
    if not np.isfinite(gravity).all():
        raise HOIFormatError(name, "gravity", f"must be finite, got {gravity.tolist()}")
    g_norm = np.linalg.norm(gravity)
    if g_norm < 1e-6:
        raise HOIFormatError(name, "gravity", f"must be a non-zero vector, got {gravity.tolist()}")
    gravity = (gravity / g_norm).astype(np.float32)

    hand_side = _string(fields["hand_side"], name, "hand_side")
    if hand_side not in HAND_SIDES:
        raise HOIFormatError(name, "hand_side", f"must be one of {list(HAND_SIDES)}, got {hand_side!r}")
    source = _string(fields["source"], name, "source")
    if not source.strip():
        raise HOIFormatError(name, "source", "must be a non-empty string")

    provenance = fields.get("hand_provenance")
    if provenance is not None:
        provenance = _validate_provenance(provenance, np.isnan(hand).all(axis=(1, 2)), name)
    contact = fields.get("contact")
    if contact is not None:
        contact = np.asarray(contact)
        if contact.dtype != np.bool_:
            raise HOIFormatError(name, "contact", f"must be a bool array, got dtype {contact.dtype}")
        if contact.shape != (T,):
            raise HOIFormatError(name, "contact", f"must be (T,) with T = {T} (the rows of 'hand_joints'), got {contact.shape}")
        contact = contact.copy()

    return HOITrajectory(
        hand_joints=hand, object_pose=pose, object_points=points, fps=fps,
        gravity=gravity, hand_side=hand_side, source=source, hand_provenance=provenance, contact=contact,
    )  # fmt: skip


def _validate_provenance(value: Any, unseen: np.ndarray, name: str) -> np.ndarray:
    """``hand_provenance``: integer (T,) with codes ``OBSERVED`` ... ``UNSEEN``;
    ``UNSEEN`` exactly on the frames whose joints are all NaN. -> uint8 copy."""
    key = "hand_provenance"
    arr = np.asarray(value)
    if arr.dtype.kind not in "ui":
        raise HOIFormatError(name, key, f"must be an integer array (uint8 codes), got dtype {arr.dtype}")
    if arr.shape != unseen.shape:
        raise HOIFormatError(name, key, f"must be (T,) with T = {unseen.shape[0]} (the rows of 'hand_joints'), got {arr.shape}")
    bad = (arr < 0) | (arr >= len(PROVENANCE_NAMES))
    if bad.any():
        t = int(np.flatnonzero(bad)[0])
        raise HOIFormatError(name, key, f"has code {int(arr[t])} at frame {t}; codes are 0-{len(PROVENANCE_NAMES) - 1} {list(PROVENANCE_NAMES)}")
    arr = arr.astype(np.uint8)
    wrong = (arr == UNSEEN) != unseen
    if wrong.any():
        t = int(np.flatnonzero(wrong)[0])
        if unseen[t]:
            problem = f"marks frame {t} '{PROVENANCE_NAMES[arr[t]]}' but none of its joints is seen (that is 'unseen')"
        else:
            problem = f"marks frame {t} 'unseen' but its joints are seen"
        raise HOIFormatError(name, key, problem)
    return arr


def provenance(traj: HOITrajectory) -> np.ndarray:
    """(T,) uint8 provenance codes of a trajectory: its ``hand_provenance``, or
    for a file without one ``OBSERVED`` where any joint is seen, ``UNSEEN`` elsewhere."""
    if traj.hand_provenance is not None:
        return np.asarray(traj.hand_provenance, dtype=np.uint8)
    unseen = np.isnan(np.asarray(traj.hand_joints)).all(axis=(1, 2))
    return np.where(unseen, UNSEEN, OBSERVED).astype(np.uint8)


def provenance_fractions(codes: np.ndarray) -> dict[str, float]:
    """{name: fraction of frames} for (T,) provenance codes (every name present)."""
    codes = np.asarray(codes)
    n = max(1, codes.size)
    return {nm: float(np.sum(codes == k)) / n for k, nm in enumerate(PROVENANCE_NAMES)}


def validate(traj: HOITrajectory, name: str | None = None) -> HOITrajectory:
    """Check an in-memory trajectory against format 1; return a normalised copy
    (float32, unit quaternions and gravity). Raises ``HOIFormatError`` naming
    ``name`` (default: the trajectory's source), the key and the problem."""
    label = name or (traj.source if isinstance(traj.source, str) and traj.source else "<HOITrajectory>")
    fields = {k: getattr(traj, k) for k in KEYS}
    if traj.hand_provenance is not None:
        fields["hand_provenance"] = traj.hand_provenance
    if traj.contact is not None:
        fields["contact"] = traj.contact
    return _validate_fields(fields, label)


# ================================================================ files
def save(path: str | os.PathLike, traj: HOITrajectory) -> Path:
    """Validate ``traj`` and write it to ``path`` (a ``.hoi.npz``; the name is
    used as given). Deflate-compressed npz, strings as 0-d unicode arrays, no
    pickle. The zip entries get a fixed timestamp, so equal trajectories give
    equal bytes (``np.savez_compressed`` stamps the current time), and the file
    appears atomically (written beside it, then renamed)."""
    path = Path(path)
    t = validate(traj, name=str(path))
    arrays = {
        "hand_joints": t.hand_joints,
        "object_pose": t.object_pose,
        "object_points": t.object_points,
        "fps": np.array(t.fps, dtype=np.float64),
        "gravity": t.gravity,
        "hand_side": np.array(t.hand_side, dtype=np.str_),
        "source": np.array(t.source, dtype=np.str_),
    }
    if t.contact is not None:
        arrays["contact"] = t.contact
    if t.hand_provenance is not None:
        arrays["hand_provenance"] = t.hand_provenance.astype(np.uint8)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for key, arr in arrays.items():
                info = zipfile.ZipInfo(key + ".npy", date_time=_ZIP_DATE_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                with zf.open(info, "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, arr, allow_pickle=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load(path: str | os.PathLike) -> HOITrajectory:
    """Read and validate a ``.hoi.npz``. Every key is checked (presence, dtype,
    shape, finiteness, unit quaternions, hand side, fps, source, T >= 2, and
    ``hand_provenance`` when present);
    float64 arrays are cast to float32, near-unit quaternions and gravity are
    normalised. Anything else raises ``HOIFormatError`` naming the file, the
    key and the problem — also for a file that is not an npz archive at all.
    A path that does not exist raises ``FileNotFoundError``."""
    name = str(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name}: no such file")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError) as e:
        raise HOIFormatError(name, None, f"is not a readable .npz archive ({type(e).__name__}: {e})") from e
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise HOIFormatError(name, None, "is a single .npy array, not an .npz archive of the format's keys")
    with npz:
        missing = [k for k in KEYS if k not in npz.files]
        if missing:
            raise HOIFormatError(name, missing[0], "is missing" + (f" (also missing: {missing[1:]})" if missing[1:] else ""))
        fields: dict[str, Any] = {}
        for key in KEYS + tuple(k for k in OPTIONAL_KEYS if k in npz.files):
            try:
                fields[key] = npz[key]
            except ValueError as e:
                if "allow_pickle" in str(e) or "pickle" in str(e).lower():
                    raise HOIFormatError(name, key, "holds a pickled object array; pickles are refused") from e
                raise HOIFormatError(name, key, f"cannot be read ({e})") from e
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError) as e:  # a damaged member
                raise HOIFormatError(name, key, f"cannot be read ({type(e).__name__}: {e})") from e
    return _validate_fields(fields, name)


# ================================================================ rotations (w, x, y, z)
# The quaternion helpers live in hop_robot.geometry (one place); imported here
# because the format and its preparation use them.
from hop_robot.geometry import matrix_to_quat, quat_multiply, quat_normalize, quat_to_matrix, slerp  # noqa: E402,F401


def _sign_continuous(quats: np.ndarray) -> np.ndarray:
    """Flip (T, 4) quaternions (no NaN) so consecutive ones have a non-negative dot
    product: same rotations, no artificial 360-degree turns when interpolating."""
    dots = np.sum(quats[1:] * quats[:-1], axis=1)
    flips = np.concatenate([[1.0], np.cumprod(np.where(dots < 0, -1.0, 1.0))])
    return quats * flips[:, None]


# ================================================================ geometry
def mirror_matrix(gravity: np.ndarray) -> np.ndarray:
    """(3, 3) reflection used to turn left hands into right hands.

    The mirror plane contains gravity (so "up" stays up) and its normal is the
    frame's x axis made perpendicular to gravity: n = normalise(e_x - (e_x . g) g),
    M = I - 2 n n^T. For a camera frame without roll (gravity (0, cos a, sin a))
    this is exactly M = diag(-1, 1, 1), the image flipped left-right. If gravity
    is along x, n falls back to the y axis made perpendicular to gravity."""
    g = np.asarray(gravity, dtype=np.float64)
    g = g / np.linalg.norm(g)
    for axis in np.eye(3)[:2]:
        n = axis - np.dot(axis, g) * g
        if np.linalg.norm(n) > 1e-3:
            break
    n = n / np.linalg.norm(n)
    return np.eye(3) - 2.0 * np.outer(n, n)


def mirror(traj: HOITrajectory) -> HOITrajectory:
    """Reflect the whole scene across the plane of ``mirror_matrix(gravity)``:
    a left hand becomes a right hand (and vice versa; ``hand_side`` is swapped).

    Positions p -> M p (hand joints, object position). Object rotations
    R -> M R M, which is a proper rotation again; for a quaternion (w, v) that
    is (w, -M v). Object points y -> M y in the object frame, so that the
    mirrored world points are M (p + R y) = M p + (M R M)(M y). Gravity is
    unchanged (it lies in the plane). Mirroring twice is the identity."""
    M = mirror_matrix(traj.gravity)
    hand = np.einsum("ij,tkj->tki", M, traj.hand_joints.astype(np.float64))
    pose = traj.object_pose.astype(np.float64)
    pos = pose[:, :3] @ M.T
    quat = np.concatenate([pose[:, 3:4], -(pose[:, 4:] @ M.T)], axis=1)
    points = traj.object_points.astype(np.float64) @ M.T
    gravity = traj.gravity.astype(np.float64) @ M.T
    return replace(
        traj,
        hand_joints=hand.astype(np.float32),
        object_pose=np.concatenate([pos, quat], axis=1).astype(np.float32),
        object_points=points.astype(np.float32),
        gravity=(gravity / np.linalg.norm(gravity)).astype(np.float32),
        hand_side="left" if traj.hand_side == "right" else "right",
    )


def chirality(hand_joints: np.ndarray) -> np.ndarray:
    """(..., 21, 3) -> (...,) signed chirality of each hand: > 0 for right-hand
    geometry, < 0 for left-hand geometry (NaN where joints are missing).

    The palm normal n = (index MCP - wrist) x (little MCP - wrist) points out of
    the palm of a right hand and out of the back of a left hand. The thumb
    (MCP, IP, tip: its metacarpal sits palmar of the palm) and the fingers
    beyond the knuckles (PIP, DIP, tip: they rest and grasp flexed) lie on the
    palm side of the palm plane. The value is the mean of the thumb's and the
    fingers' mean signed distances to the plane through the wrist along n,
    divided by the hand size (wrist -> middle MCP): dimensionless, typically
    0.1-0.8 in magnitude."""
    h = np.asarray(hand_joints, dtype=np.float64)
    wrist = h[..., WRIST, :]
    n = np.cross(h[..., 5, :] - wrist, h[..., 17, :] - wrist)
    n = n / np.linalg.norm(n, axis=-1, keepdims=True)
    thumb = h[..., [2, 3, 4], :].mean(-2) - wrist
    fingers = h[..., [6, 7, 8, 10, 11, 12, 14, 15, 16, 18, 19, 20], :].mean(-2) - wrist
    size = np.linalg.norm(h[..., 9, :] - wrist, axis=-1)
    return 0.5 * np.sum(n * (thumb + fingers), axis=-1) / size


def hand_size(hand_joints: np.ndarray) -> float:
    """Median wrist -> middle-MCP length (m) over the frames where both are seen."""
    a, b = spec.HAND_SIZE_JOINTS
    h = np.asarray(hand_joints, dtype=np.float64)
    lengths = np.linalg.norm(h[:, b] - h[:, a], axis=-1)
    return float(np.nanmedian(lengths))


def gravity_alignment(gravity: np.ndarray) -> np.ndarray:
    """(3, 3) rotation R taking this frame to a z-up frame: R @ g = (0, 0, -1).

    Convention for the free yaw: R is the rotation of least angle that takes g
    to -z (axis g x (-z), Rodrigues). A frame that is already z-up gets the
    identity; a camera frame with gravity (0, cos a, sin a) is turned about its
    own x axis, so image-right stays +x, the viewing direction on the table
    becomes +y and up is +z. The one ambiguous case, g = +z exactly opposite,
    gets the half-turn about x, diag(1, -1, -1). Deterministic in g."""
    g = np.asarray(gravity, dtype=np.float64).reshape(3)
    norm = np.linalg.norm(g)
    if not np.isfinite(norm) or norm < 1e-9:
        raise ValueError(f"gravity must be a finite non-zero (3,) vector, got {g.tolist()}")
    g = g / norm
    target = np.array([0.0, 0.0, -1.0])
    c = float(np.dot(g, target))
    if 1.0 + c < 1e-10:
        return np.diag([1.0, -1.0, -1.0])
    v = np.cross(g, target)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


# ================================================================ checking the rule (gaps.py defines it)
def _check_gaps(valid: np.ndarray, fps: float, max_gap_s: float, name: str, key: str) -> None:
    """Raise ``HOIFormatError`` for the longest gap of ``~valid`` beyond ``max_gap_s``."""
    T = valid.shape[0]
    if not valid.any():
        raise HOIFormatError(name, key, f"has no {'seen' if key == 'hand_joints' else 'known'} frame at all ({T} frames)")
    starts, lengths = _runs(~valid)
    max_frames = int(np.floor(max_gap_s * fps + 1e-9))
    bad = lengths > max_frames
    if bad.any():
        i = int(np.argmax(lengths * bad))  # report the longest offending gap
        s, n = int(starts[i]), int(lengths[i])
        kind = "leading" if s == 0 else "trailing" if s + n == T else "interior"
        raise HOIFormatError(
            name, key,
            f"has {'an' if kind == 'interior' else 'a'} {kind} gap of {n} frames ({n / fps:.3f} s) at frames {s}-{s + n - 1} "
            f"(t = {s / fps:.3f}-{(s + n - 1) / fps:.3f} s), longer than max_gap_s = {max_gap_s} s "
            f"({max_frames} frames at {fps:g} fps)",
        )  # fmt: skip


def _check_jumps(hand: np.ndarray, fps: float, max_speed_m_s: float, name: str) -> None:
    jumps = find_jumps(hand, fps, max_speed_m_s)
    if jumps:
        a, b, v = max(jumps, key=lambda j: j[2])
        d = float(np.linalg.norm(hand[b, WRIST].astype(np.float64) - hand[a, WRIST]))
        raise HOIFormatError(
            name, "hand_joints",
            f"jumps: the wrist moves {d:.3f} m between frames {a} and {b} (t = {a / fps:.3f}-{b / fps:.3f} s), "
            f"{v:.1f} m/s, faster than max_speed_m_s = {max_speed_m_s:g} m/s (another hand or a failed fit)"
            + (f"; {len(jumps)} such jumps" if len(jumps) > 1 else ""),
        )  # fmt: skip


def check_rule(traj: HOITrajectory, rule: GapRule = RETARGET_RULE) -> None:
    """Raise ``HOIFormatError`` (naming the key, frames and seconds) when
    ``traj`` breaks ``rule``: too short, a gap too long (hand or object), a
    jump. ``prepare`` applies exactly this before it fills and resamples."""
    name = traj.source
    T, fps = traj.num_frames, float(traj.fps)
    if T / fps + 1e-9 < rule.min_duration_s:
        raise HOIFormatError(
            name, "hand_joints",
            f"spans {T / fps:.3f} s ({T} frames at {fps:g} fps); at least {rule.min_duration_s:g} s of motion is required",
        )  # fmt: skip
    _check_gaps(hand_seen(traj.hand_joints), fps, rule.max_gap_s, name, "hand_joints")
    _check_gaps(~np.isnan(np.asarray(traj.object_pose)).any(axis=1), fps, rule.max_gap_s, name, "object_pose")
    _check_jumps(np.asarray(traj.hand_joints), fps, rule.max_speed_m_s, name)


# ================================================================ preparation for retargeting
def _fill_gaps(values: np.ndarray, valid: np.ndarray, quaternion_from: int | None) -> np.ndarray:
    """Fill the rows of ``values`` (T, D) where ``valid`` is False (the rule
    checked first: every gap is short). Interior gaps: linear interpolation
    between the valid rows around them (columns from ``quaternion_from`` on
    are a quaternion, slerped). Leading and trailing gaps: the nearest valid
    row is held."""
    T = values.shape[0]
    if valid.all():
        return values
    idx = np.arange(T)
    prev = np.maximum.accumulate(np.where(valid, idx, -1))
    nxt = np.minimum.accumulate(np.where(valid, idx, T)[::-1])[::-1]
    lo = np.where(prev < 0, nxt, prev)  # leading gap: hold the first valid row
    hi = np.where(nxt >= T, prev, nxt)  # trailing gap: hold the last valid row
    span = np.maximum(hi - lo, 1)
    u = np.where(hi == lo, 0.0, (idx - lo) / span)
    flat = values.reshape(T, -1)
    a, b = flat[lo], flat[hi]
    out = a + (b - a) * u[:, None]
    if quaternion_from is not None:
        out[:, quaternion_from:] = slerp(a[:, quaternion_from:], b[:, quaternion_from:], u)
    return out.reshape(values.shape)


def _resample(values: np.ndarray, fps: float, control_hz: float, quaternion_from: int | None) -> np.ndarray:
    """Resample rows (T, ...) at ``fps`` to ``control_hz`` by time: output row k
    is at t = k / control_hz, for all t within [0, (T-1) / fps]. Linear for
    positions, slerp for the quaternion columns."""
    T = values.shape[0]
    n_out = int(np.floor((T - 1) / fps * control_hz + 1e-9)) + 1
    u = np.arange(n_out) * (fps / control_hz)  # fractional input row
    i0 = np.clip(np.floor(u + 1e-9).astype(np.int64), 0, T - 2)
    f = u - i0
    flat = values.reshape(T, -1)
    a, b = flat[i0], flat[i0 + 1]
    out = a + (b - a) * f[:, None]
    if quaternion_from is not None:
        out[:, quaternion_from:] = slerp(a[:, quaternion_from:], b[:, quaternion_from:], f)
    return out.reshape((n_out,) + values.shape[1:])


def _resample_nearest(codes: np.ndarray, fps: float, control_hz: float) -> np.ndarray:
    """Per-row codes (T,) resampled like ``_resample``, taking the nearer input row."""
    T = codes.shape[0]
    n_out = int(np.floor((T - 1) / fps * control_hz + 1e-9)) + 1
    u = np.arange(n_out) * (fps / control_hz)
    return codes[np.clip(np.floor(u + 0.5).astype(np.int64), 0, T - 1)]


def prepare(
    traj: HOITrajectory,
    control_hz: float = spec.CONTROL_HZ,
    max_gap_s: float = RETARGET_RULE.max_gap_s,
    min_duration_s: float = RETARGET_RULE.min_duration_s,
    max_speed_m_s: float = RETARGET_RULE.max_speed_m_s,
) -> HOITrajectory:
    """Make a trajectory ready for retargeting; returns a new, right-handed
    trajectory at ``control_hz`` with no NaN.

    1. Validate (as ``load`` does).
    2. The rule (``check_rule`` with ``GapRule(max_gap_s, min_duration_s,
       max_speed_m_s)``, by default ``RETARGET_RULE``): duration at least
       ``min_duration_s`` ("at least 2 s of motion"); no gap longer than
       ``max_gap_s`` (hand frames are missing when any joint is NaN — joints
       are detected together, and interpolating some joints of a frame while
       keeping others would break bone lengths; object rows when NaN; g
       missing rows last g / fps s); no wrist jump faster than
       ``max_speed_m_s``. Else ``HOIFormatError`` naming the key, the frames
       and the seconds.
    3. Gaps are filled: interior ones interpolated (linear for positions, slerp
       for the quaternion), leading / trailing ones hold the nearest valid row.
    4. Quaternions are made sign-continuous, then every row is resampled by
       time to ``control_hz`` (row k at k / control_hz, covering
       [0, (T-1)/fps]): linear for positions, slerp for rotations. A
       ``hand_provenance`` is resampled to the nearer input row, filled
       frames marked ``INTERPOLATED``.
    5. A left hand is mirrored into a right hand (``mirror``)."""
    if not (np.isfinite(control_hz) and control_hz > 0):
        raise ValueError(f"control_hz must be finite and > 0, got {control_hz}")
    t = validate(traj)
    check_rule(t, GapRule(max_gap_s=max_gap_s, min_duration_s=min_duration_s, max_speed_m_s=max_speed_m_s))
    hand = t.hand_joints.astype(np.float64)
    seen = hand_seen(hand)
    hand = _fill_gaps(hand, seen, None)
    pose = t.object_pose.astype(np.float64)
    pose = _fill_gaps(pose, ~np.isnan(pose).any(axis=1), 3)
    pose[:, 3:] = _sign_continuous(pose[:, 3:])
    prov = None
    if t.hand_provenance is not None:
        prov = np.where(seen, t.hand_provenance, INTERPOLATED).astype(np.uint8)
        prov = _resample_nearest(prov, t.fps, control_hz)
    contact = None if t.contact is None else _resample_nearest(t.contact, t.fps, control_hz)
    hand = _resample(hand, t.fps, control_hz, None)
    pose = _resample(pose, t.fps, control_hz, 3)
    out = replace(
        t, hand_joints=hand.astype(np.float32), object_pose=pose.astype(np.float32), fps=float(control_hz), hand_provenance=prov,
        contact=contact,
    )
    if out.hand_side == "left":
        out = mirror(out)
    return out
