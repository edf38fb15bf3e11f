"""Grasp & Lift and Grasp & Throw (REFERENCE.md "Task details", after the public HOP code).

Both share one reward structure, per step:

- approach (before the lift): 50 × the decrease of the fingertips' mean
  distance to the object's surface (its cloud);
- lift: 20 × clip(z + 0.02 − z0, 0, 0.5), z the object's height, z0 its
  height at rest (as REFERENCE.md writes it: a small constant is paid while
  the object rests);
- lift bonus: 300, once, when the object first rises 0.10 m;
- goal (after the lift): 200 × the decrease of the object's distance to the goal;
- near goal: 1000 / 50 = 20 per step while within the success radius;
- joint speed: −(0.003 Σ|arm joint velocity| + 0.0003 Σ|hand joint velocity|).

Lift: goal 0.45 m above the table over the object's start; success when the
object's centre stays within 0.1125 m of it for 50 consecutive steps.
Throw: goal 0.10 m above the basket's rim (basket at (0.37, 0, 0.10));
success when the object lies in the basket for 10 consecutive steps; the
episode fails when the object falls 0.06 m below the table top. Both fail
when the object leaves the table's region.
"""

from __future__ import annotations

import abc

import numpy as np

from hop_robot.embodiment import spec
from hop_robot.sim import SceneConfig
from hop_robot.sim.fixtures import Basket

from .base import TIP_SLOTS, TaskConfig, TaskEnv, TaskVectorEnv

__all__ = ["GraspLiftEnv", "GraspLiftVectorEnv", "GraspThrowEnv", "GraspThrowVectorEnv", "REWARD"]

# Reward weights (REFERENCE.md, from the public HOP code).
REWARD = {
    "approach": 50.0,
    "lift": 20.0,
    "lift_clip": 0.5,
    "lift_offset": 0.02,
    "lift_bonus": 300.0,
    "lift_height": 0.10,
    "goal": 200.0,
    "near_goal": 1000.0 / 50.0,
    "arm_speed": 0.003,
    "hand_speed": 0.0003,
}
GOAL_HEIGHT = 0.45  # m above the table top (paper's code)
SUCCESS_RADIUS = 0.1125  # m
LIFT_HOLD_STEPS = 50
THROW_HOLD_STEPS = 10
FALL_DEPTH = 0.06  # m below the table top: the object fell


def fingertip_distance(keypoints: np.ndarray, cloud: np.ndarray) -> np.ndarray:
    """(N,) mean over the four fingertips of the distance to the nearest cloud point."""
    tips = keypoints[:, TIP_SLOTS]  # (N, 4, 3)
    cloud = np.asarray(cloud, dtype=np.float64)
    # |t - p|² = |t|² + |p|² - 2 t·p, as one batched matrix product (N, 4, P)
    d2 = (tips**2).sum(-1)[:, :, None] + (cloud**2).sum(-1)[:, None, :] - 2.0 * tips @ cloud.transpose(0, 2, 1)
    return np.sqrt(np.maximum(d2.min(axis=2), 0.0)).mean(axis=1)


