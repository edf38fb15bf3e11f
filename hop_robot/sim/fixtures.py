"""Task fixtures added to a scene's ``MjSpec`` before compiling
(``build_scene(..., extras=[Basket(), Cabinet()])``): a basket for Grasp &
Throw and a cabinet with a sliding drawer for Open Cabinet (REFERENCE.md
"Task details"). Positions are in the robot base frame (x forward, z up; the
table top at ``SceneConfig.table_height``).

The fixtures' static parts are world geoms, so the scene's arm-contact
sensors (contacts with the world body) count an arm touching them.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

__all__ = ["Basket", "Cabinet"]

_WORLD_BITS = 0x7FFFFFFF


@dataclass(frozen=True)
class Basket:
    """An open box on the table: floor and four walls.

    rim_center: centre of the rim (m); HOP's basket is at (0.37, 0, 0.10).
    inner_half: half width of the inside (m); wall: wall thickness (m).
    """

    rim_center: tuple[float, float, float] = (0.37, 0.0, 0.10)
    inner_half: float = 0.09
    wall: float = 0.01

    @property
    def floor_z(self) -> float:
        return 0.0

    def contains(self, p: np.ndarray) -> np.ndarray:
        """(N,) bool: points (N, 3) inside the basket's walls, below its rim."""
        c = np.asarray(self.rim_center)
        inside = np.all(np.abs(p[:, :2] - c[:2]) < self.inner_half, axis=1)
        return inside & (p[:, 2] < c[2]) & (p[:, 2] > self.floor_z - 0.01)

    def __call__(self, scene: mujoco.MjSpec) -> None:
        cx, cy, top = self.rim_center
        h, t, a = top - self.floor_z, self.wall, self.inner_half
        world, base = scene.worldbody, np.array([cx, cy, self.floor_z])
        color = [0.45, 0.35, 0.6, 1.0]
        args = dict(type=mujoco.mjtGeom.mjGEOM_BOX, rgba=color, contype=_WORLD_BITS, conaffinity=_WORLD_BITS)
        world.add_geom(name="basket_floor", size=[a + t, a + t, t / 2], pos=(base + [0, 0, t / 2]).tolist(), **args)
        for name, pos, size in (
            ("basket_wall_px", [a + t / 2, 0, h / 2], [t / 2, a + t, h / 2]),
            ("basket_wall_nx", [-a - t / 2, 0, h / 2], [t / 2, a + t, h / 2]),
            ("basket_wall_py", [0, a + t / 2, h / 2], [a, t / 2, h / 2]),
            ("basket_wall_ny", [0, -a - t / 2, h / 2], [a, t / 2, h / 2]),
        ):
            world.add_geom(name=name, size=size, pos=(base + pos).tolist(), **args)


