"""Privileged-state scripted experts, one per task: proof that each task is solvable.

An expert reads what a policy may not (object pose, its cloud, the goal, the
drawer's opening) and plans every env of a batched task env at once, with
its own per-env phase:

- ``GraspLiftExpert``: a side grasp (a power grasp: palm against the
  object's side, fingers wrapped round its far side, thumb closed on its
  near side), or from above for objects lower than 6 cm; lift to the goal
  and hold. The approach is chosen among directions the arm reaches
  (IK-checked): straight out from the robot turned a little counter-clockwise
  for a round object, a box's narrow side. An object that leaves the hand
  (dropped) is grasped again.
- ``GraspThrowExpert``: the same grasp, lift, carry the object over the
  basket (closed on the object's measured position, the hand turning with
  the arm about its base), open the hand just above the rim.
- ``OpenCabinetExpert``: palm down above the handle, fingers stretched over
  the bar, curl them behind it (a hook), pull the drawer straight out.

Arm motions are Cartesian: the commanded palm pose moves toward its phase's
target at a bounded speed and is turned into arm joint targets by a batched
damped-least-squares IK (``PalmIK``) on sites rigid with the palm
(``hop_robot.kinematics``), except the grasp experts' first move, in joint
space to an elbow-up posture above the object (``READY_SEED``; the IK then
stays on that branch, with the wrist's offset link above the flange, clear of
the table). A phase that needs the arm where it was sent waits for it
(``_settled``). Hand joints are commanded directly.

Success, 256 envs, seed 0, training objects (``hop-train evaluate --policy
expert``): GraspLift 0.91 (cans 1.0, potted meat 0.93, bowl 0.91, wood block
0.93, mug 0.67), GraspThrow 0.73 (cans 1.0, bowl 0.95, potted meat 0.79, mug
0.62, wood block 0: standing, its centre is 1 cm above the rim, and it is too
long to lie in the basket), OpenCabinet 1.0. docs/tasks.md: contact model.

``expert(env, obs) -> actions (N, 23)`` in [-1, 1]; envs whose ``env.steps``
is 0 (first step, or just auto-reset) restart at the first phase.
"""

from __future__ import annotations

import abc

import mujoco
import numpy as np

from hop_robot.embodiment import spec
from hop_robot.kinematics import RobotKinematics

__all__ = ["GraspLiftExpert", "GraspThrowExpert", "OpenCabinetExpert", "PalmIK", "make_expert"]

# Sites fixed in the palm frame whatever the hand joints (the finger bases lie
# on the base joints' axes): four of them fix the palm's position and orientation.
FRAME_SITES = ("kp_palm", "kp_index_base", "kp_middle_base", "kp_ring_base")
DT = 1.0 / spec.CONTROL_HZ

# Hand joint indices (into the 23), per finger: base, proximal, medial, distal.
INDEX, MIDDLE, RING, THUMB = (np.arange(4) + 7 + 4 * k for k in range(4))
FINGERS3 = np.concatenate([INDEX, MIDDLE, RING])


def _unwrap(env):
    return getattr(env, "unwrapped", env)


