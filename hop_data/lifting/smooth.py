"""Temporal clean-up of lifted trajectories: outliers, short gaps, smoothing.

Lifted hands jitter from frame to frame (the landmark networks run per frame;
the depth of a monocular fit is the noisiest coordinate) and detections drop
out for a frame or two. Three steps, all on (T, D) arrays with a (T,) mask of
valid rows, all numpy only (this runs in the lifting environment):

1. ``reject_outliers``: a row whose position departs from the running median
   of its valid neighbours by more than a threshold is marked invalid (a
   detection that jumped to the wrong hand, or a depth fit gone wrong).
2. ``fill_gaps``: interior gaps of at most ``max_gap`` rows are interpolated
   linearly; longer gaps stay invalid (NaN in the HOI file: unseen).
3. ``savgol``: Savitzky-Golay smoothing (a least-squares polynomial fit over a
   sliding window; it keeps velocity and acceleration undistorted better than
   a moving average) applied to each run of valid rows separately, so nothing
   is smeared across a gap. Near a run's ends the window's polynomial is
   evaluated off-centre (like scipy's ``mode="interp"``); runs shorter than
   the window use a window of their own length (odd), runs too short for the
   polynomial are left as they are.
"""

from __future__ import annotations

import numpy as np


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in a (T,) bool mask."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]]).astype(np.int8)
    edges = np.diff(m)
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _savgol_matrix(window: int, order: int) -> np.ndarray:
    """(window, window) matrix M: row i gives the weights that evaluate, at
    position i of the window, the degree-``order`` least-squares polynomial
    through the window's samples."""
    x = np.arange(window, dtype=np.float64) - (window - 1) / 2.0
    V = np.vander(x, order + 1, increasing=True)  # (window, order + 1)
    return V @ np.linalg.pinv(V)


def savgol(values: np.ndarray, valid: np.ndarray, window: int, order: int = 2) -> np.ndarray:
    """Savitzky-Golay smoothing of ``values`` (T, ...) along time, per run of
    ``valid`` rows. Invalid rows are returned unchanged (NaN stays NaN)."""
    values = np.asarray(values, dtype=np.float64)
    out = values.copy()
    T = values.shape[0]
    flat = out.reshape(T, -1)
    src = values.reshape(T, -1)
    if window < 3:
        return out
    for start, stop in runs(valid):
        n = stop - start
        w = min(window, n if n % 2 == 1 else n - 1)
        if w < order + 2 or w < 3:
            continue
        M = _savgol_matrix(w, order)
        seg = src[start:stop]
        half = w // 2
        # interior: centred windows, as a sum of shifted rows (vectorised over time)
        centre = M[half]
        if n > 2 * half:
            acc = np.zeros((n - 2 * half, seg.shape[1]))
            for k in range(w):
                acc += centre[k] * seg[k : n - 2 * half + k]
            flat[start + half : stop - half] = acc
        # edges: the first / last window's polynomial evaluated off-centre
        flat[start : start + half] = M[:half] @ seg[:w]
        flat[stop - half : stop] = M[w - half :] @ seg[n - w :]
    return out


def fill_gaps(values: np.ndarray, valid: np.ndarray, max_gap: int, ends: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Linearly interpolate interior gaps of at most ``max_gap`` rows; with
    ``ends``, a leading / trailing gap of at most ``max_gap`` rows holds the
    nearest valid row (what ``hoi.prepare`` does). Returns (values, valid)
    with the filled rows marked valid."""
    values = np.asarray(values, dtype=np.float64).copy()
    valid = np.asarray(valid, dtype=bool).copy()
    T = values.shape[0]
    flat = values.reshape(T, -1)
    for start, stop in runs(~valid):
        if stop - start > max_gap or (start == 0 and stop == T):
            continue
        if start == 0 or stop == T:
            if ends:
                flat[start:stop] = flat[stop] if start == 0 else flat[start - 1]
                valid[start:stop] = True
            continue
        a, b = flat[start - 1], flat[stop]
        u = (np.arange(start, stop) - (start - 1)) / (stop - (start - 1))
        flat[start:stop] = a + (b - a) * u[:, None]
        valid[start:stop] = True
    return values, valid


def reject_outliers(positions: np.ndarray, valid: np.ndarray, threshold: float, window: int = 7) -> np.ndarray:
    """(T,) valid mask with outliers removed. ``positions`` (T, 3): a row is an
    outlier when it is farther than ``threshold`` from the median of the valid
    rows in the ``window`` around it (itself included; at least 3 of them)."""
    p = np.asarray(positions, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool).copy()
    idx = np.flatnonzero(valid)
    if idx.size < 3:
        return valid
    half = window // 2
    keep = valid.copy()
    # median over the valid rows nearest in index order (a gap does not shrink the window)
    pv = p[idx]
    for k, i in enumerate(idx):
        lo, hi = max(0, k - half), min(idx.size, k + half + 1)
        med = np.median(pv[lo:hi], axis=0)
        if np.linalg.norm(p[i] - med) > threshold:
            keep[i] = False
    return keep


def stabilise_depth(joints: np.ndarray, valid: np.ndarray, window: int) -> np.ndarray:
    """Steady the depth of a monocular hand without moving it in the image.

    A monocular fit gets the hand's depth from its apparent size, and that
    size jumps when the hand turns edge-on or is half hidden (a 20 % size
    error is a 20 % depth error: centimetres per frame, metres per second of
    false speed), while its image position is accurate to a pixel. So the
    depth of the hand's centre is replaced by the running median of the
    valid frames' depths in ``window`` rows centred on it (in log depth; a
    median follows a steady approach without lag and ignores spikes), and the hand
    is slid along its viewing ray to that depth (every joint keeps its offset
    from the centre, so the hand's shape and size are kept). ``joints``
    (T, 21, 3) camera frame; rows not ``valid`` are returned unchanged."""
    j = np.asarray(joints, dtype=np.float64).copy()
    valid = np.asarray(valid, dtype=bool)
    idx = np.flatnonzero(valid)
    if idx.size < 3 or window < 3:
        return j
    centre = j[idx].mean(axis=1)  # (n, 3)
    logz = np.log(np.maximum(centre[:, 2], 1e-3))
    half = window // 2
    target = np.empty_like(logz)
    for k in range(idx.size):
        # neighbours within a window centred on the row (shrunk near the ends, so a steady
        # approach is not pulled towards its inner side), in frame index (a gap does not pull in far frames)
        h = min(half, idx[k] - idx[0], idx[-1] - idx[k])
        lo = np.searchsorted(idx, idx[k] - h)
        hi = np.searchsorted(idx, idx[k] + h, side="right")
        target[k] = np.median(logz[lo:hi])
    ratio = np.exp(target - logz)  # slide the centre along its ray: p -> p * z' / z
    j[idx] += (centre * (ratio[:, None] - 1.0))[:, None, :]
    return j
