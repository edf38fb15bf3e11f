"""Open Cabinet (REFERENCE.md "Task details", after the public HOP code).

A cabinet stands on the table with its drawer facing the robot; the policy
sees a cloud sampled from the drawer's handle. Reward per step:

- proximity: 0.04 Σ 1/(0.04 + d) over the index, middle and ring fingertips'
  distances d to the handle's axis, the thumb's weighted 0.08;
- opening bonuses: +0.5 once the drawer is open 1 cm and +1 once 20 cm (per
  step; the public code names such bonuses, not their values: these are ours);
- goal: 6 × (0.4 − remaining), remaining = 0.4 m − opening;
- action: −0.01 Σ a² (scaled actions).

Success: the drawer open ≥ 0.32 m for 10 consecutive steps. The episode ends
(failed) when an arm link touches the cabinet, table or floor (HOP: arm
contact force > 1 N; here any arm contact, from the scene's contact sensors).
"""

from __future__ import annotations

import numpy as np

from hop_robot.sim.fixtures import Cabinet
from hop_robot.sim.scene import PARKED_Z

from .base import TIP_SLOTS, TaskConfig, TaskEnv, TaskVectorEnv

__all__ = ["OpenCabinetEnv", "OpenCabinetVectorEnv", "REWARD"]

REWARD = {
    "proximity": 0.04,
    "thumb_proximity": 0.08,
    "proximity_eps": 0.04,
    "open_small": 0.5,
    "open_small_at": 0.01,
    "open_large": 1.0,
    "open_large_at": 0.20,
    "goal": 6.0,
    "goal_span": 0.4,
    "action": 0.01,
}
SUCCESS_OPENING = 0.32  # m
HOLD_STEPS = 10


def segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances (N, K) of points (N, K, 3) to segments a-b, a and b (N, 3)."""
    ab = (b - a)[:, None]
    t = np.clip(np.einsum("nki,nki->nk", points - a[:, None], np.broadcast_to(ab, points.shape)) / np.sum(ab * ab, -1), 0, 1)
    return np.linalg.norm(points - (a[:, None] + t[..., None] * ab), axis=-1)


class OpenCabinetVectorEnv(TaskVectorEnv):
    """Open Cabinet, N worlds (module doc). The object slot of the scene is
    parked (kinematic, no collision); the task's "object" is the handle."""

    task_name = "OpenCabinet-v0"
    dynamic_object = False
    state_dim = 1 + 1 + 3 + 1  # opening, its velocity, handle position, hold progress
    cabinet = Cabinet()

    @classmethod
    def default_config(cls) -> TaskConfig:
        return TaskConfig(objects=("005_tomato_soup_can",))  # the parked object's shape does not matter

    uses_objects = False  # the handle is the task's object: ``objects`` does not apply

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, config: TaskConfig | None = None, **overrides):
        overrides["objects"] = self.default_config().objects  # whatever was asked: the parked placeholder
        super().__init__(num_envs, render_mode, config, **overrides)
        model = self.sim.model
        joint = model.joint("drawer_slide").id
        self._drawer_qpos = int(model.jnt_qposadr[joint])
        self._drawer_dof = int(model.jnt_dofadr[joint])
        self._tips_to_axis = np.zeros((self.num_envs, 4))  # m, this step's fingertip distances to the handle's axis
        self._handle_cloud = self.cabinet.handle_surface(self.num_points)  # (P, 3) about the handle axis
        self.hold = np.zeros(self.num_envs, dtype=np.int64)

    def scene_extras(self):
        return [self.cabinet]

    def _draw_object_pose(self, i: int, rng: np.random.Generator) -> np.ndarray:
        return np.array([0.0, 0.0, PARKED_Z, 1.0, 0.0, 0.0, 0.0])  # out of the way; the drawer starts closed

    def opening(self) -> np.ndarray:
        """(N,) how far each drawer is open (m)."""
        return self.sim.qpos[:, self._drawer_qpos].copy()

    def _read_drawer(self) -> None:
        """The drawers' opening and its speed, read once per step (reward, cloud and state use them)."""
        self._opening = self.opening()
        self._opening_vel = self.sim.qvel[:, self._drawer_dof]

    milestone = "half open"  # the drawer opened half of SUCCESS_OPENING

    def _milestone(self) -> np.ndarray:
        return self._opening >= SUCCESS_OPENING / 2

    def _task_reset(self, ids: np.ndarray) -> None:
        self.hold[ids] = 0
        self._read_drawer()

    def _handle_segment(self, opening: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ends = self.cabinet.handle_axis_points(opening, 2)  # (N, 2, 3)
        return ends[:, 0], ends[:, 1]

    def _task_cloud(self, obs) -> np.ndarray:
        centre = self.cabinet.handle_closed - np.outer(self._opening, [1.0, 0.0, 0.0])
        return self._handle_cloud[None] + centre[:, None]

    def _reach_distance(self, obs) -> np.ndarray:
        # to the bar's surface, from the hook: index, middle and ring (the thumb stays outside the bar);
        # the distances ``_task_step`` measured this step
        return self._tips_to_axis[:, :3].mean(axis=1) - self.cabinet.handle_radius

    def _task_step(self, obs):
        r = REWARD
        self._read_drawer()
        opening = self._opening
        a, b = self._handle_segment(opening)
        d = segment_distance(obs.keypoints[:, TIP_SLOTS], a, b)  # (N, 4): index, middle, ring, thumb
        self._tips_to_axis = d
        eps = r["proximity_eps"]
        terms = {
            "proximity": r["proximity"] * (1.0 / (eps + d[:, :3])).sum(1) + r["thumb_proximity"] / (eps + d[:, 3]),
            "open_bonus": r["open_small"] * (opening > r["open_small_at"]) + r["open_large"] * (opening > r["open_large_at"]),
            "goal": r["goal"] * (r["goal_span"] - np.clip(r["goal_span"] - opening, 0.0, r["goal_span"])),
            "action": -r["action"] * np.sum(self._last_action**2, axis=1),
        }
        self.hold = np.where(opening >= SUCCESS_OPENING, self.hold + 1, 0)
        success = self.hold >= HOLD_STEPS
        failed = obs.arm_contact & ~success
        return sum(terms.values()), terms, success, failed

    def _task_state(self, obs) -> np.ndarray:
        opening = self._opening
        centre = self.cabinet.handle_closed - np.outer(opening, [1.0, 0.0, 0.0])
        return np.concatenate(
            [opening[:, None], self._opening_vel[:, None], centre, (self.hold / HOLD_STEPS)[:, None]], axis=1
        )


class OpenCabinetEnv(TaskEnv):
    vector_class = OpenCabinetVectorEnv