def frame(x_axis: np.ndarray, z_axis: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations with columns (x, y = z × x, z), z orthogonalised against x."""
    x = x_axis / np.linalg.norm(x_axis, axis=-1, keepdims=True)
    z = z_axis - np.sum(z_axis * x, -1, keepdims=True) * x
    z = z / np.linalg.norm(z, axis=-1, keepdims=True)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=-1)


class PalmIK:
    """Batched IK of the arm for a palm pose (rotation R (N, 3, 3): columns are
    the palm frame's axes, x the palmar normal, y toward the index, z along the
    fingers; origin p (N, 3) on the finger-joint plane, as the MJCF's ``palm`` body).

    Damped least squares on the four ``FRAME_SITES`` (12 residuals, 7 arm joints),
    warm-started from the previous solution.
    """

    def __init__(self, model: mujoco.MjModel, damping: float = 0.02, iterations: int = 8):
        self.kin = RobotKinematics(model, sites=FRAME_SITES)
        self.damping, self.iterations = float(damping), int(iterations)
        data = mujoco.MjData(model)
        mujoco.mj_kinematics(model, data)
        body = model.body("palm").id
        rot, pos = data.xmat[body].reshape(3, 3), data.xpos[body]
        self.local = np.stack([rot.T @ (data.site_xpos[model.site(s).id] - pos) for s in FRAME_SITES])  # (4, 3)

    def palm_pose(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(R (N, 3, 3), p (N, 3)) of the palm for joint angles q (N, 23)."""
        x = self.kin.sites(q)
        z = x[:, 2] - x[:, 0]
        y = x[:, 1] - x[:, 3]
        r = frame(np.cross(y, z), z)
        p = x[:, 2] - r @ self.local[2]
        return r, p

    def solve(self, q_arm: np.ndarray, rot: np.ndarray, pos: np.ndarray, iterations: int | None = None) -> np.ndarray:
        """Arm joints (N, 7) placing the palm at (rot, pos), from q_arm (N, 7)."""
        n = q_arm.shape[0]
        target = pos[:, None] + np.einsum("nij,sj->nsi", rot, self.local)  # (N, 4, 3)
        q = np.zeros((n, spec.NUM_JOINTS))
        q[:, spec.ARM] = q_arm
        lam2 = self.damping**2 * np.eye(7)
        for _ in range(iterations or self.iterations):
            x, jac = self.kin.sites_and_jacobians(q)
            e = (target - x).reshape(n, -1, 1)
            j = jac[..., spec.ARM].reshape(n, -1, 7)
            jt = j.transpose(0, 2, 1)
            dq = np.linalg.solve(jt @ j + lam2, jt @ e)[..., 0]
            dq *= np.minimum(1.0, 0.3 / np.maximum(np.abs(dq).max(1, keepdims=True), 1e-9))
            q[:, spec.ARM] = np.clip(q[:, spec.ARM] + dq, spec.JOINT_LOWER[spec.ARM], spec.JOINT_UPPER[spec.ARM])
        return q[:, spec.ARM]


class _Expert(abc.ABC):
    """Per-env phase machine shared by the experts: Cartesian palm motion + IK
    (or, for the envs a phase puts in ``jmode``, a joint-space move to ``jgoal``)."""

    speed = 0.30  # m/s, the commanded palm's top speed
    turn = 1.5  # rad/s, the commanded palm's top rotation speed
    max_joint_step = 0.9 * spec.ARM_MAX_VELOCITY / spec.CONTROL_HZ  # rad per control step

    def reset(self, env) -> None:
        env = _unwrap(env)
        n = env.num_envs
        self.ik = PalmIK(env.sim.model)
        self.n = n
        self.phase = np.zeros(n, dtype=np.int64)
        self.t = np.zeros(n, dtype=np.int64)  # steps in the current phase
        self.q = np.zeros((n, spec.NUM_JOINTS))  # commanded joints
        self.rot = np.tile(np.eye(3), (n, 1, 1))  # commanded palm pose
        self.pos = np.zeros((n, 3))
        self.jmode = np.zeros(n, dtype=bool)  # envs whose arm moves in joint space this step (to jgoal)
        self.jgoal = np.zeros((n, spec.NUM_ARM_JOINTS))
        self._fresh = np.ones(n, dtype=bool)

    def _restart(self, env, ids: np.ndarray, obs) -> None:
        q = obs.qpos[ids]
        self.q[ids] = q
        r, p = self.ik.palm_pose(q)
        self.rot[ids], self.pos[ids] = r, p
        self.phase[ids] = 0
        self.t[ids] = 0
        self._plan(env, ids, obs)

    def _plan(self, env, ids: np.ndarray, obs) -> None:
        """Per-episode decisions for envs ``ids`` (grasp yaw, ...)."""

    @abc.abstractmethod
    def _targets(self, env, obs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(palm rotation (N, 3, 3), palm position (N, 3), hand joints (N, 16)) targets; advances phases."""

    def __call__(self, env, obs=None) -> np.ndarray:
        env = _unwrap(env)
        if getattr(self, "n", None) != env.num_envs:
            self.reset(env)
        sim_obs = env._obs
        restart = (env.steps == 0) | self._fresh
        if np.any(restart):
            self._restart(env, np.flatnonzero(restart), sim_obs)
            self._fresh[:] = False
        self.jmode[:] = False
        self.actual_rot, self.actual_pos = self.ik.palm_pose(sim_obs.qpos)
        rot_goal, pos_goal, hand = self._targets(env, sim_obs)
        self._move(rot_goal, pos_goal)
        arm = self.ik.solve(self.q[:, spec.ARM], self.rot, self.pos)
        arm = np.where(self.jmode[:, None], self.jgoal, arm)
        # no faster than the arm's targets may move: the commanded pose is then where the arm will be
        step = arm - self.q[:, spec.ARM]
        scale = np.minimum(1.0, self.max_joint_step / np.maximum(np.abs(step).max(1, keepdims=True), 1e-9))
        self.q[:, spec.ARM] += step * scale
        slow = (scale[:, 0] < 1.0) | self.jmode
        if np.any(slow):
            q = self.q.copy()
            q[:, spec.HAND] = 0.0
            r, p = self.ik.palm_pose(q[slow])
            self.rot[slow], self.pos[slow] = r, p
        self.q[:, spec.HAND] = hand
        self.t += 1
        return spec.SCALER.scale(spec.clip_to_limits(self.q)).astype(np.float32)

    def _move(self, rot_goal: np.ndarray, pos_goal: np.ndarray) -> None:
        """Advance the commanded palm pose toward the goal at bounded speeds."""
        d = pos_goal - self.pos
        dist = np.linalg.norm(d, axis=1, keepdims=True)
        self.pos = self.pos + d * np.minimum(1.0, self.speed * DT / np.maximum(dist, 1e-9))
        rel = np.einsum("nji,njk->nik", self.rot, rot_goal)  # rot^T rot_goal
        angle = np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1))
        frac = np.minimum(1.0, self.turn * DT / np.maximum(angle, 1e-9))
        self.rot = np.einsum("nij,njk->nik", self.rot, _rotation_power(rel, frac))

    def _advance(self, mask: np.ndarray, to: int | None = None) -> None:
        self.phase = np.where(mask, self.phase + 1 if to is None else to, self.phase)
        self.t = np.where(mask, -1, self.t)  # 0 at the new phase's first step (__call__ counts on)

    def _turned(self, rot_goal: np.ndarray, tol: float = 0.05) -> np.ndarray:
        rel = np.einsum("nji,njk->nik", self.rot, rot_goal)
        return np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)) < tol

    def _reached(self, pos_goal: np.ndarray, tol: float = 0.005) -> np.ndarray:
        return np.linalg.norm(self.pos - pos_goal, axis=1) < tol

    def _settled(self, tol: float = 0.005) -> np.ndarray:
        """The arm has caught up with the commanded palm position (within tol)."""
        return np.linalg.norm(self.actual_pos - self.pos, axis=1) < tol


def _axis_rotation(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations by angle (N,) about unit axes (N, 3) (Rodrigues)."""
    k = np.zeros((len(angle), 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k = k - k.transpose(0, 2, 1)
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def _rotation_power(rel: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """rel^frac for rotations (N, 3, 3), fractions (N,): axis-angle scaled."""
    angle = np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1))
    axis = np.stack([rel[:, 2, 1] - rel[:, 1, 2], rel[:, 0, 2] - rel[:, 2, 0], rel[:, 1, 0] - rel[:, 0, 1]], -1)
    norm = np.linalg.norm(axis, axis=1, keepdims=True)
    small = norm[:, 0] < 1e-9
    axis = np.where(small[:, None], [1.0, 0.0, 0.0], axis / np.maximum(norm, 1e-12))
    a = angle * frac
    k = np.zeros((len(a), 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k = k - k.transpose(0, 2, 1)
    s, c = np.sin(a)[:, None, None], np.cos(a)[:, None, None]
    out = np.eye(3) + s * k + (1 - c) * (k @ k)
    return np.where(small[:, None, None], np.eye(3), out)


# ---------------------------------------------------------------- grasping
# Hand shapes (16 hand joints, radians): index, middle, ring (base, proximal, medial, distal), thumb.
def _hand(fingers: tuple[float, float, float, float], thumb: tuple[float, float, float, float]) -> np.ndarray:
    return np.array(list(fingers) * 3 + list(thumb))


# Open: fingers straight, the thumb half rotated toward opposition, stretched
# (pointing ahead and up, clear of the object). Closed: every joint past contact.
SIDE_OPEN = _hand((0.0, 0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0))
SIDE_CLOSED = _hand((0.0, 1.6, 1.7, 1.6), (1.396, 1.1, 1.6, 1.7))
TOP_OPEN = _hand((0.0, 0.0, 0.0, 0.0), (0.8, 0.0, 0.0, 0.0))
TOP_CLOSED = _hand((0.0, 1.4, 1.4, 1.2), (1.396, 0.9, 1.3, 1.2))
FLAT_OBJECT = 0.06  # m: objects lower than this are grasped from above, others from the side
# An elbow-up arm posture (wrist above the forearm) from which the IK reaches side
# grasps over the table with the wrist's offset link above the flange, not under it.
READY_SEED = np.array([-0.05, 0.93, 0.37, 1.32, -1.32, 1.98, 1.25])
READY_BEARING = float(np.arctan2(-0.1, 0.5))  # rad: the object's bearing READY_SEED was found for


def _hand_geometry(model: mujoco.MjModel, hand: np.ndarray) -> list[tuple]:
    """The hand's collision geoms for hand joints ``hand`` (16,), relative to the
    palm frame: (type, size, rotation, position) each."""
    data = mujoco.MjData(model)
    names = [model.joint(j).qposadr[0] for j in spec.JOINT_NAMES]
    data.qpos[names] = np.concatenate([spec.DEFAULT_ARM_POSE, hand])
    mujoco.mj_kinematics(model, data)
    palm = model.body("palm").id
    rp, pp = data.xmat[palm].reshape(3, 3), data.xpos[palm]
    sub = {palm}
    for b in range(model.nbody):
        if model.body_parentid[b] in sub and b != 0:
            sub.add(b)
    out = []
    for g in range(model.ngeom):
        if model.geom_bodyid[g] in sub and model.geom_contype[g]:
            rg = data.geom_xmat[g].reshape(3, 3)
            out.append((int(model.geom_type[g]), model.geom_size[g].copy(), rp.T @ rg, rp.T @ (data.geom_xpos[g] - pp)))
    return out


def _lowest_point(geoms: list[tuple], rot: np.ndarray) -> np.ndarray:
    """(N,) lowest z of the hand's geoms (``_hand_geometry``) relative to the palm origin, palm rotations (N, 3, 3)."""
    low = np.full(len(rot), np.inf)
    for kind, size, r, p in geoms:
        rw = rot @ r  # (N, 3, 3)
        if kind == mujoco.mjtGeom.mjGEOM_BOX:
            ext = np.abs(rw[:, 2, :]) @ size
        else:  # capsule: radius, half length along its z
            ext = np.abs(rw[:, 2, 2]) * size[1] + size[0]
        low = np.minimum(low, (rot @ p)[:, 2] - ext)
    return low


class GraspLiftExpert(_Expert):
    """Grasp (from the side, or from above for flat objects), lift to the goal (module doc).

    Side grasp: the palm faces the object horizontally (its normal along one
    of the object's horizontal faces, or along the radial direction turned a
    little counter-clockwise for a round object: directions the arm reaches
    with margin), fingers pointing to the right of the approach, thumb up and
    half turned toward opposition; the hand comes in level until the palm
    touches the object, the fingers wrap around its far side and the thumb
    closes on its near side.

    Phases: CLEAR (palm straight up), READY (joint space, to an elbow-up
    posture above the object: the IK then stays on that branch), REACH (the
    grasp is re-planned from the settled object), LOWER, FORWARD (each waits
    for the arm to catch up with the commanded palm), CLOSE, LIFT.
    """

    CLEAR, READY, REACH, LOWER, FORWARD, CLOSE, LIFT = range(7)
    clear_height = 0.45  # m: the palm rises to this height first, clear of the tallest object
    ready_height = 0.40  # m: palm height of the ready posture, above the pre-grasp pose
    back = 0.06  # m, pre-grasp distance behind the grasp pose (side) / above it (top)
    grip_z = 0.01  # m, palm-frame z (along the fingers) of the object's axis at the grasp
    gap = 0.0  # m between the palm and the object at the grasp
    approach_bias = 0.3  # rad: a round object's approach, turned counter-clockwise from radial
    max_width = 0.105  # m: widest object span the side grasp takes between palm and fingertips
    depth_cost = 40.0  # 1/m: a box is grasped across its narrow side unless that turns the approach far
    close_steps = 10
    settle_steps = 6
    settle_tol = 0.006  # m: the palm is this close to its commanded position before it moves on
    settle_timeout = 40  # steps: ... or has tried this long (held back by a contact)
    forward_speed = 0.15  # m/s, the last approach to the object
    flat_object = FLAT_OBJECT
    ready_seed = READY_SEED
    lost_distance = 0.08  # m: the object this far from where the hand holds it has been dropped: try again
    release_phase = 99  # phases from here on open the hand on purpose
    table_clearance = -0.004  # m between the open hand's lowest point and the table at the grasp (< 0: the
    # ring finger's tip, which hangs lowest, grazes the table: the grasp sits as low as it can on short objects)

    def reset(self, env) -> None:
        super().reset(env)
        n = self.n
        self.rot_grasp = np.tile(np.eye(3), (n, 1, 1))
        self.p_grasp, self.p_pre, self.p_clear, self.p_ready = (np.zeros((n, 3)) for _ in range(4))
        self.open_hand, self.closed_hand = np.zeros((n, 16)), np.zeros((n, 16))
        self.offset = np.zeros((n, 3))
        self.q_ready = np.zeros((n, spec.NUM_ARM_JOINTS))
        self._hand_geoms = _hand_geometry(_unwrap(env).sim.model, SIDE_OPEN)

    def _plan(self, env, ids, obs) -> None:
        self._plan_grasp(ids, obs)
        self.p_clear[ids] = self.pos[ids]
        self.p_clear[ids, 2] = np.maximum(self.pos[ids, 2], self.clear_height)
        self.p_ready[ids] = self.p_pre[ids]
        self.p_ready[ids, 2] = np.maximum(self.p_pre[ids, 2] + 0.10, self.ready_height)
        q = self._seed(self.p_pre[ids])
        for _ in range(8):
            q = self.ik.solve(q, self.rot_grasp[ids], self.p_ready[ids], iterations=10)
        self.q_ready[ids] = q

    def _plan_grasp(self, ids, obs) -> None:
        """Grasp pose, pre-grasp pose and hand shapes for envs ``ids`` from their object's cloud."""
        k = len(ids)
        cloud = obs.object_pc[ids].astype(np.float64)
        centre = obs.object_pose[ids, :3].copy()
        top, bottom = cloud[:, :, 2].max(1), cloud[:, :, 2].min(1)
        top, rest = top - bottom, centre[:, 2] - bottom  # as it stands on the table (it may be still falling)
        xy = cloud[:, :, :2] - centre[:, None, :2]
        radial = centre[:, :2] / np.linalg.norm(centre[:, :2], axis=1, keepdims=True)
        side_rot, side_pos = self._side_candidates(xy, centre, top, rest, radial)  # (k, C, 3, 3), (k, C, 3)
        flat = top < self.flat_object
        # --- side grasp: the candidate the arm reaches (and the hand prefers)
        c_ = side_rot.shape[1]
        q = np.repeat(self._seed(centre), c_, axis=0)
        rr, pp = side_rot.reshape(-1, 3, 3), side_pos.reshape(-1, 3)
        for _ in range(6):
            q = self.ik.solve(q, rr, pp, iterations=10)
        full = np.zeros((len(q), spec.NUM_JOINTS))
        full[:, spec.ARM] = q
        r_err = np.linalg.norm(self.ik.palm_pose(full)[1] - pp, axis=1).reshape(k, c_)
        best = (self._side_score - 10.0 * (r_err > 0.005)).argmax(1)
        rot_side, p_side = side_rot[np.arange(k), best], side_pos[np.arange(k), best]
        pre_side = p_side - self.back * rot_side[:, :, 0]
        # --- top grasp (flat objects): palm down, fingers straight out from the robot
        rot_top = frame(np.tile([0.0, 0.0, -1.0], (k, 1)), np.concatenate([radial, np.zeros((k, 1))], 1))
        grip_top = np.stack([np.zeros(k), np.zeros(k), np.full(k, 0.035)], 1)
        target_top = np.concatenate([centre[:, :2], (top + 0.011 + 0.005)[:, None]], 1)
        p_top = target_top - np.einsum("nij,nj->ni", rot_top, grip_top)
        pre_top = p_top + [0.0, 0.0, self.back]
        s = ~flat[:, None]
        self.rot_grasp[ids] = np.where(s[..., None], rot_side, rot_top)
        self.p_grasp[ids] = np.where(s, p_side, p_top)
        self.p_pre[ids] = np.where(s, pre_side, pre_top)
        self.open_hand[ids] = np.where(s, SIDE_OPEN, TOP_OPEN)
        self.closed_hand[ids] = np.where(s, SIDE_CLOSED, TOP_CLOSED)

    def _seed(self, where: np.ndarray) -> np.ndarray:
        """(k, 7) IK seeds for palm poses near ``where`` (k, 3): READY_SEED turned to their bearing."""
        q = np.tile(self.ready_seed, (len(where), 1))
        q[:, 0] += np.arctan2(where[:, 1], where[:, 0]) - READY_BEARING
        return q

    def _side_candidates(self, xy, centre, top, rest, radial):
        """Side-grasp palm poses (k, 5, 3, 3), (k, 5, 3) for five approach directions: a
        round object's preferred one (radial turned by ``approach_bias``) and a box's four
        face normals; sets ``_side_score`` (k, 5), higher is better."""
        k = len(xy)
        w, v = np.linalg.eigh(np.einsum("npi,npj->nij", xy, xy))
        round_ = w[:, 0] / np.maximum(w[:, 1], 1e-12) > 0.6
        c, s_ = np.cos(self.approach_bias), np.sin(self.approach_bias)
        preferred = np.stack([c * radial[:, 0] - s_ * radial[:, 1], s_ * radial[:, 0] + c * radial[:, 1]], 1)
        faces = np.concatenate([v.transpose(0, 2, 1), -v.transpose(0, 2, 1)], 1)  # (k, 4, 2)
        d = np.concatenate([preferred[:, None], faces], 1)  # (k, 5, 2)
        across = np.concatenate([preferred[:, None] @ np.array([[0.0, -1.0], [1.0, 0.0]]), faces[:, [1, 0, 3, 2]]], 1)
        depth = (-np.einsum("npi,nci->ncp", xy, d)).max(2)  # the object's extent toward the palm
        width = 2 * np.abs(np.einsum("npi,nci->ncp", xy, across)).max(2)  # and across the approach
        valid = np.concatenate([round_[:, None], np.repeat(~round_[:, None], 4, 1)], 1)
        self._side_score = (
            np.einsum("nci,ni->nc", d, preferred) - self.depth_cost * depth
            - 10.0 * (width > self.max_width) - 100.0 * ~valid
        )  # fmt: skip
        d3 = np.concatenate([d, np.zeros((k, 5, 1))], 2)
        z3 = np.stack([d[..., 1], -d[..., 0], np.zeros((k, 5))], 2)  # fingers: the approach turned -90° about z
        rot = frame(d3.reshape(-1, 3), z3.reshape(-1, 3)).reshape(k, 5, 3, 3)
        grip = np.stack([depth + 0.011 + self.gap, np.zeros((k, 5)), np.full((k, 5), self.grip_z)], 2)
        offset = np.einsum("ncij,ncj->nci", rot, grip)  # palm origin -> object axis
        lowest = _lowest_point(self._hand_geoms, rot.reshape(-1, 3, 3)).reshape(k, 5)  # of the open hand
        height = np.maximum(np.minimum(rest, top - 0.02)[:, None], offset[..., 2] - lowest + self.table_clearance)
        target = np.concatenate([np.repeat(centre[:, None, :2], 5, 1), height[..., None]], 2)
        return rot, target - offset

    def _lift_goal(self, env) -> np.ndarray:
        return env.goal

    def _grasp_targets(self, env, obs):
        """Targets of the phases up to CLOSE (shared with the throw expert)."""
        # an object that left the hand after the grasp (dropped): start again from the top
        held = self.actual_pos - self.offset
        lost = (self.phase >= self.LIFT) & (self.phase < self.release_phase) & (self.t > 0)
        lost &= np.linalg.norm(obs.object_pose[:, :3] - held, axis=1) > self.lost_distance
        if np.any(lost):
            ids = np.flatnonzero(lost)
            self.pos[ids], self.rot[ids] = self.actual_pos[ids], self.actual_rot[ids]
            self.phase[ids] = self.CLEAR
            self.t[ids] = 0
            self._plan(env, ids, obs)
        ph = self.phase
        goal = self.pos.copy()
        hand = self.open_hand.copy()
        m = ph == self.CLEAR  # straight up, out of the way
        goal[m] = self.p_clear[m]
        hand[m] = self.q[m, spec.HAND]  # as it is
        self._advance(m & self._reached(self.p_clear, 0.01))
        m = ph == self.READY  # in joint space, to the ready posture
        self.jmode |= m
        self.jgoal[m] = self.q_ready[m]
        self._advance(m & (np.abs(self.q[:, spec.ARM] - self.q_ready).max(1) < 0.01) & self._settled(0.02))
        m = ph == self.REACH  # above the pre-grasp pose (re-planned from the settled object)
        first = m & (self.t == 0)
        if np.any(first):
            self._plan_grasp(np.flatnonzero(first), obs)
        high = self.p_pre + [0.0, 0.0, 0.10]
        goal[m] = high[m]
        self._advance(m & self._reached(high, 0.01) & self._turned(self.rot_grasp))
        m = ph == self.LOWER
        goal[m] = self.p_pre[m]
        self._advance(m & self._reached(self.p_pre) & (self._settled(self.settle_tol) | (self.t > self.settle_timeout)))
        m = ph == self.FORWARD
        d = self.p_grasp - self.pos
        dist = np.linalg.norm(d, axis=1, keepdims=True)
        slow = self.pos + d * np.minimum(1.0, self.forward_speed * DT / np.maximum(dist, 1e-9))
        goal[m] = slow[m]
        self._advance(m & self._reached(self.p_grasp) & (self._settled(self.settle_tol) | (self.t > self.settle_timeout)))
        m = ph == self.CLOSE
        a = np.clip(self.t / self.close_steps, 0, 1)[:, None]
        closing = (1 - a) * self.open_hand + a * self.closed_hand
        closing[:, THUMB[0] - 7] = self.closed_hand[:, THUMB[0] - 7]
        hand = np.where(m[:, None], closing, hand)
        self._advance(m & (self.t >= self.close_steps + self.settle_steps))
        return goal, hand

    def _targets(self, env, obs):
        goal, hand = self._grasp_targets(env, obs)
        ph = self.phase
        m = ph >= self.LIFT
        start = (ph == self.LIFT) & (self.t == 0)
        self.offset[start] = self.actual_pos[start] - obs.object_pose[start, :3]  # palm relative to the object, as grasped
        goal[m] = (self._lift_goal(env) + self.offset)[m]
        hand = np.where(m[:, None], self.closed_hand, hand)
        return self.rot_grasp, goal, hand


class GraspThrowExpert(GraspLiftExpert):
    """The lift expert's grasp, then up, over the basket, open the hand (module doc)."""

    CARRY, RELEASE = 7, 8
    release_phase = RELEASE
    lift_height = 0.30  # m, the object's height before it is carried
    drop_height = 0.04  # m between the basket's rim and the object's bottom at release
    drop_tol = 0.015  # m: the object's centre is this close above the basket's centre at release

    def _targets(self, env, obs):
        goal, hand = self._grasp_targets(env, obs)
        ph = self.phase
        start = (ph == self.LIFT) & (self.t == 0)
        self.offset[start] = self.actual_pos[start] - obs.object_pose[start, :3]
        up = self.p_start.copy()
        up[:, 2] = self.lift_height
        m = ph == self.LIFT
        goal[m] = (up + self.offset)[m]
        self._advance(m & self._reached(up + self.offset, 0.01) & (self.t > 5))
        # over the basket, closed on the object's position: the palm moves by the object's offset from
        # the drop point (its centre above the basket's, its bottom `drop_height` above the rim)
        rim = np.asarray(env.basket.rim_center)
        drop = np.tile(rim, (self.n, 1))
        drop[:, 2] += self.drop_height + self.rest_height
        m = ph == self.CARRY
        error = drop - obs.object_pose[:, :3]
        over = self.pos + error
        goal[m] = over[m]
        # turned about the vertical as the arm swings round its base: the hand keeps its bearing to the arm
        yaw = np.arctan2(rim[1], rim[0]) - np.arctan2(self.p_start[:, 1], self.p_start[:, 0])
        rot = self.rot_grasp.copy()
        rot[m] = _axis_rotation(np.tile([0.0, 0.0, 1.0], (int(m.sum()), 1)), yaw[m]) @ self.rot_grasp[m]
        self._advance(m & (np.linalg.norm(error[:, :2], axis=1) < self.drop_tol) & (np.abs(error[:, 2]) < 0.02))
        m = ph == self.RELEASE
        goal[m] = self.pos[m]
        hand = np.where(((ph == self.LIFT) | (ph == self.CARRY))[:, None], self.closed_hand, hand)
        rot[m] = self.rot[m]
        hand = np.where(m[:, None], self.open_hand, hand)
        return rot, goal, hand

    def reset(self, env) -> None:
        super().reset(env)
        self.p_start = np.zeros((self.n, 3))
        self.rest_height = np.zeros(self.n)

    def _plan(self, env, ids, obs) -> None:
        super()._plan(env, ids, obs)
        self.p_start[ids] = obs.object_pose[ids, :3]
        self.rest_height[ids] = obs.object_pose[ids, 2] - obs.object_pc[ids, :, 2].min(1)


class OpenCabinetExpert(_Expert):
    """Hook two fingers behind the drawer's handle from above, pull it out (module doc).

    Palm down, fingers toward the cabinet, shifted sideways so that the index
    and middle fingers fall between the handle's posts; those two fingers are bent down at the medial joint
    and lowered into the gap between the bar and the drawer front, then
    curled under the bar; the thumb closes in front of it. The palm then
    moves straight back. (The ring finger, which would land on a post, is
    curled into a fist in front of the bar.)
    """

    UP, REACH, LOWER, HOOK, PULL, HOLD = range(6)
    safe_height = 0.36
    bar_z = 0.045  # m, palm-frame z (along the fingers) of the bar's axis
    pull_to = 0.37  # m of opening the palm is driven to
    speed = 0.25

    def _plan(self, env, ids, obs) -> None:
        if not hasattr(self, "p_up"):
            n = self.n
            self.p_up = np.zeros((n, 3))
            self.rot_grasp = frame(np.tile([0.0, 0.0, -1.0], (n, 1)), np.tile([1.0, 0.0, 0.0], (n, 1)))
        cab = env.cabinet
        self.handle = cab.handle_closed
        clearance = cab.handle_radius + 0.0098 + 0.004  # bar surface to the fingers' axis plane
        shift = -0.0225  # along y (= the palm's y): index and middle between the posts
        self.p_hook = self.handle + np.array([-self.bar_z, shift, clearance])
        self.p_above = self.p_hook + [0.0, 0.0, 0.12]
        self.p_up[ids] = self.pos[ids]
        self.p_up[ids, 2] = np.maximum(self.pos[ids, 2], self.safe_height)

    # hand shapes
    OPEN = _hand((0.0, 0.0, 0.0, 0.0), (0.263, 0.0, 0.0, 0.0))
    FIST = [0.0, 1.55, 1.7, 1.6]  # the ring finger, curled out of the way in front of the bar (short of its limit)
    BENT = np.concatenate([[0.0, 0.0, 1.55, 0.0], [0.0, 0.0, 1.55, 0.0], FIST, [1.0, 0.0, 0.0, 0.0]])
    HOOKED = np.concatenate([[0.0, 0.3, 1.6, 1.6], [0.0, 0.3, 1.6, 1.6], FIST, [1.396, 0.6, 1.0, 1.0]])

    def _targets(self, env, obs):
        ph = self.phase
        goal = self.p_up.copy()
        hand = np.tile(self.OPEN, (self.n, 1))
        rot = self.rot_grasp
        m = ph == self.UP
        self._advance(m & self._reached(self.p_up, 0.01) & self._turned(rot))
        m = ph == self.REACH
        goal[m] = self.p_above
        hand[m] = self.BENT
        self._advance(m & self._reached(self.p_above, 0.005) & (self.t > 8))
        m = ph == self.LOWER
        goal[m] = self.p_hook
        hand[m] = self.BENT
        self._advance(m & self._reached(self.p_hook, 0.004) & (self.t > 3))
        m = ph == self.HOOK
        goal[m] = self.p_hook
        hand[m] = self.HOOKED
        self._advance(m & (self.t > 10))
        m = ph >= self.PULL
        pulled = self.p_hook - [self.pull_to, 0.0, 0.0]
        goal[m] = pulled
        hand[m] = self.HOOKED
        return rot, goal, hand


EXPERTS = {"GraspLift-v0": GraspLiftExpert, "GraspThrow-v0": GraspThrowExpert, "OpenCabinet-v0": OpenCabinetExpert}


def make_expert(task_name: str) -> _Expert:
    """The expert of task ``task_name`` (``GraspLift-v0`` or ``hop/GraspLift-v0``, ...)."""
    short = task_name.split("/", 1)[1] if task_name.startswith("hop/") else task_name
    if short not in EXPERTS:
        raise ValueError(f"no expert for task {task_name!r}; tasks: {sorted(EXPERTS)}")
    return EXPERTS[short]()
