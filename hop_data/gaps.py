"""The one rule for gaps and jumps in a hand trajectory, shared by video
lifting (which cuts its output where the rule would break) and retargeting
(``hoi.prepare`` refuses what breaks it, through ``hoi.check_rule``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .hand_joints import WRIST

__all__ = ["RETARGET_RULE", "GapRule", "Segment", "find_jumps", "hand_seen", "split_segments"]


@dataclass(frozen=True)
class GapRule:
    """What retargeting accepts of a hand trajectory — the one rule for gaps and
    jumps, applied by ``prepare`` (retargeting refuses what breaks it) and by
    video lifting (which cuts its output where it would break, so it never
    writes a file retargeting refuses).

    - a gap (frames whose hand is missing, any joint NaN; object rows NaN) of at
      most ``max_gap_s`` is bridged (interior: interpolated; leading / trailing:
      the nearest row held); a longer one is refused;
    - the wrist may not move faster than ``max_speed_m_s`` between consecutive
      seen frames (a jump: another hand, or a failed fit);
    - the trajectory spans at least ``min_duration_s`` (T / fps)."""

    max_gap_s: float = 0.25
    min_duration_s: float = 2.0
    max_speed_m_s: float = 5.0

    def max_gap_frames(self, fps: float) -> int:
        """The longest gap (rows) bridged at ``fps``: floor(max_gap_s * fps)."""
        return int(np.floor(self.max_gap_s * fps + 1e-9))

    def min_frames(self, fps: float) -> int:
        """The fewest rows that span ``min_duration_s`` at ``fps``."""
        return int(np.ceil(self.min_duration_s * fps - 1e-9))


RETARGET_RULE = GapRule()


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices and lengths of the runs of True in a (T,) bool mask."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1)
    return starts, np.flatnonzero(edges == -1) - starts


def hand_seen(hand_joints: np.ndarray) -> np.ndarray:
    """(T,) bool: frames whose 21 joints are all seen (the unit of gaps: a
    frame with any joint NaN is missing)."""
    return ~np.isnan(np.asarray(hand_joints)).any(axis=(1, 2))


def find_jumps(hand_joints: np.ndarray, fps: float, max_speed_m_s: float) -> list[tuple[int, int, float]]:
    """Jumps of the wrist: (frame a, next seen frame b, speed m/s) wherever the
    wrist moves faster than ``max_speed_m_s`` between consecutive seen frames."""
    h = np.asarray(hand_joints, dtype=np.float64)
    idx = np.flatnonzero(hand_seen(h))
    if idx.size < 2:
        return []
    w = h[idx, WRIST]
    speed = np.linalg.norm(np.diff(w, axis=0), axis=1) / (np.diff(idx) / fps)
    return [(int(idx[k]), int(idx[k + 1]), float(speed[k])) for k in np.flatnonzero(speed > max_speed_m_s)]


@dataclass
class Segment:
    """Frames [start, stop) of a trajectory; ``usable`` when the rule accepts
    it on its own, else ``reason`` says why not."""

    start: int
    stop: int
    usable: bool
    reason: str = ""

    @property
    def frames(self) -> int:
        return self.stop - self.start


def split_segments(hand_joints: np.ndarray, fps: float, rule: GapRule = RETARGET_RULE) -> list[Segment]:
    """Cut a hand trajectory (T, 21, 3) where ``rule`` cannot bridge it: at
    every gap longer than ``max_gap_s`` (the gap's frames belong to no
    segment) and at every jump (between its two frames). Each piece runs from
    its first to its last seen frame (shorter gaps stay inside, to be
    bridged); pieces shorter than ``min_duration_s`` are returned with
    ``usable=False``. A usable piece, cut out with its object rows, passes
    ``check_rule`` as far as the hand is concerned."""
    h = np.asarray(hand_joints)
    seen = hand_seen(h)
    idx = np.flatnonzero(seen)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) - 1 > rule.max_gap_frames(fps))  # a long gap after idx[k]
    cut = set(int(k) for k in breaks)
    jump_after = {a for a, _, _ in find_jumps(h, fps, rule.max_speed_m_s)}
    cut |= {int(k) for k, i in enumerate(idx[:-1]) if int(i) in jump_after}
    out: list[Segment] = []
    first = 0
    for k in sorted(cut) + [idx.size - 1]:
        start, stop = int(idx[first]), int(idx[k]) + 1
        n = stop - start
        if n / fps + 1e-9 >= rule.min_duration_s:
            out.append(Segment(start, stop, True))
        else:
            out.append(Segment(start, stop, False, f"spans {n / fps:.2f} s, under the {rule.min_duration_s:g} s retargeting needs"))
        first = k + 1
    return out
