"""Scene composition: robot + floor + table + obstacle slots + the object.

One place for the scene layout used by data generation (retargeting), the
simulated robot (``hop_robot.drivers.sim``) and the task environments
(``hop_train.envs``, which add their fixtures through ``build_scene``'s
``extras``: editable ``MjSpec`` additions made before compiling). The scene is composed from the robot's own MJCF
(``hop_robot.embodiment``, which owns every robot fact) with
``mujoco.MjSpec``; nothing here repeats a robot number.

The object is either **kinematic** (a mocap body placed at a given pose every
control step, its dynamics ignored: retargeting, DESIGN.md) or **dynamic**
(a free-joint body that rests on the table and is pushed and grasped: the
simulated robot), chosen by ``SceneConfig.object_dynamic``.

Per-scene randomisation (table pose, obstacles, joint friction) is applied
later as per-simulation model fields, so one compiled model serves all
attempts of a video.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import mujoco
import numpy as np

from hop_robot.embodiment import model as robot_model
from hop_robot.embodiment import spec
from hop_robot.geometry import farthest_point_sample, matrix_to_quat, quat_to_matrix

__all__ = [
    "PARKED_Z",
    "CompiledScene",
    "SceneConfig",
    "SceneError",
    "SceneIndex",
    "add_lookat_camera",
    "build_scene",
    "build_scene_spec",
    "compile_scene",
    "index_scene",
    "object_cloud",
    "table_geom_pose",
]

# Environment geoms collide with every robot geom that collides with anything.
_ALL_BITS = 0x7FFFFFFF
PARKED_Z = -50.0  # unused obstacle slots (and a parked kinematic object) sit far below the floor


@dataclass(frozen=True)
class SceneConfig:
    """Fixed layout of a scene; per-scene randomisation lives in ``hop_robot.sim.protocol.SceneParams``.

    The robot base is the world origin (x forward, z up). The table is a box
    whose top-centre sits ``table_distance`` in front of the base by default.
    """

    table_distance: float = 0.65  # m, robot base to table centre (HOP paper)
    table_size: tuple[float, float, float] = (0.6, 1.0, 0.04)  # m, full extents x, y, thickness
    table_height: float = 0.0  # m, table top relative to the robot base (robot mounted at table height)
    floor_height: float = -0.75  # m, floor below the robot base (the robot stands on a stand)
    max_obstacles: int = 4  # box obstacle slots per scene; unused slots are parked out of reach
    num_points: int = spec.NUM_POINTS  # object point cloud size
    # Retargeting ignores the object's dynamics (paper), and a hand scaled to the
    # Allegro's size cannot close on a human-sized grasp without passing through
    # it: by default the robot does not touch the kinematic object.
    object_collision: bool = False
    contact_margin: float = 0.0  # m, extra distance at which arm contact already counts
    # False: the object is a mocap body placed every step (retargeting). True: a
    # free-joint body with mass and contacts (the simulated robot); needs object_collision.
    object_dynamic: bool = False
    object_density: float = 100.0  # kg/m³ of the object's hull (matters for a dynamic object only)
    object_mass: float | None = None  # kg; set: overrides the density (a task object's published mass)
    object_friction: float = 1.0  # sliding friction of the object's surface (MuJoCo's default)

    def default_table_pose(self) -> np.ndarray:
        """(7,) table top-centre position + identity quaternion."""
        return np.array([self.table_distance, 0.0, self.table_height, 1.0, 0.0, 0.0, 0.0])


class SceneError(ValueError):
    """A scene cannot be built from the given inputs."""


@dataclass(frozen=True)
class SceneIndex:
    """Indices into the compiled scene model, in the embodiment's orders."""

    qpos: np.ndarray  # (23,) qpos addresses of the robot joints
    dof: np.ndarray  # (23,) dof addresses
    actuator: np.ndarray  # (23,) actuator ids
    keypoint_sites: np.ndarray  # (9,) site ids
    table_geom: int
    obstacle_geoms: np.ndarray  # (K,)
    object_mocap: int  # mocap id of a kinematic object; -1 for a dynamic one
    arm_contact_sensors: np.ndarray  # sensordata addresses, one per arm link
    hand_contact_sensor: int  # sensordata address of the hand subtree's sensor
    object_body: int = -1  # body id of the object
    object_qpos: int = -1  # qpos address of a dynamic object's free joint (7: pos, quat w,x,y,z); -1 if kinematic
    object_dof: int = -1  # dof address of a dynamic object's free joint (6); -1 if kinematic


def object_cloud(object_points: np.ndarray, num_points: int) -> np.ndarray:
    """The fixed (P, 3) object-frame cloud that every observation shows:
    a farthest-point subsample of the object's surface points."""
    pts = _checked_points(object_points)
    return pts[farthest_point_sample(pts, num_points)]


