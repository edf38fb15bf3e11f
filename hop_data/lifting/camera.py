"""Camera model of the lifting stage: intrinsics, and metric placement of a hand.

Conventions: OpenCV camera frame (x right, y down, z forward, metres); image
points in pixels with the origin at the top-left corner of the top-left pixel
(MediaPipe's normalised landmarks times the image size).

Metric placement. MediaPipe (and HaMeR) give, per frame, the hand's 21 joints
in metres about the hand's own centre, in camera-aligned axes, plus the same
joints' image positions. The hand's place in the camera frame is the
translation ``t`` for which the perspective projection of ``metric + t``
falls on the image landmarks: a PnP problem with the rotation given. It is
solved per frame by linear least squares (each landmark gives two equations
linear in ``t`` once multiplied by the depth), then refined by Gauss-Newton
on the true reprojection error in pixels. The hand's size in metres fixes the
depth (a larger hand at the same image size is farther away), so the lifting
step first brings every frame to one per-video hand size (the scale prior,
``api.LiftOptions.hand_size``).

Only numpy: this module runs in the lifting environment (numpy < 2) and in
the main one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Horizontal field of view assumed when a video comes without intrinsics: the
# long image side spans 60 degrees (phones' main cameras and webcams are
# 60-75 degrees; a narrower guess errs towards larger depth). The depth scale
# of the lifted hand is proportional to this guess through f.
DEFAULT_FOV_DEG = 60.0
MIN_DEPTH_M = 0.05  # a hand closer than this to the camera is not a hand fit


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels (no distortion)."""

    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"intrinsics {name} must be a finite number, got {value!r}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"intrinsics fx, fy must be > 0, got fx={self.fx}, fy={self.fy}")

    @classmethod
    def parse(cls, text: str) -> Intrinsics:
        """``"fx,fy,cx,cy"`` (pixels) -> Intrinsics; ValueError naming the problem."""
        parts = [p.strip() for p in str(text).split(",")]
        if len(parts) != 4:
            raise ValueError(f"intrinsics must be 'fx,fy,cx,cy' (4 numbers), got {text!r}")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"intrinsics must be 4 numbers 'fx,fy,cx,cy', got {text!r}") from None
        return cls(*values)

    @property
    def K(self) -> np.ndarray:
        """(3, 3) camera matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def project(self, points: np.ndarray) -> np.ndarray:
        """Points (..., 3) in the camera frame -> pixels (..., 2)."""
        p = np.asarray(points, dtype=np.float64)
        z = p[..., 2]
        return np.stack([self.fx * p[..., 0] / z + self.cx, self.fy * p[..., 1] / z + self.cy], axis=-1)

    def as_list(self) -> list[float]:
        return [self.fx, self.fy, self.cx, self.cy]


def estimate_intrinsics(width: int, height: int, fov_deg: float = DEFAULT_FOV_DEG) -> Intrinsics:
    """Intrinsics guessed from the image size alone: square pixels, principal
    point at the image centre, and a focal length that gives the long side a
    field of view of ``fov_deg``: f = max(W, H) / (2 tan(fov / 2))."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if not 1.0 < fov_deg < 179.0:
        raise ValueError(f"fov_deg must be in (1, 179), got {fov_deg}")
    f = max(width, height) / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
    return Intrinsics(f, f, width / 2.0, height / 2.0)


def place_hand(
    image_xy: np.ndarray, metric: np.ndarray, intrinsics: Intrinsics, iterations: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """Translate hand-centred metric joints into the camera frame.

    image_xy (N, J, 2) pixels, metric (N, J, 3) metres (camera-aligned axes,
    about the hand's centre) -> (t (N, 3), rms reprojection error (N,) px).
    ``metric[n] + t[n]`` is frame n's hand in the camera frame. Frames with
    any NaN input get NaN. Batched over frames; no loop over joints.

    Linear step: for joint i with X = m_i + t, u_i = fx X_x / X_z + cx gives
    fx t_x - (u_i - cx) t_z = (u_i - cx) m_iz - fx m_ix (and likewise for y):
    2J equations in t. Gauss-Newton then minimises the pixel error itself
    (the linear step weighs joints by their depth)."""
    xy = np.asarray(image_xy, dtype=np.float64)
    m = np.asarray(metric, dtype=np.float64)
    if xy.ndim != 3 or xy.shape[-1] != 2 or m.shape != xy.shape[:2] + (3,):
        raise ValueError(f"image_xy must be (N, J, 2) and metric (N, J, 3), got {xy.shape} and {m.shape}")
    n, j = xy.shape[:2]
    fx, fy, cx, cy = intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy
    ok = np.isfinite(xy).all(axis=(1, 2)) & np.isfinite(m).all(axis=(1, 2))
    t = np.full((n, 3), np.nan)
    err = np.full(n, np.nan)
    if not ok.any():
        return t, err
    xy, m = xy[ok], m[ok]
    du, dv = xy[..., 0] - cx, xy[..., 1] - cy  # (N, J)
    # A (N, 2J, 3), b (N, 2J)
    zeros, ones = np.zeros_like(du), np.ones_like(du)
    ax = np.stack([fx * ones, zeros, -du], axis=-1)
    ay = np.stack([zeros, fy * ones, -dv], axis=-1)
    A = np.concatenate([ax, ay], axis=1)
    b = np.concatenate([du * m[..., 2] - fx * m[..., 0], dv * m[..., 2] - fy * m[..., 1]], axis=1)
    AtA = np.einsum("nki,nkj->nij", A, A)
    Atb = np.einsum("nki,nk->ni", A, b)
    tt = np.linalg.solve(AtA + 1e-9 * np.eye(3), Atb[..., None])[..., 0]
    # keep the hand in front of the camera before refining
    tt[:, 2] = np.maximum(tt[:, 2], MIN_DEPTH_M - m[..., 2].min(axis=1))
    for _ in range(iterations):
        X = m + tt[:, None, :]
        z = np.maximum(X[..., 2], 1e-6)
        ru = fx * X[..., 0] / z + cx - xy[..., 0]
        rv = fy * X[..., 1] / z + cy - xy[..., 1]
        # d(u)/d(t) = [fx/z, 0, -fx x/z^2]; d(v)/d(t) = [0, fy/z, -fy y/z^2]
        ju = np.stack([fx / z, np.zeros_like(z), -fx * X[..., 0] / z**2], axis=-1)
        jv = np.stack([np.zeros_like(z), fy / z, -fy * X[..., 1] / z**2], axis=-1)
        J = np.concatenate([ju, jv], axis=1)
        r = np.concatenate([ru, rv], axis=1)
        JtJ = np.einsum("nki,nkj->nij", J, J)
        Jtr = np.einsum("nki,nk->ni", J, r)
        step = np.linalg.solve(JtJ + 1e-9 * np.eye(3), Jtr[..., None])[..., 0]
        tt = tt - step
        tt[:, 2] = np.maximum(tt[:, 2], MIN_DEPTH_M - m[..., 2].min(axis=1))
    X = m + tt[:, None, :]
    proj = np.stack([fx * X[..., 0] / X[..., 2] + cx, fy * X[..., 1] / X[..., 2] + cy], axis=-1)
    t[ok] = tt
    err[ok] = np.sqrt(np.mean(np.sum((proj - xy) ** 2, axis=-1), axis=-1))
    return t, err
