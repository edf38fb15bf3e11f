"""Per-attempt randomisation: everything an attempt varies, drawn from one seed.

An attempt's seed alone (with the same input file and configuration)
reproduces it exactly: its table pose, initial joint state, joint friction
and damping, the placement of the trajectory (yaw, offset, clearance) and its
obstacles all come from ``np.random.default_rng(seed)`` in a fixed order.
A placement that is refused before simulating (object off the table, wrist
path out of the arm's reach: ``placement.py``) is drawn again from
``np.random.default_rng([seed, round])``, round 1, 2, ...; which round an
attempt ends on depends only on its own draws and checks, so the seed alone
still reproduces it. Seeds are derived from (run seed, source id, attempt
index) by hashing, so they are stable across machines, runs and worker counts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from hop_robot.embodiment import spec
from hop_robot.geometry import yaw_quat

from hop_robot.sim import SceneConfig, SceneParams


@dataclass(frozen=True)
class AttemptConfig:
    """Ranges of the per-attempt randomisation (uniform unless said otherwise)."""

    table_xy_jitter: float = 0.05  # m, table centre moves this much in x and y
    table_z_jitter: float = 0.03  # m, table top height
    table_yaw_jitter: float = 0.10  # rad
    init_joint_noise: float = 0.05  # rad, std of the initial joint state around the default pose
    arm_friction_max: float = 1.0  # N·m, joint dry friction (the paper randomises joint friction)
    hand_friction_max: float = 0.01  # N·m (the Allegro's effort limit is 0.35 N·m)
    arm_damping_max: float = 2.0  # N·m·s/rad, added to the joint's own damping
    hand_damping_max: float = 0.01
    workspace_center: tuple[float, float] = (0.45, 0.0)  # m, where objects start, robot base frame
    workspace_half: tuple[float, float] = (0.08, 0.15)  # m, object start offset range in x, y
    yaw_jitter: float = np.pi / 3  # rad, around "the hand comes from the robot's side"
    clearance_range: tuple[float, float] = (0.002, 0.02)  # m, object's lowest point above the table at the start
    obstacle_probability: float = 0.3  # chance that an attempt gets obstacles at all
    max_obstacles: int = 2  # per attempt, at most SceneConfig.max_obstacles
    obstacle_half_range: tuple[float, float] = (0.02, 0.06)  # m, half-extent of a box obstacle
    obstacle_keep_out: float = 0.12  # m, obstacles stay this far (in x, y) from the placed hand and object path
    # placement checks (placement.py), before anything is simulated
    table_margin: float = 0.005  # m, every hand keypoint target stays this far above the table top, all along the path
    wrist_margin: float = 0.05  # m, ... and the palm keypoint (the wrist end of the palm: the flange around it) this far
    arm_clearance: float = 0.03  # m, the surface of the forearm and wrist (links 5-7's collision geometry) above the table at the path's IK poses: lifted further where lower
    max_object_lift: float = 0.10  # m, how far the object may start above the table (beyond the clearance) to keep the hand above it
    table_edge_margin: float = 0.02  # m, the object's start centre lies this far inside the table top's edges
    placement_redraws: int = 8  # a placement off the table or out of reach is drawn again up to this many times
    reach_check: bool = True  # check the wrist path by IK before simulating
    reach_tolerance: float = 0.025  # m, mean distance the IK leaves between the palm keypoints (palm, 3 finger bases) and the hand pose asked for
    reach_period_s: float = 1.0  # s between the wrist-path samples the IK checks (plus the first and last frame)


def attempt_seeds(run_seed: int, source: str, attempts: int) -> np.ndarray:
    """Stable 63-bit seeds, one per attempt of ``source``."""
    out = np.empty(attempts, dtype=np.int64)
    for i in range(attempts):
        digest = hashlib.blake2b(f"{run_seed}/{source}/{i}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF
    return out


@dataclass
class AttemptDraws:
    """The random draws of N attempts (everything but obstacles, which depend on the placed path)."""

    seeds: np.ndarray  # (N,) int64
    table_pose: np.ndarray  # (N, 7)
    init_qpos: np.ndarray  # (N, 23)
    joint_friction: np.ndarray  # (N, 23)
    joint_damping: np.ndarray  # (N, 23)
    yaw_jitter: np.ndarray  # (N,)
    offset: np.ndarray  # (N, 2) object start offset from the workspace centre
    clearance: np.ndarray  # (N,)
    obstacle_draws: np.ndarray  # (N, K, 7): use flag, x, y (in [-1, 1]), yaw, half-extents


def draw_attempts(seeds: np.ndarray, config: AttemptConfig, scene: SceneConfig) -> AttemptDraws:
    n = len(seeds)
    k = min(config.max_obstacles, scene.max_obstacles)
    out = AttemptDraws(
        seeds=np.asarray(seeds, dtype=np.int64),
        table_pose=np.tile(scene.default_table_pose(), (n, 1)),
        init_qpos=np.empty((n, spec.NUM_JOINTS)),
        joint_friction=np.empty((n, spec.NUM_JOINTS)),
        joint_damping=np.empty((n, spec.NUM_JOINTS)),
        yaw_jitter=np.empty(n),
        offset=np.empty((n, 2)),
        clearance=np.empty(n),
        obstacle_draws=np.zeros((n, k, 7)),
    )
    arm, hand = spec.NUM_ARM_JOINTS, spec.NUM_HAND_JOINTS
    for i, seed in enumerate(out.seeds):
        rng = np.random.default_rng(int(seed))
        out.table_pose[i, 0:2] += rng.uniform(-config.table_xy_jitter, config.table_xy_jitter, 2)
        out.table_pose[i, 2] += rng.uniform(-config.table_z_jitter, config.table_z_jitter)
        out.table_pose[i, 3:7] = yaw_quat(rng.uniform(-config.table_yaw_jitter, config.table_yaw_jitter))
        out.init_qpos[i] = spec.clip_to_limits(spec.DEFAULT_POSE + rng.normal(0.0, config.init_joint_noise, spec.NUM_JOINTS))
        out.joint_friction[i] = np.concatenate(
            [rng.uniform(0, config.arm_friction_max, arm), rng.uniform(0, config.hand_friction_max, hand)]
        )
        out.joint_damping[i] = np.concatenate(
            [rng.uniform(0, config.arm_damping_max, arm), rng.uniform(0, config.hand_damping_max, hand)]
        )
        out.yaw_jitter[i] = rng.uniform(-config.yaw_jitter, config.yaw_jitter)
        out.offset[i] = rng.uniform(-1.0, 1.0, 2) * config.workspace_half
        out.clearance[i] = rng.uniform(*config.clearance_range)
        if k:
            use = rng.uniform() < config.obstacle_probability
            draws = rng.uniform(size=(k, 7))
            draws[:, 0] = use & (np.arange(k) < rng.integers(1, k + 1))
            draws[:, 1:3] = draws[:, 1:3] * 2.0 - 1.0
            draws[:, 3] = (draws[:, 3] * 2.0 - 1.0) * np.pi
            lo, hi = config.obstacle_half_range
            draws[:, 4:7] = lo + draws[:, 4:7] * (hi - lo)
            out.obstacle_draws[i] = draws
    return out


def redraw_placement(draws: AttemptDraws, rows: np.ndarray, round_: int, config: AttemptConfig) -> None:
    """Draw the placement (yaw jitter, offset, clearance) of attempts ``rows``
    again, in place, from ``default_rng([seed, round_])`` (``round_`` >= 1)."""
    if round_ < 1:
        raise ValueError(f"a re-draw round is >= 1, got {round_}")
    for i in np.asarray(rows, dtype=int):
        rng = np.random.default_rng([int(draws.seeds[i]), int(round_)])
        draws.yaw_jitter[i] = rng.uniform(-config.yaw_jitter, config.yaw_jitter)
        draws.offset[i] = rng.uniform(-1.0, 1.0, 2) * config.workspace_half
        draws.clearance[i] = rng.uniform(*config.clearance_range)


def select(draws: AttemptDraws, rows: np.ndarray) -> AttemptDraws:
    """The draws of attempts ``rows`` only (copies)."""
    return AttemptDraws(**{f: np.array(getattr(draws, f)[rows]) for f in AttemptDraws.__dataclass_fields__})


def place_obstacles(
    draws: AttemptDraws, path_xy: np.ndarray, config: AttemptConfig, scene: SceneConfig
) -> np.ndarray:
    """Obstacle slots (N, K_scene, 10) on each attempt's table, kept out of the
    placed hand/object path (N, T', 2). A drawn obstacle that would block the
    path is dropped, not moved (the draw stays the seed's)."""
    n = len(draws.seeds)
    out = np.zeros((n, scene.max_obstacles, 10))
    half_table = np.asarray(scene.table_size[:2]) / 2.0
    for i in range(n):
        for slot, d in enumerate(draws.obstacle_draws[i]):
            if d[0] < 0.5:
                continue
            half = d[4:7]
            local = d[1:3] * (half_table - half[:2])
            yaw_table = 2.0 * np.arctan2(draws.table_pose[i, 6], draws.table_pose[i, 3])
            c, s = np.cos(yaw_table), np.sin(yaw_table)
            xy = draws.table_pose[i, 0:2] + [c * local[0] - s * local[1], s * local[0] + c * local[1]]
            if np.min(np.linalg.norm(path_xy[i] - xy, axis=1)) < config.obstacle_keep_out + np.linalg.norm(half[:2]):
                continue
            z = draws.table_pose[i, 2] + half[2]
            out[i, slot] = [xy[0], xy[1], z, *yaw_quat(yaw_table + d[3]), *half]
    return out


def scene_params(draws: AttemptDraws, obstacles: np.ndarray) -> SceneParams:
    return SceneParams(
        table_pose=draws.table_pose,
        obstacles=obstacles,
        joint_friction=draws.joint_friction,
        joint_damping=draws.joint_damping,
    )
