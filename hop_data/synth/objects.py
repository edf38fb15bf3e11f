"""The synthetic objects: boxes, cylinders, spheres, mugs and bars, their signed
distance and their surface points (see the package notes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPES = ("box", "cylinder", "sphere", "mug", "bar")
SHAPE_PROBABILITIES = (0.25, 0.25, 0.15, 0.2, 0.15)


@dataclass(frozen=True)
class ObjectShape:
    """A rigid object; its frame has the origin at the body's centre, z up when resting."""

    kind: str
    half: np.ndarray  # (3,) half extents of the body (cylinder / mug / sphere: radius, radius, half height)
    handle: tuple[float, float, float] = (0.0, 0.0, 0.0)  # mug: centre x, major radius, minor radius

    @property
    def rest_height(self) -> float:
        """z of the frame origin when the object stands on the table."""
        return float(self.half[2])

    def sdf(self, p: np.ndarray) -> np.ndarray:
        """Signed distance (...,) of object-frame points (..., 3) to the surface (< 0 inside)."""
        p = np.asarray(p, dtype=np.float64)
        if self.kind in ("box", "bar"):
            q = np.abs(p) - self.half
            return np.linalg.norm(np.maximum(q, 0.0), axis=-1) + np.minimum(q.max(-1), 0.0)
        if self.kind == "sphere":
            return np.linalg.norm(p, axis=-1) - self.half[0]
        d = np.stack([np.linalg.norm(p[..., :2], axis=-1) - self.half[0], np.abs(p[..., 2]) - self.half[2]], -1)
        body = np.linalg.norm(np.maximum(d, 0.0), axis=-1) + np.minimum(d.max(-1), 0.0)
        if self.kind == "cylinder":
            return body
        cx, major, minor = self.handle  # mug: a torus in the x-z plane
        ring = np.stack([np.hypot(p[..., 0] - cx, p[..., 2]) - major, p[..., 1]], -1)
        return np.minimum(body, np.linalg.norm(ring, axis=-1) - minor)

    def sample_surface(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, 3) points uniform by area on the surface, object frame."""
        if self.kind == "mug":  # body and handle overlap: keep the points on the union's surface
            out = np.zeros((0, 3))
            while len(out) < n:
                pts = self._sample_parts(rng, n + n // 4)
                out = np.concatenate([out, pts[np.abs(self.sdf(pts)) < 1e-6]])
            return out[:n]
        return self._sample_parts(rng, n)

    def _sample_parts(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.kind == "sphere":
            v = rng.normal(size=(n, 3))
            return self.half[0] * v / np.linalg.norm(v, axis=1, keepdims=True)
        if self.kind in ("box", "bar"):
            hx, hy, hz = self.half
            areas = np.array([hy * hz, hy * hz, hx * hz, hx * hz, hx * hy, hx * hy])
            face = rng.choice(6, size=n, p=areas / areas.sum())
            pts = rng.uniform(-1.0, 1.0, (n, 3)) * self.half
            axis = face // 2
            sign = np.where(face % 2 == 0, 1.0, -1.0)
            pts[np.arange(n), axis] = sign * self.half[axis]
            return pts
        r, hh = self.half[0], self.half[2]
        parts = {"side": 2 * np.pi * r * 2 * hh, "cap": 2 * np.pi * r * r}
        if self.kind == "mug":
            _, major, minor = self.handle
            parts["handle"] = 0.5 * 4 * np.pi**2 * major * minor  # outer half of the torus
        names = list(parts)
        areas = np.array([parts[k] for k in names])
        which = rng.choice(len(names), size=n, p=areas / areas.sum())
        pts = np.zeros((n, 3))
        side = which == names.index("side")
        a = rng.uniform(0, 2 * np.pi, side.sum())
        pts[side] = np.stack([r * np.cos(a), r * np.sin(a), rng.uniform(-hh, hh, side.sum())], 1)
        cap = which == names.index("cap")
        a, rad = rng.uniform(0, 2 * np.pi, cap.sum()), r * np.sqrt(rng.uniform(0, 1, cap.sum()))
        pts[cap] = np.stack([rad * np.cos(a), rad * np.sin(a), np.where(rng.uniform(size=cap.sum()) < 0.5, hh, -hh)], 1)
        if self.kind == "mug":
            handle = which == names.index("handle")
            pts[handle] = self._sample_handle(rng, int(handle.sum()))
        return pts

    def _sample_handle(self, rng: np.random.Generator, n: int) -> np.ndarray:
        cx, major, minor = self.handle
        out = np.zeros((0, 3))
        while len(out) < n:  # rejection: area element of a torus is proportional to (R + r cos v)
            m = 4 * n + 16
            u = rng.uniform(-np.pi / 2, np.pi / 2, m)  # outer half, away from the body
            v = rng.uniform(0, 2 * np.pi, m)
            keep = rng.uniform(0, 1, m) < (major + minor * np.cos(v)) / (major + minor)
            ring = major + minor * np.cos(v)
            pts = np.stack([cx + ring * np.cos(u), minor * np.sin(v), ring * np.sin(u)], 1)[keep]
            out = np.concatenate([out, pts])
        return out[:n]

    @staticmethod
    def sample(rng: np.random.Generator, kind: str) -> "ObjectShape":
        if kind == "box":
            return ObjectShape(kind, np.array([rng.uniform(0.02, 0.035), rng.uniform(0.03, 0.05), rng.uniform(0.03, 0.075)]))
        if kind == "cylinder":
            r = rng.uniform(0.025, 0.042)
            return ObjectShape(kind, np.array([r, r, rng.uniform(0.045, 0.09)]))
        if kind == "sphere":
            r = rng.uniform(0.03, 0.05)
            return ObjectShape(kind, np.array([r, r, r]))
        if kind == "mug":
            r = rng.uniform(0.035, 0.043)
            major = rng.uniform(0.025, 0.03)
            return ObjectShape(kind, np.array([r, r, rng.uniform(0.045, 0.055)]), (r - 0.004, major, 0.006))
        if kind == "bar":
            return ObjectShape(kind, np.array([rng.uniform(0.08, 0.12), rng.uniform(0.012, 0.022), rng.uniform(0.012, 0.022)]))
        raise ValueError(f"unknown shape {kind!r}, expected one of {SHAPES}")
