"""Retargeting one trajectory: N randomised attempts, the simulator in the loop.

For every attempt (all at once, one simulator scene each):

1. draw the attempt's randomisation from its seed and place the trajectory;
2. hold the first frame for a short lead-in so the robot can move from its
   start pose to the first hand pose (recorded, not judged);
3. at each 20 Hz step k solve Eq. 1 for a[k] from the joint state φ[k] the
   simulator reached, execute it with the object at its observed pose and
   read φ[k+1];
4. keep the attempt if its keypoint error stays under the threshold on every
   judged step and no arm link touched table, floor or obstacles.

The keypoint error of a step is the retargeting error, as in the paper: the
mean distance between the human keypoints x_h[k] and the robot keypoints of
the solved targets, f(a[k]). How closely the simulated robot then follows
(f(φ[k+1]) against x_h[k]) is reported beside it as the tracking error: the
PD controller's time constant (kd/kp = 0.1 s) makes it lag moving hands by a
few centimetres, which is the robot's behaviour, not a retargeting failure.

The episode stores, per step: proprio φ[k], action a[k], the object cloud at
frame k (robot base frame).
"""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass
from typing import Callable

import numpy as np

from hop_robot.embodiment import model as robot_model
from hop_robot.embodiment import spec
from hop_robot.geometry import transform_points
from hop_robot.kinematics import RobotKinematics

from ..hoi import HOITrajectory, gravity_alignment
from hop_robot.sim import build_scene, make_simulator
from ..store import Episode
from .attempts import AttemptDraws, attempt_seeds, draw_attempts, place_obstacles, redraw_placement, scene_params, select
from .batched_solver import BatchedSolver
from .checks import check_handedness
from .config import ACCEPTED, REJECTION_CAUSES, RetargetConfig  # noqa: F401 (causes re-exported)
from .keypoints import robot_keypoint_targets
from .nlopt_solver import NloptSolver
from .objective import RetargetObjective
from .placement import OFF_TABLE, UNDER_TABLE, UNREACHABLE, apply_to_points, apply_to_poses, placements
from .reach import ReachCheck


@dataclass
class RetargetResult:
    source: str
    episodes: list[Episode]  # accepted attempts only
    attempts: int
    max_error: np.ndarray  # (N,) per attempt, over judged steps (NaN where not simulated)
    mean_error: np.ndarray  # (N,)
    frame_errors: np.ndarray  # (N, T) mean keypoint error per judged step (NaN rows where not simulated)
    tracking_errors: np.ndarray  # (N, T) mean distance of the simulated robot's keypoints
    arm_contact: np.ndarray  # (N,) bool
    accepted: np.ndarray  # (N,) bool
    steps: int
    seconds_physics: float
    seconds_solving: float
    seconds_total: float
    solver_failures: int = 0
    cause: np.ndarray | None = None  # (N,) str: ACCEPTED or one of REJECTION_CAUSES
    simulated: np.ndarray | None = None  # (N,) bool: placed, checked and simulated
    keypoint_errors: np.ndarray | None = None  # (N, T, 9) float32 per-keypoint error per judged step (NaN where not simulated)
    placement_redraws: int = 0  # placements drawn again (off the table or out of reach) over all attempts
    lift_m: float = 0.0  # median lift (m) of the trajectory above its drawn clearance to keep the hand above the table

    def __post_init__(self) -> None:
        if self.simulated is None:
            self.simulated = np.ones(self.attempts, dtype=bool)
        if self.cause is None:
            self.cause = attempt_causes(self.accepted, self.max_error, self.arm_contact, np.full(self.attempts, "", object), np.inf)

    @property
    def attempts_simulated(self) -> int:
        return int(np.count_nonzero(self.simulated))

    @property
    def attempt_frames(self) -> int:
        """Attempt-frames simulated (placements refused before simulating cost no frames)."""
        return self.attempts_simulated * self.steps