@dataclass(frozen=True)
class Cabinet:
    """A cabinet whose drawer slides out toward the robot (−x), with a bar handle.

    front_x: x of the cabinet's front face (m); the drawer's front is flush with it when closed.
    handle_height: z of the handle above the table top (m).
    travel: how far the drawer opens (m); HOP's success needs 0.32 m.
    """

    front_x: float = 0.78
    center_y: float = 0.0
    width: float = 0.40  # m, along y
    depth: float = 0.32  # m, along x
    height: float = 0.30  # m
    handle_height: float = 0.16
    handle_length: float = 0.12  # m, along y
    handle_radius: float = 0.012
    handle_standoff: float = 0.05  # m, from the drawer front to the bar's axis
    travel: float = 0.40
    drawer_damping: float = 2.0  # N·s/m: the drawer's slide is not free

    def handle_axis_points(self, opening: np.ndarray, count: int) -> np.ndarray:
        """(N, count, 3): points along the handle's axis for drawer openings (N,)."""
        y = self.center_y + np.linspace(-self.handle_length / 2, self.handle_length / 2, count)
        x = self.front_x - self.handle_standoff - np.asarray(opening)[:, None]
        return np.stack(np.broadcast_arrays(x, y[None], np.full_like(x, self.handle_height)), axis=-1)

    def handle_surface(self, count: int, seed: int = 0) -> np.ndarray:
        """(count, 3) points on the handle bar's surface, in the closed drawer's
        handle frame (axis along y through the origin)."""
        rng = np.random.default_rng(seed)
        phi = rng.uniform(0, 2 * np.pi, count)
        y = rng.uniform(-self.handle_length / 2, self.handle_length / 2, count)
        r = self.handle_radius
        return np.stack([r * np.cos(phi), y, r * np.sin(phi)], axis=1)

    @property
    def handle_closed(self) -> np.ndarray:
        """(3,) handle axis centre when the drawer is closed."""
        return np.array([self.front_x - self.handle_standoff, self.center_y, self.handle_height])

    def __call__(self, scene: mujoco.MjSpec) -> None:
        w, d, h = self.width / 2, self.depth / 2, self.height
        cx = self.front_x + d
        t = 0.015
        args = dict(type=mujoco.mjtGeom.mjGEOM_BOX, contype=_WORLD_BITS, conaffinity=_WORLD_BITS)
        world, base = scene.worldbody, np.array([cx, self.center_y, 0.0])
        wood = [0.55, 0.42, 0.3, 1.0]
        for name, size, pos in (  # the frame: world geoms (the arm-contact sensors see them)
            ("cabinet_top", [d, w, t], [0, 0, h - t]),
            ("cabinet_back", [t, w, h / 2], [d - t, 0, h / 2]),
            ("cabinet_left", [d, t, h / 2], [0, w - t, h / 2]),
            ("cabinet_right", [d, t, h / 2], [0, -w + t, h / 2]),
            ("cabinet_bottom", [d, w, t], [0, 0, t]),
        ):
            world.add_geom(name=name, size=size, pos=(base + pos).tolist(), rgba=wood, **args)
        # The drawer: a tray riding on a slide joint along x, inside the frame.
        drawer = world.add_body(name="drawer", pos=base.tolist())
        drawer.add_joint(
            name="drawer_slide", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[-1, 0, 0],
            range=[0.0, self.travel], damping=self.drawer_damping, armature=0.01,
        )  # fmt: skip
        light = [0.75, 0.62, 0.45, 1.0]
        inner_w, inner_h = w - 2 * t - 0.003, (h - 4 * t) / 2
        z0 = 2 * t + 0.003 + inner_h
        drawer.add_geom(name="drawer_front", size=[t, inner_w, inner_h], pos=[-d + t, 0, z0], rgba=light, mass=0.5, **args)
        drawer.add_geom(name="drawer_floor", size=[d - 2 * t, inner_w, t / 2], pos=[0, 0, 2 * t + 0.003 + t / 2],
                        rgba=light, mass=0.5, **args)  # fmt: skip
        scene.add_exclude(bodyname1="world", bodyname2="drawer")  # the slide holds it; damping is its only resistance
        hx = -d - self.handle_standoff
        hz = self.handle_height
        metal = [0.8, 0.8, 0.85, 1.0]
        drawer.add_geom(
            name="drawer_handle", type=mujoco.mjtGeom.mjGEOM_CAPSULE, size=[self.handle_radius, self.handle_length / 2, 0],
            pos=[hx, 0, hz], quat=[0.7071067811865476, 0.7071067811865476, 0, 0], rgba=metal,
            contype=_WORLD_BITS, conaffinity=_WORLD_BITS, mass=0.1,
        )  # fmt: skip
        for side in (-1, 1):  # the posts holding the bar
            drawer.add_geom(
                name=f"drawer_handle_post_{'l' if side > 0 else 'r'}", type=mujoco.mjtGeom.mjGEOM_BOX,
                size=[self.handle_standoff / 2, 0.006, 0.006],
                pos=[-d - self.handle_standoff / 2, side * (self.handle_length / 2 - 0.006), hz], rgba=metal,
                contype=_WORLD_BITS, conaffinity=_WORLD_BITS, mass=0.02,
            )  # fmt: skip
