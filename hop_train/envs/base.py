"""The batched task environment: N MuJoCo worlds stepped together.

``TaskVectorEnv`` is a native ``gymnasium.vector.VectorEnv``: one
``hop_robot.sim`` simulator holds all N worlds (one scene variant per
object, ``Batch.set_models``) and steps them on a thread pool; rewards,
success and resets are computed for all N at once in NumPy. ``TaskEnv`` is
the single environment (``gymnasium.make``): the same code with N = 1.

The contract is the pretrained policy's and ``hop-robot run``'s:

- action (23,) in [-1, 1]: absolute joint targets scaled by the joint limits
  (``spec.SCALER``), tracked by the one control law of ``hop_robot.sim``;
- observation ``{"proprio": (23,) scaled joint angles, "points": (P, 3) the
  object cloud in the robot base frame, "state": (D,) privileged state}``;
  the policy reads ``proprio`` and ``points`` (its 16-step history is its
  own business), a critic may read ``state``.

Gymnasium 1.x autoreset, same-step mode: when an episode ends, the returned
observation is the next episode's first, and ``info["final_obs"]`` /
``info["final_info"]`` hold the ended episode's last ones (masked by
``info["_final_obs"]``).

Each env draws its randomness from its own generator (seeded ``seed + i``
on ``reset(seed=...)``), so env i of a vector env and a single env seeded
``seed + i`` with the same object run the same episode, step for step.

``state_dict()`` / ``load_state_dict()`` save and restore a vector env mid-run
(checkpoints that resume exactly): the simulator's state, every env's
generator, the latest observation and every NumPy-array attribute of the env
(the base's counters and the task's flags, goals and previous distances: the
run's state lives in such arrays by convention), less ``static_arrays``,
which are built from the config. An env rebuilt with the same config that
loads the state continues step for step as the saved one would have.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, replace
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from hop_robot.drivers.sim import SimRobotConfig
from hop_robot.embodiment import spec
from hop_robot.geometry import quat_to_matrix, yaw_quat
from hop_robot.sim import CompiledScene, Observation, SceneConfig, build_scene, make_simulator
from hop_robot.sim.scene import SceneExtra

from .objects import TaskObject, object_set

__all__ = ["TaskConfig", "TaskEnv", "TaskVectorEnv", "CAMERA_POSITION", "REACH_RADIUS", "STALL_S", "STILL_SPEED"]

TIP_SLOTS = slice(5, 9)  # fingertip keypoints in spec.KEYPOINT_SITES (index, middle, ring, thumb)
PALM_SLOT = 0
# The hand "reached" what the task must take (the object, the cabinet's handle)
# when its four fingertips came within this mean distance of it: the first
# rung below the milestone and success, for telling weak policies apart.
REACH_RADIUS = 0.03  # m
# A hand "stalled" when its palm moved less than STILL_SPEED for the last
# STALL_S of an episode that did not succeed: a policy that stopped acting.
STILL_SPEED = 0.02  # m/s
STALL_S = 5.0
# The simulated robot's depth camera (its config is the one place for it), for cloud="camera".
CAMERA_POSITION = np.asarray(SimRobotConfig().camera_position, dtype=np.float64)


@dataclass(frozen=True)
class TaskConfig:
    """What every task shares (REFERENCE.md "Task details", from the public HOP code)."""

    episode_steps: int = 600  # 30 s at 20 Hz (paper)
    object_xy: tuple[float, float] = (0.50, -0.10)  # m, nominal object position on the table
    object_xy_noise: float = 0.10  # m, uniform ± on x and y (HOP code)
    object_z_noise: float = 0.02  # m, dropped from up to this height (HOP code: ±0.02)
    joint_noise: float = 0.10  # rad, uniform ± on every joint at reset (HOP code)
    objects: str | tuple[str, ...] = "train"  # "train", "heldout" or object names
    cloud: str = "surface"  # "surface": whole surface (as pretraining); "camera": the side the camera sees
    perturb: bool = False  # a random force equal to the object's weight while it is held (evaluation)
    perturb_every: int = 20  # steps between new random force directions
    object_friction: float = 1.0
    nthread: int = 0  # simulator threads (0: every CPU this process may use)


class TaskVectorEnv(VectorEnv, abc.ABC):
    """Base of the three tasks: scene, stepping, observation, perturbation, autoreset.

    A task subclass sets ``task_name``, ``scene_extras``, ``dynamic_object``
    and implements ``_task_reset(ids)``, ``_task_step(obs) -> (reward, terms,
    success, failed)``, ``_reach_distance(obs)`` and ``_task_state()``.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": ["rgb_array"], "render_fps": spec.CONTROL_HZ}
    task_name = "task"
    dynamic_object = True
    uses_objects = True  # False: the task has its own object (Open Cabinet's handle); ``objects`` is ignored
    state_dim = 0  # the task's own privileged entries (after the shared ones)
    # joint pos (23) + vel (23), object pose (7) + vel (6), palm (3), tips rel. palm (12), mass (1), progress (1)
    shared_state_dim = 2 * spec.NUM_JOINTS + 7 + 6 + 3 + 12 + 1 + 1
    #: NumPy-array attributes built from the config, not by the run: left out
    #: of ``state_dict`` (an env rebuilt with the config has them; the normals
    #: would be most of a checkpoint's env state). A subclass's arrays are
    #: saved unless it names them here.
    static_arrays: tuple[str, ...] = ("assignment", "masses", "rest_height", "_normals")

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, config: TaskConfig | None = None, **overrides: Any):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        config = replace(config or self.default_config(), **overrides)
        if config.cloud not in ("surface", "camera"):
            raise ValueError(f"cloud must be 'surface' or 'camera', got {config.cloud!r}")
        self.config = config
        self.num_envs = int(num_envs)
        self.render_mode = render_mode
        self.objects: tuple[TaskObject, ...] = object_set(config.objects)
        self.assignment = np.arange(self.num_envs) % len(self.objects)  # env i's object
        self.scenes = [self._build_scene(o) for o in self.objects]
        self.sim = make_simulator(self.scenes, self.num_envs, nthread=config.nthread, assignment=self.assignment)
        self.index = self.scenes[0].index
        self.masses = np.array([o.mass for o in self.objects])[self.assignment]
        self.rest_height = np.array([o.rest_height for o in self.objects])[self.assignment]
        self.num_points = spec.NUM_POINTS
        self._normals = self._cloud_normals()

        self.single_action_space = spaces.Box(-1.0, 1.0, (spec.NUM_JOINTS,), np.float32)
        self.single_observation_space = spaces.Dict({
            "proprio": spaces.Box(-2.0, 2.0, (spec.NUM_JOINTS,), np.float32),
            "points": spaces.Box(-10.0, 10.0, (self.num_points, 3), np.float32),
            "state": spaces.Box(-10.0, 10.0, (self.shared_state_dim + self.state_dim,), np.float32),
        })  # fmt: skip
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)

        n = self.num_envs
        self._rngs = [np.random.default_rng(i) for i in range(n)]
        self.steps = np.zeros(n, dtype=np.int64)
        self.returns = np.zeros(n)
        self.successes = np.zeros(n, dtype=bool)
        self.milestones = np.zeros(n, dtype=bool)  # reached the task's milestone (``milestone``) this episode
        self.closest = np.full(n, np.inf)  # the episode's smallest ``_reach_distance`` (m)
        self.palm_path = np.zeros(n)  # m the palm travelled this episode
        self.still_steps = np.zeros(n, dtype=np.int64)  # consecutive steps, up to now, below STILL_SPEED
        # ring of the last STALL_S's command gaps: mean |joint target - joint| (rad) when each target is commanded;
        # ~0 for a still hand on a fixed point, larger for one held back (contact): it tells the two stalls apart
        self.command_gaps = np.zeros((n, int(STALL_S * spec.CONTROL_HZ)))
        self._palm = np.zeros((n, 3))
        self._force = np.zeros((n, 3))
        self._obs = None
        self._last_action = np.zeros((n, spec.NUM_JOINTS))
        self._renderers: dict = {}

    # ------------------------------------------------------------------ to override
    @classmethod
    def default_config(cls) -> TaskConfig:
        return TaskConfig()

    def scene_extras(self) -> list[SceneExtra]:
        return []

    def _task_reset(self, ids: np.ndarray) -> None:
        """Task bookkeeping for the envs ``ids`` just reset (goals, flags, previous distances)."""

    #: what ``_milestone`` measures: a step on the way to success that a
    #: policy without success can still reach (so evaluations of weak
    #: policies tell them apart).
    milestone = "success"

    def _milestone(self) -> np.ndarray:
        """(N,) bool: the envs at the task's milestone now (default: success)."""
        return self.successes

    @abc.abstractmethod
    def _reach_distance(self, obs) -> np.ndarray:
        """(N,) m: the fingertips' mean distance to the surface of what the task
        must take, this step (called after ``_task_step``)."""

    @abc.abstractmethod
    def _task_step(self, obs) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """(reward (N,), reward terms {name: (N,)}, success (N,) bool, failed (N,) bool)."""

    def _task_state(self, obs) -> np.ndarray:
        """(N, state_dim) the task's privileged entries."""
        return np.zeros((self.num_envs, 0))

    def _task_cloud(self, obs) -> np.ndarray | None:
        """(N, P, 3) the cloud the policy sees, if not the object's (the cabinet's handle)."""
        return None

    # ------------------------------------------------------------------ scene
    def _build_scene(self, obj: TaskObject) -> CompiledScene:
        scene_config = SceneConfig(
            max_obstacles=0,
            object_dynamic=self.dynamic_object,
            object_collision=self.dynamic_object,
            object_mass=obj.mass,
            object_friction=self.config.object_friction,
        )
        return build_scene(obj.points(), scene_config, extras=self.scene_extras())

    def _cloud_normals(self) -> np.ndarray:
        """(N, P, 3) outward directions of the object-frame cloud points (from the
        hull centre; exact for convex shapes), for the camera-visible cloud."""
        normals = []
        for scene in self.scenes:
            d = scene.cloud - scene.cloud.mean(axis=0)
            normals.append(d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9))
        return np.stack(normals)[self.assignment]

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset: {len(seeds)} seeds for {self.num_envs} envs")
            self._rngs = [np.random.default_rng(s) for s in seeds]
        ids = np.arange(self.num_envs)
        obs = self._reset_envs(ids)
        self._obs = obs
        return self._observation(obs), {}

    def step(self, actions: np.ndarray):
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.num_envs, spec.NUM_JOINTS):
            raise ValueError(f"actions must be ({self.num_envs}, {spec.NUM_JOINTS}), got {actions.shape}")
        if not np.all(np.isfinite(actions)):
            raise ValueError("actions contain NaN or inf")
        actions = np.clip(actions, -1.0, 1.0)
        targets = spec.SCALER.unscale(actions)
        if self.config.perturb:
            self._apply_perturbation()
        if self._obs is not None:
            ring = self.command_gaps
            ring[np.arange(self.num_envs), self.steps % ring.shape[1]] = np.abs(targets - self._obs.qpos).mean(axis=1)
        obs = self.sim.step(targets)
        self._obs = obs
        self._last_action = actions
        self.steps += 1
        reward, terms, success, failed = self._task_step(obs)
        self.returns += reward
        self.successes |= success
        self.milestones |= self._milestone()
        self.closest = np.minimum(self.closest, self._reach_distance(obs))
        palm = obs.keypoints[:, PALM_SLOT]
        moved = np.linalg.norm(palm - self._palm, axis=1)
        self.palm_path += moved
        self.still_steps = np.where(moved < STILL_SPEED / spec.CONTROL_HZ, self.still_steps + 1, 0)
        self._palm = palm.copy()
        terminated = success | failed
        truncated = (self.steps >= self.config.episode_steps) & ~terminated
        observation = self._observation(obs)
        info: dict[str, Any] = {f"reward_{k}": v for k, v in terms.items()}
        info["success"] = success.copy()
        info["is_success"] = self.successes.copy()
        info["object"] = np.array([self.objects[k].name for k in self.assignment])
        done = terminated | truncated
        if np.any(done):
            ids = np.flatnonzero(done)
            final_info = {
                "episode_return": np.where(done, self.returns, 0.0),
                "episode_length": np.where(done, self.steps, 0),
                "episode_success": np.where(done, self.successes, False),
                "episode_milestone": np.where(done, self.milestones, False),
                "episode_closest": np.where(done, self.closest, np.inf),
                "episode_palm_path": np.where(done, self.palm_path, 0.0),
                "episode_stalled": done & ~self.successes & (self.still_steps >= STALL_S * spec.CONTROL_HZ),
                "episode_command_gap": np.where(done, self.command_gaps.sum(axis=1)
                                                / np.clip(self.steps, 1, self.command_gaps.shape[1]), np.nan),
            }
            info["final_obs"] = np.empty(self.num_envs, dtype=object)
            for i in ids:
                info["final_obs"][i] = {k: v[i] for k, v in observation.items()}
            info["_final_obs"] = done.copy()
            info["final_info"] = final_info
            info["_final_info"] = done.copy()
            obs = self._reset_envs(ids)
            self._obs = obs
            observation = self._observation(obs)
        return observation, reward.astype(np.float32), terminated, truncated, info

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """What the envs' continuation depends on (module doc): ``sim``, ``rngs``
        (each env's bit-generator state), ``arrays`` (the run's array
        attributes), ``obs`` (the latest ``Observation``'s fields), and the
        task, env count and objects for refusing another env's state."""
        return {
            "task": self.task_name,
            "num_envs": self.num_envs,
            "objects": [o.name for o in self.objects],
            "sim": self.sim.state_dict(),
            "rngs": [rng.bit_generator.state for rng in self._rngs],
            "arrays": {name: value.copy() for name, value in self._run_arrays().items()},
            "obs": None if self._obs is None else {f: getattr(self._obs, f).copy() for f in Observation.__dataclass_fields__},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()`` of an env built with the same config
        (arrays may come back as tensors from a checkpoint: they are read as
        NumPy arrays of their own dtype). Another task, env count or object
        set is refused (ValueError)."""
        mine = {"task": self.task_name, "num_envs": self.num_envs, "objects": [o.name for o in self.objects]}
        theirs = {k: state[k] for k in mine}
        if theirs != mine:
            raise ValueError(f"the saved env state is of another env: {theirs} vs {mine}")
        self.sim.load_state_dict(state["sim"])
        self._rngs = [_generator(s) for s in state["rngs"]]
        current = self._run_arrays()
        for name, value in state["arrays"].items():
            value = np.asarray(value).copy()
            own = current.get(name, value)
            if (own.shape, own.dtype) != (value.shape, value.dtype):
                raise ValueError(f"saved {name} is {value.dtype}{value.shape}, this env's {own.dtype}{own.shape}")
            setattr(self, name, value)
        obs = state["obs"]
        self._obs = None if obs is None else Observation(**{f: np.asarray(v).copy() for f, v in obs.items()})

    def _run_arrays(self) -> dict[str, np.ndarray]:
        """The NumPy-array attributes the run changes: all of them but ``static_arrays``."""
        return {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray) and k not in self.static_arrays}

    def render(self):
        """An RGB image (H, W, 3) of env 0 (``render_mode="rgb_array"``)."""
        return self.render_envs([0])[0]

    def render_envs(self, envs: list[int], width: int = 320, height: int = 240) -> list[np.ndarray]:
        """RGB images (height, width, 3) of the envs ``envs``, from a camera facing the robot."""
        import mujoco

        camera = mujoco.MjvCamera()
        camera.lookat[:] = [0.5, 0.0, 0.15]
        camera.distance, camera.azimuth, camera.elevation = 1.7, 135.0, -30.0
        images = []
        for i in envs:
            variant = int(self.assignment[i])
            key = (variant, width, height)
            if key not in self._renderers:
                self._renderers[key] = mujoco.Renderer(self.scenes[variant].model, height, width)
            renderer = self._renderers[key]
            renderer.update_scene(self.sim.full_state(i), camera=camera)
            images.append(renderer.render().copy())
        return images

    def close(self, **kwargs) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        self.sim.close()

    # ------------------------------------------------------------------ internals
    def _reset_envs(self, ids: np.ndarray):
        n = len(ids)
        cfg = self.config
        q = np.empty((n, spec.NUM_JOINTS))
        pose = np.zeros((n, 7))
        for j, i in enumerate(ids):
            rng = self._rngs[i]
            q[j] = spec.clip_to_limits(spec.DEFAULT_POSE + rng.uniform(-cfg.joint_noise, cfg.joint_noise, spec.NUM_JOINTS))
            pose[j] = self._draw_object_pose(i, rng)
        obs = self.sim.reset(q, pose, ids=ids)
        self.steps[ids] = 0
        self.returns[ids] = 0.0
        self.successes[ids] = False
        self.milestones[ids] = False
        self.closest[ids] = np.inf
        self.palm_path[ids] = 0.0
        self.still_steps[ids] = 0
        self.command_gaps[ids] = 0.0
        self._palm[ids] = obs.keypoints[ids, PALM_SLOT]
        self._force[ids] = 0.0
        self._last_action[ids] = spec.SCALER.scale(q)
        self._obs = obs
        self._task_reset(ids)
        return obs

    def _draw_object_pose(self, i: int, rng: np.random.Generator) -> np.ndarray:
        """(7,) env i's object at reset: on the table near ``object_xy``, random yaw, dropped from ≤ z noise."""
        cfg = self.config
        xy = np.asarray(cfg.object_xy) + rng.uniform(-cfg.object_xy_noise, cfg.object_xy_noise, 2)
        z = self.rest_height[i] + 0.002 + rng.uniform(0.0, cfg.object_z_noise)
        return np.concatenate([[xy[0], xy[1], z], yaw_quat(np.array(rng.uniform(-np.pi, np.pi)))])


    def _observation(self, obs) -> dict[str, np.ndarray]:
        cloud = self._task_cloud(obs)
        if cloud is None:
            cloud = obs.object_pc if self.config.cloud == "surface" else self._camera_cloud(obs)
        palm = obs.keypoints[:, PALM_SLOT]
        tips = obs.keypoints[:, TIP_SLOTS] - palm[:, None]
        state = np.concatenate(
            [
                spec.SCALER.scale(obs.qpos), 0.1 * obs.qvel, obs.object_pose, obs.object_vel, palm,
                tips.reshape(self.num_envs, -1), self.masses[:, None], (self.steps / self.config.episode_steps)[:, None],
                self._task_state(obs),
            ],
            axis=1,
        )  # fmt: skip
        return {
            "proprio": np.clip(spec.SCALER.scale(obs.qpos), -2.0, 2.0).astype(np.float32),
            "points": np.asarray(cloud, dtype=np.float32),
            "state": np.clip(state, -10.0, 10.0).astype(np.float32),  # HOP's critic clamps its inputs to ±10
        }

    def _camera_cloud(self, obs) -> np.ndarray:
        """(N, P, 3): only the points whose outward direction faces the camera,
        resampled (repeated) to P points: what one depth camera sees."""
        rot = quat_to_matrix(obs.object_pose[:, 3:7])
        normals = np.einsum("nij,npj->npi", rot, self._normals)
        to_camera = CAMERA_POSITION - obs.object_pc.astype(np.float64)
        visible = np.einsum("npi,npi->np", normals, to_camera) > 0
        out = np.empty_like(obs.object_pc)
        for i in range(self.num_envs):
            idx = np.flatnonzero(visible[i])
            if idx.size == 0:
                idx = np.arange(self.num_points)
            out[i] = obs.object_pc[i, idx[np.arange(self.num_points) % idx.size]]
        return out

    def _apply_perturbation(self) -> None:
        """A force of the object's weight in a random direction, re-drawn every
        ``perturb_every`` steps, applied while the object is off the table (held)."""
        redraw = (self.steps % self.config.perturb_every) == 0
        for i in np.flatnonzero(redraw):
            v = self._rngs[i].normal(size=3)
            self._force[i] = v / np.linalg.norm(v) * self.masses[i] * 9.81
        held = self.sim.qpos[:, self.index.object_qpos + 2] > self.rest_height + 0.03
        xfrc = self.sim.read("xfrc_applied")
        xfrc[:, self.index.object_body, :3] = np.where(held[:, None], self._force, 0.0)
        self.sim.write("xfrc_applied", xfrc)


def _generator(state: dict[str, Any]) -> np.random.Generator:
    """A NumPy generator in a saved ``bit_generator.state``."""
    rng = np.random.Generator(getattr(np.random, state["bit_generator"])())
    rng.bit_generator.state = state
    return rng


class TaskEnv(gym.Env):
    """One task environment (``gymnasium.make``): the vector env with N = 1."""

    vector_class: type[TaskVectorEnv] = TaskVectorEnv
    metadata = {"render_modes": ["rgb_array"], "render_fps": spec.CONTROL_HZ}

    def __init__(self, render_mode: str | None = None, **config: Any):
        self.vec = self.vector_class(1, render_mode=render_mode, **config)
        self.render_mode = render_mode
        self.action_space = self.vec.single_action_space
        self.observation_space = self.vec.single_observation_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, _ = self.vec.reset(seed=seed, options=options)
        return {k: v[0] for k, v in obs.items()}, {}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)[None]
        obs, reward, terminated, truncated, info = self.vec.step(action)
        single = {k: v[0] for k, v in info.items() if not k.startswith("_") and k not in ("final_obs", "final_info")}
        if "final_obs" in info:  # the episode ended: show its last observation (gymnasium.Env does not autoreset)
            obs = {k: v[None] for k, v in info["final_obs"][0].items()}
            single.update({k: v[0] for k, v in info["final_info"].items()})
        return {k: v[0] for k, v in obs.items()}, float(reward[0]), bool(terminated[0]), bool(truncated[0]), single

    def render(self):
        return self.vec.render()

    def close(self):
        self.vec.close()

