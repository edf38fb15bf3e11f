"""Object surfaces: the one surface-point sampler of the project.

Synthetic human videos (``hop_data.synth``), the lifting proxy, the
simulated robot's default can and the task objects (``hop_train.envs``)
describe their objects as an ``ObjectShape`` and sample its surface here,
uniformly by area, in the object's frame (origin at the body's centre, z up
when resting). A scene's collision shape is the convex hull of the points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["KINDS", "ObjectShape", "surface_points"]

KINDS = ("box", "bar", "sphere", "cylinder", "mug", "bowl", "bottle", "banana")


@dataclass(frozen=True)
class ObjectShape:
    """A rigid object; its frame has the origin at the body's centre, z up when resting."""

    kind: str  # one of KINDS
    half: np.ndarray  # (3,) half extents of the body (cylinder / mug / sphere / bowl / bottle: radius, radius, half height)
    handle: tuple[float, float, float] = (0.0, 0.0, 0.0)  # mug: centre x, major radius, minor radius

    @property
    def rest_height(self) -> float:
        """z of the frame origin when the object stands on the table."""
        return float(self.half[2])

    def sdf(self, p: np.ndarray) -> np.ndarray:
        """Signed distance (...,) of object-frame points (..., 3) to the surface
        (< 0 inside); for box, bar, sphere, cylinder and mug."""
        p = np.asarray(p, dtype=np.float64)
        if self.kind not in ("box", "bar", "sphere", "cylinder", "mug"):
            raise ValueError(f"no signed distance for shape {self.kind!r}")
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
        if self.kind in _COMPOSITES:
            return _COMPOSITES[self.kind](self, rng, n)
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


def _uniform_sphere(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _bowl(shape: ObjectShape, rng: np.random.Generator, n: int) -> np.ndarray:
    """A bowl: the lower part of a sphere of radius R cut at the rim (half
    depth below the rim plane), its outer surface; radius
    ``half[0]`` at the rim, depth ``2 half[2]``."""
    r_rim, hh = shape.half[0], shape.half[2]
    depth = 2 * hh
    radius = (r_rim**2 + depth**2) / (2 * depth)  # sphere through the rim and the bottom point
    out = np.zeros((0, 3))
    while len(out) < n:  # rejection: a uniform sphere point is uniform on any zone of it
        p = _uniform_sphere(rng, 4 * n + 16) * radius
        p[:, 2] += radius - depth  # bottom of the sphere at -depth relative to the rim
        out = np.concatenate([out, p[p[:, 2] <= 0.0]])
    pts = out[:n]
    pts[:, 2] += hh  # origin at the centre of the bowl's height
    return pts


def _bottle(shape: ObjectShape, rng: np.random.Generator, n: int) -> np.ndarray:
    """A bottle: a cylinder body (lower 70 % of the height) and a neck of a
    third of its radius on top, by area."""
    r, hh = shape.half[0], shape.half[2]
    h_body, h_neck, r_neck = 1.4 * hh, 0.6 * hh, r / 3.0
    body = ObjectShape("cylinder", np.array([r, r, h_body / 2]))
    neck = ObjectShape("cylinder", np.array([r_neck, r_neck, h_neck / 2]))
    area_body, area_neck = 2 * np.pi * r * h_body + 2 * np.pi * r * r, 2 * np.pi * r_neck * h_neck
    n_neck = int(round(n * area_neck / (area_body + area_neck)))
    lower = body.sample_surface(rng, n - n_neck) + [0.0, 0.0, -hh + h_body / 2]
    upper = neck.sample_surface(rng, n_neck) + [0.0, 0.0, hh - h_neck / 2]
    return np.concatenate([lower, upper])


def _banana(shape: ObjectShape, rng: np.random.Generator, n: int) -> np.ndarray:
    """A banana: a tube of radius ``half[1]`` bent along a circular arc in the
    x-z plane of chord ``2 half[0]`` and sagitta ``half[2]``, lying on its side."""
    chord, tube, sag = 2 * shape.half[0], shape.half[1], shape.half[2]
    bend = (chord**2 / 4 + sag**2) / (2 * sag)  # arc radius
    span = 2 * np.arcsin(chord / (2 * bend))
    u = rng.uniform(-span / 2, span / 2, n)
    v = rng.uniform(0, 2 * np.pi, n)
    ring = bend + tube * np.cos(v)
    return np.stack([ring * np.sin(u), tube * np.sin(v), ring * np.cos(u) - bend + sag / 2], 1)


_COMPOSITES: dict[str, Callable[[ObjectShape, np.random.Generator, int], np.ndarray]] = {
    "bowl": _bowl,
    "bottle": _bottle,
    "banana": _banana,
}


def surface_points(shape: ObjectShape, count: int, seed: int = 0) -> np.ndarray:
    """(count, 3) float64 surface points of ``shape``, deterministic for ``seed``."""
    return shape.sample_surface(np.random.default_rng(seed), count)
