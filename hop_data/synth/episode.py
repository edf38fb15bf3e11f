"""One synthetic video, step by step (``make_episode``), and the corpus
(``synthesize``): draws -> grasp -> timeline -> rest pose -> object path ->
wrist path -> fingers -> object points -> (mirror) -> camera -> noise."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hop_data import hoi
from hop_robot.geometry import matrix_to_quat, quat_to_matrix, yaw_quat

from . import capture, grasp, motion
from .hand import Person
from .objects import SHAPE_PROBABILITIES, SHAPES, ObjectShape, sample_shape

NUM_OBJECT_POINTS = 512
FPS_CHOICES = (24.0, 30.0, 60.0)
FPS_PROBABILITIES = (0.2, 0.6, 0.2)
LEFT_HAND_PROBABILITY = 0.2


@dataclass
class SynthVideo:
    """A generated video: the trajectory as stored, plus the ground truth behind it."""

    traj: hoi.HOITrajectory
    shape: str
    object_shape: ObjectShape
    grasp: str  # "side" or "top"
    hand_scale: float
    phases: dict[str, tuple[float, float]]  # seconds: approach, preshape, grasp, lift, move, place, release, retreat
    hand_joints_table: np.ndarray  # (T, 21, 3) clean joints, z-up table frame (table top z = 0)
    object_pose_table: np.ndarray  # (T, 7) clean object pose, table frame
    camera_from_table: np.ndarray  # (4, 4): x_camera = R x_table + t
    extra: dict = field(default_factory=dict)


def _choices(rng: np.random.Generator, hand_side: str | None, shape: str | None) -> tuple[float, bool, str]:
    """(fps, left hand, object kind): drawn, then forced where given."""
    fps = float(rng.choice(FPS_CHOICES, p=FPS_PROBABILITIES))
    left = rng.uniform() < LEFT_HAND_PROBABILITY
    kind = str(rng.choice(SHAPES, p=SHAPE_PROBABILITIES))
    if hand_side is not None:
        if hand_side not in hoi.HAND_SIDES:
            raise ValueError(f"hand_side must be one of {hoi.HAND_SIDES}, got {hand_side!r}")
        left = hand_side == "left"
    if shape is not None:
        kind = shape
    return fps, left, kind


def _mirror(joints: np.ndarray, pose: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The table-frame scene mirrored (y -> -y): a left hand with genuine
    left-hand geometry, reaching from the left."""
    M = np.diag([1.0, -1.0, 1.0])
    R_o = M @ quat_to_matrix(pose[:, 3:]) @ M
    return joints @ M, np.concatenate([pose[:, :3] @ M, matrix_to_quat(R_o)], axis=1), points @ M


def make_episode(
    rng: np.random.Generator,
    index: int,
    seed: int | None = None,
    *,
    hand_side: str | None = None,
    shape: str | None = None,
) -> SynthVideo:
    """Generate one synthetic video from ``rng`` (see the package notes).

    ``hand_side`` / ``shape`` force a choice (tests, demos); otherwise they are
    drawn. The source id is ``synth/<seed>/<index:04d>``. The steps draw from
    ``rng`` in this order; changing it changes every video."""
    fps, left, kind = _choices(rng, hand_side, shape)
    obj = sample_shape(rng, kind)
    person = Person.sample(rng)
    g = grasp.plan(rng, obj, person)
    tl = motion.timeline(rng, fps)
    R_rest, p_rest = motion.rest_pose(rng, person, g)
    obj_path = motion.object_path(rng, tl, obj, person, g, p_rest)
    p_wrist, R_wrist = motion.wrist_path(rng, tl, g, obj_path, R_rest, p_rest)
    joints = motion.hand_joints(tl, person, g, p_wrist, R_wrist)
    pose = np.concatenate([obj_path.p, yaw_quat(obj_path.yaw)], axis=1)
    points = obj.sample_surface(rng, NUM_OBJECT_POINTS)
    if left:
        joints, pose, points = _mirror(joints, pose, points)
    R_c, t_c = capture.place_camera(rng, joints, pose)
    hand_cam, object_pose = capture.observe(rng, tl, joints, pose, R_c, t_c)
    gravity = R_c @ np.array([0.0, 0.0, -1.0])

    source = f"synth/{seed}/{index:04d}" if seed is not None else f"synth/{index:04d}"
    traj = hoi.HOITrajectory(
        hand_joints=hand_cam.astype(np.float32),
        object_pose=object_pose.astype(np.float32),
        object_points=points.astype(np.float32),
        fps=fps,
        gravity=gravity.astype(np.float32),
        hand_side="left" if left else "right",
        source=source,
    )
    camera_from_table = np.eye(4)
    camera_from_table[:3, :3], camera_from_table[:3, 3] = R_c, t_c
    return SynthVideo(
        traj=hoi.validate(traj),
        shape=kind,
        object_shape=obj,
        grasp=g.kind,
        hand_scale=person.model.scale,
        phases=tl.phases(),
        hand_joints_table=joints,
        object_pose_table=pose,
        camera_from_table=camera_from_table,
        extra={"lift_m": obj_path.lift, "grip_m": g.grip, "aperture_m": g.aperture},
    )


def make_trajectory(rng: np.random.Generator, index: int, seed: int | None = None) -> hoi.HOITrajectory:
    """One synthetic video as a format-1 trajectory (``make_episode(...).traj``)."""
    return make_episode(rng, index, seed).traj


def video_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of video ``index`` of corpus ``seed``: independent of the corpus size."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    return np.random.default_rng([int(seed), int(index)])


def synthesize(out_dir: str | os.PathLike, videos: int, seed: int) -> list[Path]:
    """Write ``videos`` synthetic trajectories to ``out_dir`` as ``<index:04d>.hoi.npz``
    (source ids ``synth/<seed>/<index:04d>``); returns their paths in index order.
    Deterministic: the same seed gives the same bytes."""
    if videos < 0:
        raise ValueError(f"videos must be >= 0, got {videos}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(videos):
        traj = make_trajectory(video_rng(seed, index), index, seed)
        paths.append(hoi.save(out / f"{index:04d}.hoi.npz", traj))
    return paths
