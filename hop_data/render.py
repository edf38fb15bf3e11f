"""Render a stored episode to a video: the robot replaying it, the object's
point cloud as the policy sees it, and (given the source file) the human
keypoint targets it was retargeted to, drawn beside the robot's own keypoints.

Offscreen MuJoCo rendering: ``MUJOCO_GL=osmesa`` (Debian's libosmesa6) on a
machine without a display, ``egl`` on a GPU machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "osmesa")

import mujoco  # noqa: E402  (after MUJOCO_GL is chosen)

from hop_robot.embodiment import spec  # noqa: E402
from hop_robot.geometry import quat_to_matrix  # noqa: E402

from hop_robot.sim import SceneConfig  # noqa: E402
from hop_robot.sim.scene import compile_scene, table_geom_pose  # noqa: E402
from .store import TrajectoryStore  # noqa: E402

_OBJECT_RGBA = np.array([0.2, 0.55, 0.95, 1.0], np.float32)
_HUMAN_RGBA = np.array([0.1, 0.85, 0.2, 1.0], np.float32)
_ROBOT_RGBA = np.array([0.95, 0.25, 0.2, 1.0], np.float32)
_OBSTACLE_RGBA = np.array([0.55, 0.2, 0.2, 0.8], np.float32)


def find_source(hoi_path: str | os.PathLike, source: str) -> Path | None:
    """The ``*.hoi.npz`` file whose ``source`` key is ``source``: ``hoi_path``
    itself, or the first match below it if it is a directory."""
    from . import hoi

    path = Path(hoi_path)
    candidates = [path] if path.is_file() else sorted(path.rglob("*.hoi.npz"))
    for candidate in candidates:
        try:
            with np.load(candidate, allow_pickle=False) as data:
                if str(data["source"]) == source:
                    return candidate
        except (OSError, KeyError, ValueError):
            continue
        except hoi.HOIFormatError:
            continue
    return None


def _add_sphere(scene: mujoco.MjvScene, pos: np.ndarray, radius: float, rgba: np.ndarray) -> None:
    if scene.ngeom >= scene.maxgeom:
        return
    mujoco.mjv_initGeom(
        scene.geoms[scene.ngeom], mujoco.mjtGeom.mjGEOM_SPHERE, np.array([radius, 0, 0]),
        pos.astype(np.float64), np.eye(3).ravel(), rgba,
    )  # fmt: skip
    scene.ngeom += 1


def _add_box(scene: mujoco.MjvScene, slot: np.ndarray, rgba: np.ndarray) -> None:
    if scene.ngeom >= scene.maxgeom:
        return
    mujoco.mjv_initGeom(
        scene.geoms[scene.ngeom], mujoco.mjtGeom.mjGEOM_BOX, slot[7:10].astype(np.float64),
        slot[0:3].astype(np.float64), quat_to_matrix(slot[3:7]).ravel(), rgba,
    )  # fmt: skip
    scene.ngeom += 1


def render_episode(
    store_url: str,
    episode: int,
    out: str | os.PathLike,
    hoi_path: str | os.PathLike | None = None,
    width: int = 512,
    height: int = 384,
    fps: int = spec.CONTROL_HZ,
) -> dict:
    """Write ``out`` (.mp4 or .gif) and return a summary of what was drawn."""
    import imageio.v2 as imageio

    frames = episode_frames(store_url, episode, hoi_path, width, height)
    image, summary = next(frames)  # a bad episode or source file fails here, before the file is made
    count = 0
    with imageio.get_writer(str(out), fps=fps) as video:
        video.append_data(image)
        count += 1
        for image, _ in frames:
            video.append_data(image)
            count += 1
    return {"out": str(out), **summary, "frames": count}


def episode_frames(
    store_url: str,
    episode: int,
    hoi_path: str | os.PathLike | None = None,
    width: int = 512,
    height: int = 384,
    steps: list[int] | None = None,
):
    """Yield (RGB image (H, W, 3) uint8, summary) for the episode's steps
    (all, or ``steps``): the robot, the object cloud, its keypoints (red) and,
    given the source file, the human keypoint targets (green) and obstacles."""
    reader = TrajectoryStore.open(store_url, "r").reader()
    if not 0 <= episode < reader.num_episodes:
        raise IndexError(f"{store_url}: episode {episode} does not exist (the store has {reader.num_episodes})")
    ep = reader.episode(episode)
    proprio, clouds = np.asarray(ep["proprio"]), np.asarray(ep["object_pc"])
    source, seed = str(ep["source"]), int(ep["seed"])

    targets = obstacles = None
    if hoi_path is not None:
        from . import hoi
        from .retarget.engine import RetargetConfig, Retargeter

        found = find_source(hoi_path, source)
        if found is None:
            raise FileNotFoundError(f"no *.hoi.npz with source {source!r} under {hoi_path}")
        plan = Retargeter(RetargetConfig()).plan(hoi.prepare(hoi.load(found)), np.array([seed]))
        targets, obstacles = plan.targets[0], plan.obstacles[0]
        if len(targets) != len(proprio):
            raise ValueError(f"{found}: gives {len(targets)} steps, the episode has {len(proprio)} (other settings?)")
    summary = {
        "episode": episode,
        "source": source,
        "seed": seed,
        "steps": len(proprio),
        "human_keypoints": targets is not None,
        "max_error_m": float(ep["max_error"]),
    }

    config = SceneConfig()
    model, index = compile_scene(np.random.default_rng(0).uniform(-0.01, 0.01, (8, 3)), config)
    pos, quat = table_geom_pose(np.asarray(ep["table_pose"], dtype=np.float64)[None], config)
    model.geom_pos[index.table_geom], model.geom_quat[index.table_geom] = pos[0], quat[0]
    model.vis.headlight.ambient[:] = 0.35
    model.vis.headlight.diffuse[:] = 0.55
    data = mujoco.MjData(model)
    camera = mujoco.MjvCamera()  # from the front-left, on the object's path
    camera.lookat[:] = clouds.reshape(-1, 3).mean(axis=0) + [0.0, 0.0, 0.08]
    camera.distance, camera.azimuth, camera.elevation = 1.0, 150.0, -22.0

    renderer = mujoco.Renderer(model, height, width)
    # software GL: shadows and reflections cost most of a frame and say little here
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
    try:
        for k in range(len(proprio)) if steps is None else steps:
            data.qpos[index.qpos] = proprio[k]
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera)
            scene = renderer.scene
            for point in clouds[k]:
                _add_sphere(scene, point, 0.004, _OBJECT_RGBA)
            for site in data.site_xpos[index.keypoint_sites]:
                _add_sphere(scene, site, 0.008, _ROBOT_RGBA)
            if targets is not None:
                for point in targets[k]:
                    _add_sphere(scene, point, 0.008, _HUMAN_RGBA)
                for slot in obstacles:
                    if np.all(slot[7:10] > 0):
                        _add_box(scene, slot, _OBSTACLE_RGBA)
            yield renderer.render().copy(), summary
    finally:
        renderer.close()