def attempt_causes(
    accepted: np.ndarray,
    max_error: np.ndarray,
    arm_contact: np.ndarray,
    placement: np.ndarray,
    error_threshold: float,
    hand_contact: np.ndarray | None = None,
) -> np.ndarray:
    """(N,) str: why each attempt was kept or not, one cause each (``REJECTION_CAUSES`` order)."""
    cause = np.full(len(accepted), ACCEPTED, dtype=object)
    rejected = ~np.asarray(accepted, bool)
    with np.errstate(invalid="ignore"):
        over = ~(np.asarray(max_error) < error_threshold)
    hand = np.zeros(len(accepted), bool) if hand_contact is None else np.asarray(hand_contact, bool)
    rules = [
        (np.asarray(placement) != "", None),
        (over, "keypoint_error"),
        (np.asarray(arm_contact, bool), "arm_contact"),
        (hand, "hand_contact"),
    ]
    left = rejected.copy()
    for mask, name in rules:
        hit = left & mask
        cause[hit] = np.asarray(placement)[hit] if name is None else name
        left &= ~hit
    cause[left] = "keypoint_error"  # rejected for a reason outside the rules (none today)
    return cause


@dataclass
class Plan:
    """Where N attempts put a trajectory: what the robot is asked to follow."""

    seeds: np.ndarray  # (N,)
    draws: AttemptDraws
    targets: np.ndarray  # (N, L+T, 9, 3) robot keypoint targets, robot base frame
    object_pose: np.ndarray  # (N, L+T, 7)
    obstacles: np.ndarray  # (N, K, 10)
    lead: int  # lead-in steps (the first frame held)
    problem: np.ndarray | None = None  # (N,) str: "" or why the placement was refused (placement.PLACEMENT_PROBLEMS)
    redraws: np.ndarray | None = None  # (N,) int: the re-draw round each attempt's placement comes from
    lift: np.ndarray | None = None  # (N,) m raised above the drawn clearance to keep the hand above the table


