"""Image-plane geometry of hand observations and of the similarity transforms
that carry a hidden hand with the object it holds (``tracking``, ``object_flow``)."""

from __future__ import annotations

import math

import numpy as np

from .hands import HandObservation

PALM = (0, 5, 9, 13, 17)  # wrist and the four knuckles: the palm centre


def palm_centre(obs: HandObservation) -> np.ndarray:
    """(2,) pixels: mean of the wrist and the four knuckles."""
    return obs.image_xy[list(PALM)].mean(axis=0)


def direction(obs: HandObservation) -> np.ndarray:
    """(2,) unit image direction from the wrist to the middle knuckle (where the hand points)."""
    d = obs.image_xy[9] - obs.image_xy[0]
    n = float(np.linalg.norm(d))
    return d / n if n > 1e-6 else np.zeros(2)


def box_size(obs: HandObservation) -> float:
    """Long side of the landmarks' bounding box (pixels), at least 1."""
    return max(1.0, float(np.ptp(obs.image_xy, axis=0).max()))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (4,) x1, y1, x2, y2 boxes."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def square_box(centre: np.ndarray, size: float) -> np.ndarray:
    h = size / 2.0
    return np.array([centre[0] - h, centre[1] - h, centre[0] + h, centre[1] + h])


def similarity_params(A: np.ndarray) -> tuple[float, float]:
    """(scale, angle rad) of a (2, 3) similarity matrix."""
    return float(math.hypot(A[0, 0], A[1, 0])), float(math.atan2(A[1, 0], A[0, 0]))


def compose(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """(2, 3) affine of x -> A(B(x))."""
    return np.concatenate([A[:, :2] @ B[:, :2], A[:, :2] @ B[:, 2:] + A[:, 2:]], axis=1)


def apply(A: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """(2, 3) affine applied to (..., 2) points."""
    return pts @ A[:, :2].T + A[:, 2]


IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
