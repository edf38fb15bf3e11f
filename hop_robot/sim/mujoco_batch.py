"""MuJoCo CPU backend: N scenes stepped together by ``mujoco.batch`` on a thread pool.

One compiled scene serves every scene, or several variants of one layout do
(one per object). Meshes of other shapes change MjData's layout (their
bounding-volume trees and polygon buffers differ in size), so each variant
gets its own batch and the scenes are grouped by variant; with one variant
there is one batch and no gathering. With one variant, what differs per scene (table pose, obstacles,
joint friction and damping: ``SceneParams``) is written into per-simulation
model fields (``Batch.expand``). Each 20 Hz control step runs
``spec.SUBSTEPS`` single-substep batch calls so that the arm target can be
rate-limited per substep (``hop_robot.sim.control``), exactly as the HOP
controller does, and so that contact with the environment is checked at
every substep.
"""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

import mujoco
import mujoco.batch  # a submodule: import it explicitly
import numpy as np

from hop_robot.embodiment import spec
from hop_robot.geometry import transform_points

from .control import RateLimitedTargets
from .protocol import Observation, SceneParams, register_backend
from .scene import PARKED_Z, CompiledScene, SceneConfig, SceneIndex, build_scene, table_geom_pose

__all__ = ["MujocoSimulator", "default_threads"]

_CTRL = int(mujoco.mjtState.mjSTATE_CTRL)


