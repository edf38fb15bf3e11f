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

from ..hoi import HOITrajectory
from hop_robot.sim import build_scene, make_simulator
from ..store import Episode
from .attempts import AttemptDraws, attempt_seeds, draw_attempts, place_obstacles, scene_params
from .batched_solver import BatchedSolver
from .config import RetargetConfig
from .keypoints import robot_keypoint_targets
from .nlopt_solver import NloptSolver
from .objective import RetargetObjective
from .placement import apply_to_points, apply_to_poses, placements


@dataclass
class RetargetResult:
    source: str
    episodes: list[Episode]  # accepted attempts only
    attempts: int
    max_error: np.ndarray  # (N,) per attempt, over judged steps
    mean_error: np.ndarray  # (N,)
    frame_errors: np.ndarray  # (N, T) mean keypoint error per judged step
    tracking_errors: np.ndarray  # (N, T) mean distance of the simulated robot's keypoints
    arm_contact: np.ndarray  # (N,) bool
    accepted: np.ndarray  # (N,) bool
    steps: int
    seconds_physics: float
    seconds_solving: float
    seconds_total: float
    solver_failures: int = 0

    @property
    def attempt_frames(self) -> int:
        return self.attempts * self.steps


@dataclass
class Plan:
    """Where N attempts put a trajectory: what the robot is asked to follow."""

    seeds: np.ndarray  # (N,)
    draws: AttemptDraws
    targets: np.ndarray  # (N, L+T, 9, 3) robot keypoint targets, robot base frame
    object_pose: np.ndarray  # (N, L+T, 7)
    obstacles: np.ndarray  # (N, K, 10)
    lead: int  # lead-in steps (the first frame held)


class Retargeter:
    """Retargets trajectories; reuses the robot model and kinematics across videos."""

    def __init__(self, config: RetargetConfig = RetargetConfig(), threads: int = 0, robot_path: str | None = None):
        self.config = config
        self.threads = threads
        self.robot_path = robot_path
        model = robot_model.load_model(robot_path)
        self.kinematics = RobotKinematics(model)
        self.robot_hand_size = robot_model.hand_scale_reference(model)
        objective = RetargetObjective(self.kinematics, config.smoothness)
        self.solver = BatchedSolver(objective) if config.solver == "batched" else NloptSolver(objective)

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
        if seeds is None:
            seeds = attempt_seeds(seed, traj.source, attempts or cfg.attempts)
        t_start = time.perf_counter()
        plan = self.plan(traj, seeds)
        n, steps, lead = len(seeds), plan.targets.shape[1], plan.lead
        targets, poses, draws = plan.targets, plan.object_pose, plan.draws

        proprio = np.empty((steps, n, spec.NUM_JOINTS), np.float32)
        action = np.empty_like(proprio)
        errors = np.empty((n, steps))
        tracking = np.empty((n, steps))
        t_physics = t_solve = 0.0
        scene = build_scene(traj.object_points, cfg.scene, self.robot_path)
        with closing(make_simulator(scene, n, nthread=self.threads)) as sim:
            t0 = time.perf_counter()
            obs = sim.reset(draws.init_qpos, poses[:, 0], scene_params(draws, plan.obstacles))
            t_physics += time.perf_counter() - t0
            clouds = transform_points(scene.cloud, poses.reshape(-1, 7)).reshape(n, steps, -1, 3)
            phi, a = obs.qpos, obs.qpos
            failures0 = getattr(self.solver, "failures", 0)
            for k in range(steps):
                t0 = time.perf_counter()
                a, _ = self.solver.solve(targets[:, k], phi, init=a)
                t1 = time.perf_counter()
                obs = sim.step(a, poses[:, k])
                t_physics += time.perf_counter() - t1
                t_solve += t1 - t0
                proprio[k], action[k] = phi, a
                errors[:, k] = np.linalg.norm(self.kinematics.sites(a) - targets[:, k], axis=-1).mean(axis=1)
                tracking[:, k] = np.linalg.norm(obs.keypoints - targets[:, k], axis=-1).mean(axis=1)
                phi = obs.qpos
                if progress is not None:
                    progress(k + 1, steps)
        judged = errors[:, lead:]
        max_error, mean_error = judged.max(axis=1), judged.mean(axis=1)
        accepted = max_error < cfg.error_threshold
        if cfg.reject_arm_contact:
            accepted &= ~obs.arm_contact
        if cfg.reject_hand_contact:
            accepted &= ~obs.hand_contact
        episodes = [
            Episode(
                proprio=proprio[:, i], action=action[:, i], object_pc=clouds[i].astype(np.float32),
                seed=int(seeds[i]), table_pose=draws.table_pose[i], init_qpos=draws.init_qpos[i],
                max_error=float(max_error[i]), mean_error=float(mean_error[i]), collision=bool(obs.arm_contact[i]),
            )
            for i in np.flatnonzero(accepted)
        ]  # fmt: skip
        return RetargetResult(
            source=traj.source, episodes=episodes, attempts=n, max_error=max_error, mean_error=mean_error,
            frame_errors=judged, tracking_errors=tracking[:, lead:], arm_contact=obs.arm_contact.copy(), accepted=accepted, steps=steps,
            seconds_physics=t_physics, seconds_solving=t_solve, seconds_total=time.perf_counter() - t_start,
            solver_failures=getattr(self.solver, "failures", 0) - failures0,
        )  # fmt: skip

    def plan(self, traj: HOITrajectory, seeds: np.ndarray) -> Plan:
        """Draw each attempt's randomisation and place the trajectory (no physics)."""
        cfg = self.config
        n = len(seeds)
        targets_h = robot_keypoint_targets(traj.hand_joints, self.robot_hand_size)  # (T, 9, 3)
        draws = draw_attempts(seeds, cfg.attempt, cfg.scene)
        rot, trans = placements(targets_h, traj.object_pose, traj.object_points, traj.gravity, draws, cfg.attempt)
        lead = int(round(cfg.lead_in_s * spec.CONTROL_HZ))
        frames = np.concatenate([np.zeros(lead, dtype=int), np.arange(traj.num_frames)])
        targets = apply_to_points(rot, trans, targets_h[frames])
        poses = apply_to_poses(rot, trans, traj.object_pose[frames].astype(np.float64))
        path_xy = np.concatenate([targets[..., 0:2].reshape(n, -1, 2), poses[..., 0:2]], axis=1)
        obstacles = place_obstacles(draws, path_xy, cfg.attempt, cfg.scene)
        return Plan(np.asarray(seeds), draws, targets, poses, obstacles, lead)
