"""What is checked of an input before it is retargeted, so that a bad input
gets a clear verdict instead of 0 % kept.

- **Handedness.** The joints' geometry tells a right hand from a left one
  (``hoi.chirality``: the thumb and the flexed fingers lie on the palm side
  of the palm plane). A file whose ``hand_side`` says the other hand (a
  mirrored video, a mislabelled file) is refused with ``HandednessError``
  naming the file and the measured handedness; a hand whose geometry does
  not tell (a flat open hand) passes.
- **Interaction.** A trajectory that records its contact frames (key
  ``contact``, written by ``hop-data lift``) and has none
  shows no hand-object interaction: refused with ``NoInteractionError``
  unless ``allow_no_interaction``.

Both are ``hoi.HOIFormatError``s (``ValueError``s), so every batch reports
them like any other bad input and goes on; ``RefusedInput.cause`` names the
check. Only numpy and ``hop_data.hoi``.
"""

from __future__ import annotations

import os

import numpy as np

from .. import hoi

# A hand's measured side: the median chirality over the seen frames must be at
# least this far from 0 and its sign shared by this share of the frames;
# otherwise the geometry does not tell (a flat open hand, a noisy track).
HANDEDNESS_MIN_CHIRALITY = 0.05
HANDEDNESS_MIN_SHARE = 0.7


class RefusedInput(hoi.HOIFormatError):
    """An input refused by a check; ``cause`` names it (``handedness``, ``no_interaction``)."""

    cause = "refused"


class HandednessError(RefusedInput):
    """The joints form the other hand than ``hand_side`` says. ``label``: what
    the file says; ``measured``: what the joints form; ``chirality``: their
    median chirality; ``share``: of the frames with that sign."""

    cause = "handedness"

    def __init__(self, file: str, label: str, measured: str, chirality: float, share: float, prepared: bool = False):
        self.label, self.measured, self.chirality, self.share = label, measured, chirality, share
        what = "after preparation (left hands mirrored) the joints" if prepared else "the joints"
        super().__init__(
            file, "hand_side",
            f"says {label!r} but {what} form a {measured} hand (chirality {chirality:+.2f} in {share:.0%} of "
            f"frames): mirror the trajectory (hop_data.hoi.mirror) or fix the label",
        )  # fmt: skip


class NoInteractionError(RefusedInput):
    cause = "no_interaction"

    def __init__(self, file: str, frames: int):
        super().__init__(
            file, "contact",
            f"shows no hand-object interaction: the hand touches the object in none of its {frames} frames "
            "(a hand without an object); refused — pass --allow-no-interaction to retarget it anyway",
        )  # fmt: skip


def measured_handedness(hand_joints: np.ndarray) -> tuple[str | None, float, float]:
    """(side, median chirality, share of seen frames with its sign) of a hand
    track (T, 21, 3): side is "right" / "left" from the geometry, or None
    where it does not tell (see the thresholds)."""
    c = hoi.chirality(hand_joints)
    c = c[np.isfinite(c)]
    if c.size == 0:
        return None, float("nan"), 0.0
    median = float(np.median(c))
    share = float(np.mean(np.sign(c) == np.sign(median)))
    if abs(median) < HANDEDNESS_MIN_CHIRALITY or share < HANDEDNESS_MIN_SHARE:
        return None, median, share
    return ("right" if median > 0 else "left"), median, share


def check_handedness(traj: hoi.HOITrajectory, name: str | None = None, prepared: bool = False) -> hoi.HOITrajectory:
    """``traj`` if its joints form the hand its ``hand_side`` says (or the
    geometry does not tell); else ``HandednessError`` naming ``name``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        side, value, share = measured_handedness(traj.hand_joints)
    if side is not None and side != traj.hand_side:
        raise HandednessError(name or traj.source, traj.hand_side, side, value, share, prepared=prepared)
    return traj


def has_interaction(traj: hoi.HOITrajectory) -> bool | None:
    """True / False from the recorded contact frames; None where none are recorded."""
    if traj.contact is None:
        return None
    return bool(np.any(traj.contact))


def check_interaction(traj: hoi.HOITrajectory, name: str | None = None) -> hoi.HOITrajectory:
    if has_interaction(traj) is False:
        raise NoInteractionError(name or traj.source, traj.num_frames)
    return traj


def load_for_retargeting(path: str | os.PathLike, allow_no_interaction: bool = False) -> hoi.HOITrajectory:
    """``hoi.load`` + the checks above (errors name the file) + ``hoi.prepare``."""
    traj = hoi.load(path)
    check_handedness(traj, str(path))
    if not allow_no_interaction:
        check_interaction(traj, str(path))
    return hoi.prepare(traj)
