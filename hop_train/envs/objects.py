"""Task objects: procedural stand-ins for the YCB objects of the HOP tasks
(training set) and a held-out set of other shapes never used in training.

Dimensions and masses are the YCB object set's published values (Calli et
al., "The YCB object and model set", 2015, Table 1); the shapes are
``hop_robot.shapes`` primitives of those sizes, so nothing is
downloaded. A scene's collision shape is the convex hull of the surface
points (a bowl collides as its hull, a mug with its handle filled in).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hop_robot.shapes import ObjectShape, surface_points

__all__ = ["HELDOUT_OBJECTS", "OBJECT_SETS", "TRAIN_OBJECTS", "TaskObject", "object_set"]

SURFACE_POINTS = 1024  # points sampled per object surface (hull and cloud source)


@dataclass(frozen=True)
class TaskObject:
    """A graspable object: name, shape (object frame: centre at the origin, z up at rest), mass (kg)."""

    name: str
    shape: ObjectShape
    mass: float

    def points(self, count: int = SURFACE_POINTS) -> np.ndarray:
        """(count, 3) surface points, object frame (deterministic)."""
        return surface_points(self.shape, count, seed=0)

    @property
    def rest_height(self) -> float:
        """Height of the frame origin above the table when the object stands on it (m)."""
        return float(-self.points()[:, 2].min())


def _cyl(diameter_mm: float, height_mm: float) -> ObjectShape:
    r = diameter_mm / 2000.0
    return ObjectShape("cylinder", np.array([r, r, height_mm / 2000.0]))


def _box(x_mm: float, y_mm: float, z_mm: float) -> ObjectShape:
    return ObjectShape("box", np.array([x_mm, y_mm, z_mm]) / 2000.0)


# YCB (Calli et al. 2015): dimensions in mm, mass in kg.
TRAIN_OBJECTS: tuple[TaskObject, ...] = (
    TaskObject("002_master_chef_can", _cyl(102, 139), 0.414),
    TaskObject("005_tomato_soup_can", _cyl(66, 101), 0.349),
    TaskObject("010_potted_meat_can", _box(50, 97, 82), 0.370),
    TaskObject("024_bowl", ObjectShape("bowl", np.array([0.0795, 0.0795, 0.0265])), 0.147),
    TaskObject("025_mug", ObjectShape("mug", np.array([0.040, 0.040, 0.041]), (0.036, 0.026, 0.006)), 0.118),
    TaskObject("036_wood_block", _box(85, 85, 200), 0.729),
)
# Shapes not in training: a banana (YCB 011's size), a bottle, a flat box
# (YCB 004 sugar box's size) and a ball (YCB 055 baseball's size).
HELDOUT_OBJECTS: tuple[TaskObject, ...] = (
    TaskObject("banana_like", ObjectShape("banana", np.array([0.090, 0.018, 0.030])), 0.066),
    TaskObject("bottle_like", ObjectShape("bottle", np.array([0.032, 0.032, 0.095])), 0.350),
    TaskObject("box_like", _box(38, 89, 175), 0.514),
    TaskObject("sphere_like", ObjectShape("sphere", np.array([0.0365, 0.0365, 0.0365])), 0.148),
)
OBJECT_SETS = {"train": TRAIN_OBJECTS, "heldout": HELDOUT_OBJECTS}


def object_set(name: str | tuple[str, ...] | list[str]) -> tuple[TaskObject, ...]:
    """``"train"``, ``"heldout"``, or object names from either set."""
    if isinstance(name, str):
        if name in OBJECT_SETS:
            return OBJECT_SETS[name]
        name = [name]
    by_name = {o.name: o for o in TRAIN_OBJECTS + HELDOUT_OBJECTS}
    unknown = [n for n in name if n not in by_name]
    if unknown:
        raise ValueError(f"unknown objects {unknown}; sets: {sorted(OBJECT_SETS)}; objects: {sorted(by_name)}")
    return tuple(by_name[n] for n in name)
