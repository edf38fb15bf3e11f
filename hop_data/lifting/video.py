"""Reading a video for lifting, and the errors that say why a video cannot be
lifted (each names the video and the reason)."""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np

__all__ = ["LiftError", "NoHandError", "NoSegmentError", "UnreadableVideoError", "read_video"]


class LiftError(ValueError):
    """A video that cannot be lifted; ``video`` names it, ``reason`` says why."""

    kind = "error"

    def __init__(self, video: str, reason: str):
        self.video, self.reason = str(video), reason
        super().__init__(f"{video}: {reason}")


class UnreadableVideoError(LiftError):
    kind = "unreadable"


class NoHandError(LiftError):
    kind = "no_hand"


class NoSegmentError(LiftError):
    """The hand was followed, but no piece of the video passes the retargeting
    rule (long enough, no unbridgeable gap, with interaction)."""

    kind = "no_segment"


def read_video(path: str | os.PathLike, max_frames: int | None = None) -> tuple[Iterator[np.ndarray], float, int, int, int]:
    """(RGB frame iterator, fps (0 if unknown), width, height, frame count
    (0 if unknown)). Raises UnreadableVideoError when the file cannot be opened
    or its first frame cannot be decoded."""
    import cv2  # lifting environment only

    path = str(path)
    if not os.path.isfile(path):
        raise UnreadableVideoError(path, "no such file")
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise UnreadableVideoError(path, "cannot be opened as a video (unknown container or codec)")
    ok, first = cap.read()
    if not ok or first is None:
        cap.release()
        raise UnreadableVideoError(path, "no frame could be decoded")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    height, width = first.shape[:2]

    def frames() -> Iterator[np.ndarray]:
        try:
            frame, n = first, 0
            while frame is not None:
                yield frame[:, :, ::-1]
                n += 1
                if max_frames is not None and n >= max_frames:
                    return
                ok, frame = cap.read()
                if not ok:
                    return
        finally:
            cap.release()

    if max_frames is not None and count:
        count = min(count, max_frames)
    return frames(), fps, width, height, count
