"""The synthetic objects: random boxes, cylinders, spheres, mugs and bars.
Their signed distance and surface points are ``hop_robot.shapes.ObjectShape``'s,
the project's one surface sampler (see the package notes)."""

from __future__ import annotations

import numpy as np

from hop_robot.shapes import ObjectShape

SHAPES = ("box", "cylinder", "sphere", "mug", "bar")
SHAPE_PROBABILITIES = (0.25, 0.25, 0.15, 0.2, 0.15)


def sample_shape(rng: np.random.Generator, kind: str) -> ObjectShape:
    """A random synthetic object of ``kind`` (sizes of hand-held objects)."""
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
