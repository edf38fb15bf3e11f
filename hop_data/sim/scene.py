"""Scene construction: robot + floor + table + obstacle slots + kinematic object.

The scene is composed from the robot's own MJCF (``hop_robot.embodiment``,
which owns every robot fact) with ``mujoco.MjSpec``; nothing here repeats a
robot number. Per-scene randomisation (table pose, obstacles, joint friction)
is applied later as per-simulation model fields, so one compiled model serves
all attempts of a video.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from hop_robot.embodiment import model as robot_model
from hop_robot.embodiment import spec
from hop_robot.geometry import farthest_point_sample, quat_to_matrix

from .protocol import SceneConfig

# Environment geoms collide with every robot geom that collides with anything.
_ALL_BITS = 0x7FFFFFFF
_PARKED_Z = -50.0  # unused obstacle slots sit far below the floor


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
    object_mocap: int
    arm_contact_sensors: np.ndarray  # sensordata addresses, one per arm link
    hand_contact_sensor: int  # sensordata address of the hand subtree's sensor


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
    (collision shape: convex hull of its points) on a mocap body."""
    scene = robot_model.load_spec(robot_path)
    scene.modelname = "hop_scene"
    scene.option.timestep = 1.0 / spec.SIM_HZ
    scene.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
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
            pos=[0.0, 0.0, _PARKED_Z - k], rgba=[0.55, 0.2, 0.2, 1.0],
            contype=_ALL_BITS, conaffinity=_ALL_BITS,
        )

    cloud = _checked_points(object_points)
    extent = cloud.max(axis=0) - cloud.min(axis=0)
    if np.sort(extent)[0] < 1e-4:
        # A flat object (a sheet of paper) has no hull volume: thicken it to 0.1 mm.
        cloud = np.concatenate([cloud, cloud + np.where(extent < 1e-4, 1e-4, 0.0)])
    scene.add_mesh(name="object_hull", uservert=cloud.ravel().tolist(), inertia=mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL)
    obj = world.add_body(name="object", mocap=True, pos=[0.0, 0.0, _PARKED_Z])
    obj_bits = _ALL_BITS if config.object_collision else 0
    obj.add_geom(
        name="object_geom", type=mujoco.mjtGeom.mjGEOM_MESH, meshname="object_hull",
        rgba=[0.2, 0.55, 0.85, 1.0], contype=obj_bits, conaffinity=obj_bits, density=100.0,
    )
    scene.add_exclude(bodyname1="world", bodyname2="object")

    # Contact sensors: 'found' counts contacts between a robot part and the
    # world body's geoms (floor, table, obstacles), computed at every substep.
    sensor_args = dict(type=mujoco.mjtSensor.mjSENS_CONTACT, reftype=mujoco.mjtObj.mjOBJ_BODY, refname="world", intprm=[1, 0, 1])
    for name in ["link1", "link2", "link3", "link4", "link5", "link6", "link7"]:
        scene.add_sensor(name=f"contact_{name}", objtype=mujoco.mjtObj.mjOBJ_BODY, objname=name, **sensor_args)
    scene.add_sensor(name="contact_hand", objtype=mujoco.mjtObj.mjOBJ_XBODY, objname=_hand_root(scene), **sensor_args)
    if config.contact_margin > 0:
        for geom in scene.geoms:
            if geom.name in ("floor", "table") or geom.name.startswith("obstacle_"):
                geom.margin = config.contact_margin
    return scene


def compile_scene(
    object_points: np.ndarray,
    config: SceneConfig = SceneConfig(),
    robot_path: str | None = None,
) -> tuple[mujoco.MjModel, SceneIndex]:
    """Compile the scene and look up the indices the simulator needs."""
    scene = build_scene_spec(object_points, config, robot_path)
    try:
        model = scene.compile()
    except ValueError as exc:  # MuJoCo reports compile problems as ValueError
        raise SceneError(f"scene does not compile: {exc}") from exc
    return model, index_scene(model, config)


def index_scene(model: mujoco.MjModel, config: SceneConfig) -> SceneIndex:
    def sensor_adr(name: str) -> int:
        return int(model.sensor_adr[model.sensor(name).id])

    return SceneIndex(
        qpos=robot_model.joint_qpos_indices(model),
        dof=np.array([model.jnt_dofadr[model.joint(n).id] for n in spec.JOINT_NAMES]),
        actuator=robot_model.actuator_indices(model),
        keypoint_sites=robot_model.site_indices(model),
        table_geom=model.geom("table").id,
        obstacle_geoms=np.array([model.geom(f"obstacle_{k}").id for k in range(config.max_obstacles)], dtype=np.int64),
        object_mocap=int(model.body_mocapid[model.body("object").id]),
        arm_contact_sensors=np.array([sensor_adr(f"contact_link{i}") for i in range(1, 8)]),
        hand_contact_sensor=sensor_adr("contact_hand"),
    )


def table_geom_pose(table_pose: np.ndarray, config: SceneConfig) -> tuple[np.ndarray, np.ndarray]:
    """Table top-centre poses (N, 7) -> box geom centres (N, 3) and quaternions (N, 4)."""
    down = np.array([0.0, 0.0, -config.table_size[2] / 2.0])
    rot = quat_to_matrix(table_pose[:, 3:7])
    return table_pose[:, :3] + rot @ down, table_pose[:, 3:7]