class _GraspVectorEnv(TaskVectorEnv):
    state_dim = 3 + 3 + 2  # goal, object-to-goal, lifted flag, near-goal progress
    hold_steps = LIFT_HOLD_STEPS

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, config: TaskConfig | None = None, **overrides):
        super().__init__(num_envs, render_mode, config, **overrides)
        n = self.num_envs
        self.goal = np.zeros((n, 3))
        self.z0 = np.zeros(n)
        self.lifted = np.zeros(n, dtype=bool)
        self.hold = np.zeros(n, dtype=np.int64)
        self._prev_tip = np.zeros(n)
        self._prev_goal = np.zeros(n)
        table = SceneConfig()
        self._table_lo = np.array([table.table_distance - table.table_size[0] / 2, -table.table_size[1] / 2])
        self._table_hi = np.array([table.table_distance + table.table_size[0] / 2, table.table_size[1] / 2])

    milestone = "lifted"  # the object rose REWARD["lift_height"] above its rest (the lift bonus was paid)

    def _milestone(self) -> np.ndarray:
        return self.lifted

    @abc.abstractmethod
    def _goal_for(self, ids: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """(len(ids), 3) the goal of the envs ``ids`` whose object starts at ``pose (len(ids), 7)``."""

    def _task_reset(self, ids: np.ndarray) -> None:
        obs = self._obs
        pose = obs.object_pose[ids]
        self.z0[ids] = self.rest_height[ids]
        self.goal[ids] = self._goal_for(ids, pose)
        self.lifted[ids] = False
        self.hold[ids] = 0
        self._prev_tip[ids] = fingertip_distance(obs.keypoints[ids], obs.object_pc[ids])
        self._prev_goal[ids] = np.linalg.norm(pose[:, :3] - self.goal[ids], axis=1)

    def _in_goal(self, obs, d_goal: np.ndarray) -> np.ndarray:
        return d_goal < SUCCESS_RADIUS

    def _reach_distance(self, obs) -> np.ndarray:
        return self._prev_tip  # this step's fingertip distance, set by ``_task_step``

    def _task_step(self, obs):
        r = REWARD
        pos = obs.object_pose[:, :3]
        d_tip = fingertip_distance(obs.keypoints, obs.object_pc)
        d_goal = np.linalg.norm(pos - self.goal, axis=1)
        height = pos[:, 2] - self.z0
        before = ~self.lifted
        terms = {
            "approach": r["approach"] * (self._prev_tip - d_tip) * before,
            "lift": r["lift"] * np.clip(height + r["lift_offset"], 0.0, r["lift_clip"]),
        }
        newly = before & (height > r["lift_height"])
        terms["lift_bonus"] = r["lift_bonus"] * newly
        self.lifted |= newly
        terms["goal"] = r["goal"] * (self._prev_goal - d_goal) * self.lifted
        near = self._in_goal(obs, d_goal)
        terms["near_goal"] = r["near_goal"] * near
        vel = np.abs(obs.qvel)
        terms["joint_speed"] = -(r["arm_speed"] * vel[:, spec.ARM].sum(1) + r["hand_speed"] * vel[:, spec.HAND].sum(1))
        self.hold = np.where(near, self.hold + 1, 0)
        self._prev_tip, self._prev_goal = d_tip, d_goal
        success = self.hold >= self.hold_steps
        off_table = np.any((pos[:, :2] < self._table_lo - 0.05) | (pos[:, :2] > self._table_hi + 0.05), axis=1)
        failed = (off_table & ~near) | (pos[:, 2] < -FALL_DEPTH)
        reward = sum(terms.values())
        return reward, terms, success, failed & ~success

    def _task_state(self, obs) -> np.ndarray:
        pos = obs.object_pose[:, :3]
        return np.concatenate(
            [self.goal, self.goal - pos, self.lifted[:, None], (self.hold / self.hold_steps)[:, None]], axis=1
        )


class GraspLiftVectorEnv(_GraspVectorEnv):
    """Grasp & Lift, N worlds (module doc)."""

    task_name = "GraspLift-v0"

    def _goal_for(self, ids: np.ndarray, pose: np.ndarray) -> np.ndarray:
        goal = pose[:, :3].copy()
        goal[:, 2] = SceneConfig().table_height + GOAL_HEIGHT
        return goal


class GraspThrowVectorEnv(_GraspVectorEnv):
    """Grasp & Throw into the basket, N worlds (module doc)."""

    task_name = "GraspThrow-v0"
    hold_steps = THROW_HOLD_STEPS
    basket = Basket()

    @classmethod
    def default_config(cls) -> TaskConfig:
        return TaskConfig(object_xy=(0.56, 0.32))  # left of the basket: the hand reaches it clear of the basket

    def scene_extras(self):
        return [self.basket]

    def _goal_for(self, ids: np.ndarray, pose: np.ndarray) -> np.ndarray:
        return np.tile(np.asarray(self.basket.rim_center) + [0.0, 0.0, 0.10], (len(ids), 1))

    def _in_goal(self, obs, d_goal: np.ndarray) -> np.ndarray:
        return self.basket.contains(obs.object_pose[:, :3])


class GraspLiftEnv(TaskEnv):
    vector_class = GraspLiftVectorEnv


class GraspThrowEnv(TaskEnv):
    vector_class = GraspThrowVectorEnv