def _checked_points(object_points: np.ndarray) -> np.ndarray:
    pts = np.asarray(object_points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 4:
        raise SceneError(f"object points must be (P >= 4, 3), got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise SceneError("object points contain NaN or inf")
    return pts


def _hand_root(robot: mujoco.MjSpec) -> str:
    """The body the hand hangs from: the first child of link7."""
    children = robot.body("link7").bodies
    if not children:
        raise SceneError("robot model: link7 has no child body (no hand attached)")
    return children[0].name


def build_scene_spec(
    object_points: np.ndarray,
    config: SceneConfig = SceneConfig(),
    robot_path: str | None = None,
) -> mujoco.MjSpec:
    """An MjSpec of the scene: the robot at the origin, floor, table at its
    default pose, ``config.max_obstacles`` parked obstacle boxes and the object
    (collision shape: convex hull of its points) on a mocap body, or on a
    free-joint body when ``config.object_dynamic`` (placed at the origin:
    set its qpos before stepping)."""
    if config.object_dynamic and not config.object_collision:
        raise SceneError("a dynamic object needs object_collision=True (it would fall through the table)")
    scene = robot_model.load_spec(robot_path)
    scene.modelname = "hop_scene"  # timestep and integrator: the robot model's (load_spec)
    # Table and obstacles move per scene (per-simulation geom_pos), which the
    # bounding-volume hierarchies built at compile time do not follow: the
    # mid-phase would cull their contacts. Geom-level bounds stay exact.
    scene.option.disableflags |= mujoco.mjtDisableBit.mjDSBL_MIDPHASE
    world = scene.worldbody

    world.add_light(pos=[0.3, 0.0, 2.0], dir=[0.0, 0.0, -1.0], diffuse=[0.8, 0.8, 0.8])
    world.add_geom(
        name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[3.0, 3.0, 0.1],
        pos=[0.0, 0.0, config.floor_height], rgba=[0.35, 0.38, 0.42, 1.0],
        contype=_ALL_BITS, conaffinity=_ALL_BITS,
    )
    half = np.asarray(config.table_size, dtype=np.float64) / 2.0
    table_pose = config.default_table_pose()
    world.add_geom(
        name="table", type=mujoco.mjtGeom.mjGEOM_BOX, size=half.tolist(),
        pos=[table_pose[0], table_pose[1], table_pose[2] - half[2]],
        rgba=[0.62, 0.48, 0.33, 1.0], contype=_ALL_BITS, conaffinity=_ALL_BITS,
    )
    for k in range(config.max_obstacles):
        world.add_geom(
            name=f"obstacle_{k}", type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.05, 0.05, 0.05],
            pos=[0.0, 0.0, PARKED_Z - k], rgba=[0.55, 0.2, 0.2, 1.0],
            contype=_ALL_BITS, conaffinity=_ALL_BITS,
        )

    cloud = _checked_points(object_points)
    extent = cloud.max(axis=0) - cloud.min(axis=0)
    if np.sort(extent)[0] < 1e-4:
        # A flat object (a sheet of paper) has no hull volume: thicken it to 0.1 mm.
        cloud = np.concatenate([cloud, cloud + np.where(extent < 1e-4, 1e-4, 0.0)])
    # A dynamic object needs a solid body's inertia; a mocap body's is never used.
    inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_CONVEX if config.object_dynamic else mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL
    scene.add_mesh(name="object_hull", uservert=cloud.ravel().tolist(), inertia=inertia)
    obj_bits = _ALL_BITS if config.object_collision else 0
    if config.object_dynamic:
        obj = world.add_body(name="object", pos=[0.0, 0.0, 0.0])
        obj.add_freejoint(name="object_free")
    else:
        obj = world.add_body(name="object", mocap=True, pos=[0.0, 0.0, PARKED_Z])
    geom = obj.add_geom(
        name="object_geom", type=mujoco.mjtGeom.mjGEOM_MESH, meshname="object_hull",
        rgba=[0.2, 0.55, 0.85, 1.0], contype=obj_bits, conaffinity=obj_bits, density=config.object_density,
        friction=[config.object_friction, 0.005, 0.0001],
    )
    if config.object_mass is not None:
        if config.object_mass <= 0:
            raise SceneError(f"object_mass must be > 0 kg, got {config.object_mass}")
        geom.mass = float(config.object_mass)
    if not config.object_dynamic:
        scene.add_exclude(bodyname1="world", bodyname2="object")

    # Contact sensors: 'found' counts contacts between a robot part and the
    # world body's geoms (floor, table, obstacles), computed at every substep.
    sensor_args = dict(type=mujoco.mjtSensor.mjSENS_CONTACT, reftype=mujoco.mjtObj.mjOBJ_BODY, refname="world", intprm=[1, 0, 1])
    for name in spec.ARM_LINK_NAMES:
        scene.add_sensor(name=f"contact_{name}", objtype=mujoco.mjtObj.mjOBJ_BODY, objname=name, **sensor_args)
    scene.add_sensor(name="contact_hand", objtype=mujoco.mjtObj.mjOBJ_XBODY, objname=_hand_root(scene), **sensor_args)
    if config.contact_margin > 0:
        for geom in scene.geoms:
            if geom.name in ("floor", "table") or geom.name.startswith("obstacle_"):
                geom.margin = config.contact_margin
    return scene


def add_lookat_camera(
    scene: mujoco.MjSpec, name: str, position: np.ndarray, target: np.ndarray, fovy_deg: float
) -> None:
    """A fixed world camera at ``position`` looking at ``target`` (world frame,
    z up; image up is the world's +z projected). MuJoCo cameras look along
    their own -z with +y up."""
    position = np.asarray(position, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - position
    if np.linalg.norm(forward) < 1e-9:
        raise SceneError(f"camera {name!r}: position and target coincide")
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    if np.linalg.norm(right) < 1e-6:  # looking straight down or up
        right = np.cross(forward, [1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    rot = np.stack([right, up, -forward], axis=1)  # columns: camera x, y, z in world
    scene.worldbody.add_camera(
        name=name, pos=position.tolist(), quat=matrix_to_quat(rot).tolist(), fovy=float(fovy_deg)
    )


def compile_scene(
    object_points: np.ndarray,
    config: SceneConfig = SceneConfig(),
    robot_path: str | None = None,
) -> tuple[mujoco.MjModel, SceneIndex]:
    """Compile the scene and look up the indices the simulator needs."""
    compiled = build_scene(object_points, config, robot_path)
    return compiled.model, compiled.index


@dataclass(frozen=True, eq=False)
class CompiledScene:
    """One compiled scene variant: what a simulator backend steps.

    model: the compiled MjModel; index: its robot/object addresses;
    cloud (P, 3): the object-frame cloud observations show; config: its layout.
    """

    model: mujoco.MjModel
    index: SceneIndex
    cloud: np.ndarray
    config: SceneConfig


SceneExtra = Callable[[mujoco.MjSpec], None]


def build_scene(
    object_points: np.ndarray,
    config: SceneConfig = SceneConfig(),
    robot_path: str | None = None,
    extras: Sequence[SceneExtra] = (),
) -> CompiledScene:
    """Build, extend and compile a scene: ``build_scene_spec``, then each of
    ``extras`` edits the ``MjSpec`` (a task's basket or cabinet), then compile."""
    scene = build_scene_spec(object_points, config, robot_path)
    for extra in extras:
        extra(scene)
    try:
        model = scene.compile()
    except ValueError as exc:  # MuJoCo reports compile problems as ValueError
        raise SceneError(f"scene does not compile: {exc}") from exc
    return CompiledScene(model, index_scene(model, config), object_cloud(object_points, config.num_points), config)


def index_scene(model: mujoco.MjModel, config: SceneConfig) -> SceneIndex:
    def sensor_adr(name: str) -> int:
        return int(model.sensor_adr[model.sensor(name).id])

    body = model.body("object").id
    dynamic = int(model.body_jntnum[body]) > 0
    joint = int(model.body_jntadr[body]) if dynamic else -1
    return SceneIndex(
        qpos=robot_model.joint_qpos_indices(model),
        dof=robot_model.joint_dof_indices(model),
        actuator=robot_model.actuator_indices(model),
        keypoint_sites=robot_model.site_indices(model),
        table_geom=model.geom("table").id,
        obstacle_geoms=np.array([model.geom(f"obstacle_{k}").id for k in range(config.max_obstacles)], dtype=np.int64),
        object_mocap=int(model.body_mocapid[body]),
        arm_contact_sensors=np.array([sensor_adr(f"contact_{name}") for name in spec.ARM_LINK_NAMES]),
        hand_contact_sensor=sensor_adr("contact_hand"),
        object_body=int(body),
        object_qpos=int(model.jnt_qposadr[joint]) if dynamic else -1,
        object_dof=int(model.jnt_dofadr[joint]) if dynamic else -1,
    )


def table_geom_pose(table_pose: np.ndarray, config: SceneConfig) -> tuple[np.ndarray, np.ndarray]:
    """Table top-centre poses (N, 7) -> box geom centres (N, 3) and quaternions (N, 4)."""
    down = np.array([0.0, 0.0, -config.table_size[2] / 2.0])
    rot = quat_to_matrix(table_pose[:, 3:7])
    return table_pose[:, :3] + rot @ down, table_pose[:, 3:7]