def default_threads() -> int:
    """Threads for the batch: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _same_layout(a: SceneIndex, b: SceneIndex) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)


class MujocoSimulator:
    """N scenes on MuJoCo's CPU batch (see the module doc and ``protocol.Simulator``).

    Args:
        scenes: one compiled scene (``scene.build_scene``), or variants of one layout.
        num_scenes: N, the scenes stepped together.
        nthread: batch threads (0: every CPU this process may use).
        assignment: (N,) variant of each scene (default ``i % len(scenes)``).
    """

    def __init__(
        self,
        scenes: CompiledScene | Sequence[CompiledScene],
        num_scenes: int,
        *,
        nthread: int = 0,
        assignment: np.ndarray | None = None,
    ) -> None:
        if num_scenes < 1:
            raise ValueError(f"num_scenes must be >= 1, got {num_scenes}")
        variants = [scenes] if isinstance(scenes, CompiledScene) else list(scenes)
        if not variants:
            raise ValueError("no scene to simulate")
        first = variants[0]
        for k, other in enumerate(variants[1:], 1):
            if not _same_layout(first.index, other.index) or other.model.nq != first.model.nq:
                raise ValueError(f"scene variant {k} has another layout than variant 0 (joints, sites or bodies differ)")
        self.num_scenes = int(num_scenes)
        self.variants = variants
        self.assignment = (
            np.arange(self.num_scenes) % len(variants) if assignment is None else np.asarray(assignment, dtype=np.int64)
        )
        if self.assignment.shape != (self.num_scenes,) or not np.all((0 <= self.assignment) & (self.assignment < len(variants))):
            raise ValueError(f"assignment must be ({self.num_scenes},) ints in [0, {len(variants)}), got {self.assignment}")
        self.config, self.model, self.index = first.config, first.model, first.index
        self.num_points = int(first.cloud.shape[0])
        self.dynamic = self.index.object_qpos >= 0
        self.clouds = np.stack([v.cloud for v in variants])[self.assignment]  # (N, P, 3) object frames
        self.nthread = int(nthread) if nthread > 0 else default_threads()
        self._groups = [
            _Group(variants[k].model, np.flatnonzero(self.assignment == k), self.nthread, len(variants) == 1)
            for k in range(len(variants))
            if np.any(self.assignment == k)
        ]
        self.batch = self._groups[0].batch if len(self._groups) == 1 else None  # the one batch, when there is one
        self._targets = RateLimitedTargets(self.num_scenes)
        self._arm_contact = np.zeros(self.num_scenes, dtype=bool)
        self._hand_contact = np.zeros(self.num_scenes, dtype=bool)
        self._object_pose = np.tile([0.0, 0.0, PARKED_Z, 1.0, 0.0, 0.0, 0.0], (self.num_scenes, 1))
        self._expanded: dict[str, np.ndarray] = {}
        self.physics_seconds = 0.0  # wall time spent inside MuJoCo's step calls (benchmarks)

    @classmethod
    def from_points(
        cls,
        object_points: np.ndarray,
        num_scenes: int,
        config: SceneConfig = SceneConfig(),
        nthread: int = 0,
        robot_path: str | None = None,
    ) -> "MujocoSimulator":
        """N scenes of one object given by its surface points (M, 3), object frame."""
        return cls(build_scene(object_points, config, robot_path), num_scenes, nthread=nthread)

    # ------------------------------------------------------------------ API
    def reset(
        self,
        qpos: np.ndarray,
        object_pose: np.ndarray,
        params: SceneParams | None = None,
        ids: np.ndarray | None = None,
    ) -> Observation:
        ids = np.arange(self.num_scenes) if ids is None else np.asarray(ids, dtype=np.int64)
        n = len(ids)
        qpos = self._check(qpos, (n, spec.NUM_JOINTS), "qpos")
        object_pose = self._check(object_pose, (n, 7), "object_pose")
        if params is not None:
            params.validate(n, self.config.max_obstacles)
        q = np.clip(qpos, spec.JOINT_LOWER, spec.JOINT_UPPER)
        ix = self.index
        self._targets.reset(q, ids)
        self._object_pose[ids] = object_pose
        if params is not None or self._expanded:
            params = params or SceneParams.default(n, self.config)
        for g in self._groups:
            local, rows = g.local(ids)
            if len(local) == 0:
                continue
            g.batch.reset(ids=local, stage=mujoco.mjtStage.mjSTAGE_NONE)
            if params is not None:
                self._apply_params(params, local, rows)
            qp = g.qpos[local]
            qp[:, ix.qpos] = q[rows]
            if self.dynamic:
                qp[:, ix.object_qpos:ix.object_qpos + 7] = object_pose[rows]
            g.qpos[local] = qp
            g.qvel[local] = 0.0
            ctrl = g.ctrl[local]
            ctrl[:, ix.actuator] = q[rows]
            g.ctrl[local] = ctrl
            if not self.dynamic:
                g.mocap_pos[local, ix.object_mocap] = object_pose[rows, 0:3]
                g.mocap_quat[local, ix.object_mocap] = object_pose[rows, 3:7]
            g.batch.forward(ids=local, stage=mujoco.mjtStage.mjSTAGE_ACC)
        self._arm_contact[ids] = False
        self._hand_contact[ids] = False
        self._read_contacts()
        return self._observe()

    def step(self, targets: np.ndarray, object_pose: np.ndarray | None = None, substeps: int = spec.SUBSTEPS) -> Observation:
        goal = np.clip(self._check(targets, (self.num_scenes, spec.NUM_JOINTS), "targets"), spec.JOINT_LOWER, spec.JOINT_UPPER)
        if object_pose is not None:
            if self.dynamic:
                raise ValueError("the object is dynamic: it moves under physics, object_pose must be None")
            self._object_pose[:] = self._check(object_pose, (self.num_scenes, 7), "object_pose")
            self._place_object(slice(None))
        # The control law's targets of every substep are known in advance (they do not depend
        # on the state), so each group runs the whole control step in one rollout call,
        # recording the contact sensors after every substep, then computes kinematics at
        # the new state (keypoints): two calls per group instead of one per substep.
        act = self.index.actuator
        ctrl = np.stack([self._targets.substep(goal) for _ in range(substeps)], axis=1)  # (N, S, 23)
        for g in self._groups:
            control = np.repeat(g.ctrl[:, None, :], substeps, axis=1)
            control[:, :, act] = ctrl[g.rows]
            t0 = time.perf_counter()
            out = g.batch.rollout(nstep=substeps, control=control, control_spec=_CTRL, record=["sensordata"])
            g.batch.forward(stage=mujoco.mjtStage.mjSTAGE_POS)
            self.physics_seconds += time.perf_counter() - t0
            g.ctrl[:, act] = ctrl[g.rows, -1]
            data = out["sensordata"]  # (n, S, nsensordata)
            self._arm_contact[g.rows] |= np.any(data[:, :, self.index.arm_contact_sensors] > 0, axis=(1, 2))
            self._hand_contact[g.rows] |= np.any(data[:, :, self.index.hand_contact_sensor] > 0, axis=1)
        return self._observe()

    def hold(self) -> np.ndarray:
        """Stop every arm where it is now: the internal targets jump to the
        current joint angles (the robot's stop). Returns those angles (N, 23)."""
        q = self.read("qpos")[:, self.index.qpos]
        self._targets.reset(q)
        return q

    @property
    def qpos(self) -> np.ndarray:
        """(N, nq) full state positions (robot, object, fixtures); a copy."""
        return self.read("qpos")

    @property
    def qvel(self) -> np.ndarray:
        """(N, nv) full state velocities; a copy."""
        return self.read("qvel")

    def read(self, name: str) -> np.ndarray:
        """(N, ...) copy of an MjData field of every scene (``mujoco.batch.Batch.bind``)."""
        return self._gather(lambda g: g.field(name))

    def write(self, name: str, values: np.ndarray) -> None:
        """Set an input field of every scene (e.g. ``xfrc_applied``) from (N, ...) values."""
        for g in self._groups:
            g.field(name)[:] = values[g.rows]

    def state_dict(self) -> dict[str, Any]:
        """Everything the scenes' future depends on, as NumPy arrays (``protocol.Simulator``).

        - ``integration`` (N, nstate): each scene's ``mjSTATE_INTEGRATION`` row
          as ``mujoco.batch`` keeps it — time, qpos, qvel, act, history,
          qacc_warmstart, ctrl, qfrc_applied, xfrc_applied, eq_active,
          mocap_pos/quat, userdata, plugin state; the batch is not persistent,
          so these rows are all the MuJoCo state a call starts from;
        - ``arm_targets``: the control law's internal arm targets;
        - ``arm_contact``, ``hand_contact``: the sticky contact flags;
        - ``object_pose``: the kinematic object's pose;
        - ``scene_params``: the per-scene model fields ``SceneParams`` wrote.
        """
        return {
            "num_scenes": self.num_scenes,
            "assignment": self.assignment.copy(),
            "integration": self._gather(lambda g: g.batch.state),
            "arm_targets": self._targets.state_dict()["arm"],
            "arm_contact": self._arm_contact.copy(),
            "hand_contact": self._hand_contact.copy(),
            "object_pose": self._object_pose.copy(),
            "scene_params": {name: field.copy() for name, field in self._expanded.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()`` of a simulator built the same way
        (scenes, ``num_scenes``, ``assignment``): the next ``step`` equals the
        saved simulator's, bit for bit. Kinematics (keypoints, contact
        sensors) are recomputed as ``step`` leaves them."""
        if int(state["num_scenes"]) != self.num_scenes or not np.array_equal(state["assignment"], self.assignment):
            raise ValueError("the saved simulator has other scenes (num_scenes or variant assignment differ)")
        for name, values in state["scene_params"].items():
            self._field(name)[:] = values
        integration = np.asarray(state["integration"], dtype=np.float64)
        for g in self._groups:
            rows = integration[g.rows]
            if rows.shape != g.batch.state.shape:
                raise ValueError(f"saved integration state {rows.shape} does not fit the batch's {g.batch.state.shape}")
            g.batch.state[:] = rows
            g.batch.forward(stage=mujoco.mjtStage.mjSTAGE_POS)
        self._targets.load_state_dict({"arm": state["arm_targets"]})
        self._arm_contact[:] = state["arm_contact"]
        self._hand_contact[:] = state["hand_contact"]
        self._object_pose[:] = state["object_pose"]

    def full_state(self, scene: int) -> mujoco.MjData:
        """Scene ``scene``'s state as an MjData with its kinematics computed (rendering)."""
        g = next(g for g in self._groups if scene in g.ids)
        local = int(np.flatnonzero(g.ids == scene)[0])
        model = g.batch.get_model(local) if self._expanded else g.model
        data = g.batch.get_data(local)
        mujoco.mj_forward(model, data)
        return data

    def close(self) -> None:
        self.batch = None
        self._groups = []

    def __enter__(self) -> "MujocoSimulator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _check(self, value: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
        value = np.asarray(value, dtype=np.float64)
        if value.shape != shape:
            raise ValueError(f"{name} must be {shape}, got {value.shape}")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} has NaN or inf")
        return value

    def _gather(self, per_group) -> np.ndarray:
        """(N, ...) copy of ``per_group(group)`` arrays, each group's rows in scene order."""
        if len(self._groups) == 1:
            return np.array(per_group(self._groups[0]))
        first = per_group(self._groups[0])
        out = np.empty((self.num_scenes, *first.shape[1:]), dtype=first.dtype)
        for g in self._groups:
            out[g.rows] = per_group(g)
        return out

    def _field(self, name: str) -> np.ndarray:
        if name not in self._expanded:
            if len(self.variants) > 1:
                raise ValueError("per-scene SceneParams need a single scene variant (several object variants are set)")
            self._expanded[name] = self._groups[0].batch.expand(name)
        return self._expanded[name]

    def _apply_params(self, params: SceneParams, ids: np.ndarray, rows: np.ndarray) -> None:
        """Write ``params`` rows ``rows`` into the (single batch's) scenes ``ids``."""
        params = SceneParams(*(np.asarray(getattr(params, f))[rows] for f in SceneParams.__dataclass_fields__))
        ix = self.index
        geom_pos, geom_quat, geom_size = self._field("geom_pos"), self._field("geom_quat"), self._field("geom_size")
        rbound, aabb = self._field("geom_rbound"), self._field("geom_aabb")
        friction, damping = self._field("dof_frictionloss"), self._field("dof_damping")
        pos, quat = table_geom_pose(np.asarray(params.table_pose, dtype=np.float64), self.config)
        geom_pos[ids, ix.table_geom] = pos
        geom_quat[ids, ix.table_geom] = quat
        obstacles = np.asarray(params.obstacles, dtype=np.float64)
        if self.config.max_obstacles:
            half = obstacles[..., 7:10]
            used = np.all(half > 0, axis=-1)  # (n, K)
            parked = np.zeros_like(obstacles[..., 0:3])
            parked[..., 2] = PARKED_Z - np.arange(self.config.max_obstacles)
            size = np.where(used[..., None], half, 0.05)
            og = ix.obstacle_geoms
            geom_pos[ids[:, None], og] = np.where(used[..., None], obstacles[..., 0:3], parked)
            geom_quat[ids[:, None], og] = np.where(used[..., None], obstacles[..., 3:7], [1.0, 0.0, 0.0, 0.0])
            geom_size[ids[:, None], og] = size
            # The broad phase uses bounding spheres and boxes: keep them in step with the size.
            rbound[ids[:, None], og] = np.linalg.norm(size, axis=-1)
            aabb[ids[:, None], og, 0:3] = 0.0
            aabb[ids[:, None], og, 3:6] = size
        friction[ids[:, None], ix.dof] = self.model.dof_frictionloss[ix.dof] + params.joint_friction
        damping[ids[:, None], ix.dof] = self.model.dof_damping[ix.dof] + params.joint_damping

    def _place_object(self, ids) -> None:
        m = self.index.object_mocap
        for g in self._groups:
            g.mocap_pos[:, m] = self._object_pose[g.rows, 0:3]
            g.mocap_quat[:, m] = self._object_pose[g.rows, 3:7]

    def _read_contacts(self) -> None:
        for g in self._groups:
            data = g.sensordata
            self._arm_contact[g.rows] |= np.any(data[:, self.index.arm_contact_sensors] > 0, axis=1)
            self._hand_contact[g.rows] |= data[:, self.index.hand_contact_sensor] > 0

    def _observe(self) -> Observation:
        ix = self.index
        qpos, qvel = self.read("qpos"), self.read("qvel")
        if self.dynamic:
            pose = qpos[:, ix.object_qpos:ix.object_qpos + 7]
            vel = qvel[:, ix.object_dof:ix.object_dof + 6]
        else:
            pose, vel = self._object_pose.copy(), np.zeros((self.num_scenes, 6))
        return Observation(
            qpos=qpos[:, ix.qpos],
            qvel=qvel[:, ix.dof],
            object_pose=pose,
            object_vel=vel,
            object_pc=transform_points(self.clouds, pose).astype(np.float32),
            keypoints=self.read("site_xpos")[:, ix.keypoint_sites],
            arm_contact=self._arm_contact.copy(),
            hand_contact=self._hand_contact.copy(),
        )


class _Group:
    """The scenes ``ids`` of one scene variant, on their own batch."""

    def __init__(self, model: mujoco.MjModel, ids: np.ndarray, nthread: int, alone: bool) -> None:
        self.model, self.ids = model, ids
        self.rows = slice(None) if alone else ids  # where this group's rows sit in (N, ...) arrays
        # Not persistent: MjDatas are shared by the scenes a thread runs, which is
        # ~30 % faster than one MjData per scene (cache); every field read here
        # (sensordata, and site_xpos from the last substep's kinematics stage)
        # is computed by the call that reads it.
        self.batch = mujoco.batch.Batch(model, nsim=len(ids), nthread=min(nthread, len(ids)), persistent=False)
        b = self.batch
        self.qpos, self.qvel, self.ctrl = b.bind("qpos"), b.bind("qvel"), b.bind("ctrl")
        self.mocap_pos, self.mocap_quat = b.bind("mocap_pos"), b.bind("mocap_quat")
        self.sensordata = b.bind("sensordata")
        b.bind("site_xpos")  # an output: registered now so that every call copies it out

    def field(self, name: str) -> np.ndarray:
        return self.batch.bind(name)

    def local(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(local batch indices, positions in ``ids``) of this group's scenes among ``ids``."""
        pos = np.flatnonzero(np.isin(ids, self.ids))
        return np.searchsorted(self.ids, ids[pos]), pos


register_backend("mujoco", MujocoSimulator)