class Retargeter:
    """Retargets trajectories; reuses the robot model and kinematics across videos."""

    def __init__(self, config: RetargetConfig = RetargetConfig(), threads: int = 0, robot_path: str | None = None):
        self.config = config
        self.threads = threads
        self.robot_path = robot_path
        model = robot_model.load_model(robot_path)
        self.kinematics = RobotKinematics(model)
        self.robot_hand_size = robot_model.hand_scale_reference(model)
        objective = RetargetObjective(self.kinematics, joint_smoothness(config), keypoint_weights(config))
        self.solver = BatchedSolver(objective) if config.solver == "batched" else NloptSolver(objective)
        a = config.attempt
        self.reach = ReachCheck(model, a.reach_tolerance, a.reach_period_s) if a.reach_check else None

    def run(
        self,
        traj: HOITrajectory,
        seed: int = 0,
        attempts: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        seeds: np.ndarray | None = None,
    ) -> RetargetResult:
        """Retarget a prepared trajectory (``hoi.prepare``: right hand, 20 Hz, no NaN).

        ``seeds`` replays given attempt seeds (e.g. one stored episode's)."""
        cfg = self.config
        if traj.hand_side != "right" or abs(traj.fps - spec.CONTROL_HZ) > 1e-9:
            raise ValueError(f"{traj.source}: prepare() the trajectory first (right hand at {spec.CONTROL_HZ} Hz)")
        check_right_hand(traj)
        if seeds is None:
            seeds = attempt_seeds(seed, traj.source, attempts or cfg.attempts)
        t_start = time.perf_counter()
        plan = self.plan(traj, seeds)
        n, steps, lead = len(seeds), plan.targets.shape[1], plan.lead
        rows = np.flatnonzero(plan.problem == "")  # the attempts simulated
        m = len(rows)
        sel = slice(None) if m == n else rows  # a slice writes faster than an index array
        targets, poses, draws = plan.targets[rows], plan.object_pose[rows], select(plan.draws, rows)

        proprio = np.empty((steps, m, spec.NUM_JOINTS), np.float32)
        action = np.empty_like(proprio)
        errors = np.full((n, steps), np.nan)
        tracking = np.full((n, steps), np.nan)
        kp_errors = np.full((n, steps, spec.NUM_KEYPOINTS), np.nan, np.float32)
        arm_contact = np.zeros(n, dtype=bool)
        hand_contact = np.zeros(n, dtype=bool)
        t_physics = t_solve = 0.0
        failures0 = getattr(self.solver, "failures", 0)
        clouds = np.zeros((m, steps, cfg.scene.num_points, 3))
        if m:
            scene = build_scene(traj.object_points, cfg.scene, self.robot_path)
            with closing(make_simulator(scene, m, nthread=self.threads)) as sim:
                t0 = time.perf_counter()
                obs = sim.reset(draws.init_qpos, poses[:, 0], scene_params(draws, plan.obstacles[rows]))
                t_physics += time.perf_counter() - t0
                clouds = transform_points(scene.cloud, poses.reshape(-1, 7)).reshape(m, steps, -1, 3)
                phi, a = obs.qpos, obs.qpos
                for k in range(steps):
                    t0 = time.perf_counter()
                    a, _ = self.solver.solve(targets[:, k], phi, init=a)
                    t1 = time.perf_counter()
                    obs = sim.step(a, poses[:, k])
                    t_physics += time.perf_counter() - t1
                    t_solve += t1 - t0
                    proprio[k], action[k] = phi, a
                    d = np.linalg.norm(self.kinematics.sites(a) - targets[:, k], axis=-1)
                    kp_errors[sel, k] = d
                    errors[sel, k] = d.mean(axis=1)
                    tracking[sel, k] = np.linalg.norm(obs.keypoints - targets[:, k], axis=-1).mean(axis=1)
                    phi = obs.qpos
                    if progress is not None:
                        progress(k + 1, steps)
            arm_contact[rows], hand_contact[rows] = obs.arm_contact, obs.hand_contact
        judged = errors[:, lead:]
        max_error = np.full(n, np.nan)
        mean_error = np.full(n, np.nan)
        if m:
            max_error[rows], mean_error[rows] = judged[rows].max(axis=1), judged[rows].mean(axis=1)
        accepted = np.zeros(n, dtype=bool)
        accepted[rows] = max_error[rows] < cfg.error_threshold
        if cfg.reject_arm_contact:
            accepted &= ~arm_contact
        if cfg.reject_hand_contact:
            accepted &= ~hand_contact
        cause = attempt_causes(
            accepted, max_error, arm_contact if cfg.reject_arm_contact else np.zeros(n, bool), plan.problem,
            cfg.error_threshold, hand_contact if cfg.reject_hand_contact else None,
        )  # fmt: skip
        local = {int(r): j for j, r in enumerate(rows)}
        episodes = [
            Episode(
                proprio=proprio[:, local[i]], action=action[:, local[i]], object_pc=clouds[local[i]].astype(np.float32),
                seed=int(seeds[i]), table_pose=plan.draws.table_pose[i], init_qpos=plan.draws.init_qpos[i],
                max_error=float(max_error[i]), mean_error=float(mean_error[i]), collision=bool(arm_contact[i]),
            )
            for i in np.flatnonzero(accepted)
        ]  # fmt: skip
        return RetargetResult(
            source=traj.source, episodes=episodes, attempts=n, max_error=max_error, mean_error=mean_error,
            frame_errors=judged, tracking_errors=tracking[:, lead:], arm_contact=arm_contact, accepted=accepted, steps=steps,
            seconds_physics=t_physics, seconds_solving=t_solve, seconds_total=time.perf_counter() - t_start,
            solver_failures=getattr(self.solver, "failures", 0) - failures0, cause=cause,
            simulated=plan.problem == "", keypoint_errors=kp_errors[:, lead:],
            placement_redraws=int(plan.redraws.sum()), lift_m=float(np.median(plan.lift)) if n else 0.0,
        )  # fmt: skip

    def plan(self, traj: HOITrajectory, seeds: np.ndarray) -> Plan:
        """Draw each attempt's randomisation and place the trajectory (no physics).

        A placement with the object off the table or the wrist path out of
        reach is drawn again (up to ``placement_redraws`` times); one that
        would put the hand under the table by more than the allowed lift is
        refused at once. ``Plan.problem`` says why an attempt is not simulated."""
        cfg = self.config
        n = len(seeds)
        targets_h = robot_keypoint_targets(traj.hand_joints, self.robot_hand_size)  # (T, 9, 3)
        draws = draw_attempts(seeds, cfg.attempt, cfg.scene)
        lowest = int(np.argmin(targets_h[:, 0] @ gravity_alignment(traj.gravity)[2]))  # where the wrist is lowest
        rot, trans = np.empty((n, 3, 3)), np.empty((n, 3))
        lift, redraws = np.zeros(n), np.zeros(n, dtype=int)
        problem = np.full(n, "", dtype=object)
        todo = np.arange(n)
        for round_ in range(cfg.attempt.placement_redraws + 1):
            if round_:
                redraw_placement(draws, todo, round_, cfg.attempt)
            placed = placements(
                targets_h, traj.object_pose, traj.object_points, traj.gravity, select(draws, todo), cfg.attempt,
                cfg.scene.table_size,
            )  # fmt: skip
            rot[todo], trans[todo], lift[todo], problem[todo], redraws[todo] = (
                placed.rot, placed.trans, placed.lift, placed.problem, round_,
            )  # fmt: skip
            check = todo[placed.problem == ""]
            if self.reach is not None and check.size:
                samples = self.reach.samples(traj.num_frames, lowest)
                path = apply_to_points(rot[check], trans[check], targets_h[samples])
                residual, arm_low = self.reach.check(path, draws.init_qpos[check])
                problem[check[residual > self.reach.tolerance]] = UNREACHABLE
                # the forearm and wrist kept clear of the table: the path lifted further where they would not be
                extra = np.maximum(0.0, draws.table_pose[check, 2] + cfg.attempt.arm_clearance - arm_low)
                trans[check, 2] += extra
                lift[check] += extra
                # a path lifted that way is checked again: it may leave the arm's reach
                raised = check[(extra > 0) & (residual <= self.reach.tolerance)]
                if raised.size:
                    path = apply_to_points(rot[raised], trans[raised], targets_h[samples])
                    again, _ = self.reach.check(path, draws.init_qpos[raised])
                    problem[raised[again > self.reach.tolerance]] = UNREACHABLE
                problem[check[(lift[check] > cfg.attempt.max_object_lift + 1e-12) & (problem[check] == "")]] = UNDER_TABLE
            todo = todo[np.isin(problem[todo], (OFF_TABLE, UNREACHABLE))]
            if not todo.size:
                break
        lead = int(round(cfg.lead_in_s * spec.CONTROL_HZ))
        frames = np.concatenate([np.zeros(lead, dtype=int), np.arange(traj.num_frames)])
        targets = apply_to_points(rot, trans, targets_h[frames])
        poses = apply_to_poses(rot, trans, traj.object_pose[frames].astype(np.float64))
        path_xy = np.concatenate([targets[..., 0:2].reshape(n, -1, 2), poses[..., 0:2]], axis=1)
        obstacles = place_obstacles(draws, path_xy, cfg.attempt, cfg.scene)
        return Plan(np.asarray(seeds), draws, targets, poses, obstacles, lead, problem, redraws, lift)


def joint_smoothness(config: RetargetConfig) -> np.ndarray:
    """λ of Eq. 1 per joint (23,): the arm's, then the hand's (``RetargetConfig``)."""
    lam = np.full(spec.NUM_JOINTS, float(config.smoothness))
    lam[spec.HAND] = config.hand_smoothness
    return lam


def keypoint_weights(config: RetargetConfig) -> np.ndarray | None:
    """w of Eq. 1 per keypoint (9,): the fingertips' ``fingertip_weight``, the others 1; None when all are 1."""
    if config.fingertip_weight == 1.0:
        return None
    w = np.ones(spec.NUM_KEYPOINTS)
    w[[i for i, name in enumerate(spec.KEYPOINT_SITES) if name.endswith("_tip")]] = config.fingertip_weight
    return w


def check_right_hand(traj: HOITrajectory) -> None:
    """Refuse a prepared (right-hand) trajectory whose joints form a left hand:
    a mislabelled file would otherwise be retargeted mirrored, silently."""
    check_handedness(traj, prepared=True)
