"""The motion of one video, in the z-up table frame: its timeline of
overlapping minimum-jerk sub-movements, the object's path, the wrist's path
and the fingers (see the package notes). Each step draws from the video's
generator in a fixed order: ``make_episode`` calls them in that order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hop_robot.geometry import matrix_to_quat, quat_to_matrix, slerp

from .grasp import Grasp
from .hand import Person, _rot
from .objects import ObjectShape

UP = np.array([0.0, 0.0, 1.0])
WORK_HEIGHT_M = 0.34  # the hand stays below this (a table-top robot's workspace)


# ================================================================ motion primitives
def min_jerk(tau: np.ndarray) -> np.ndarray:
    """Minimum-jerk position profile s(tau) = 10 tau^3 - 15 tau^4 + 6 tau^5, tau clipped to [0, 1]."""
    tau = np.clip(tau, 0.0, 1.0)
    return tau**3 * (10.0 - 15.0 * tau + 6.0 * tau**2)


def _bell(tau: np.ndarray) -> np.ndarray:
    """Smooth bump 16 tau^2 (1 - tau)^2: 0 at both ends with zero slope, 1 in the middle."""
    tau = np.clip(tau, 0.0, 1.0)
    return 16.0 * tau**2 * (1.0 - tau) ** 2


def _phase(t: np.ndarray, start: float, duration: float) -> np.ndarray:
    return (t - start) / duration


def _keyframes(t: np.ndarray, times: list[float], values: list[np.ndarray]) -> np.ndarray:
    """Piecewise minimum-jerk interpolation through (time, value) keys; held outside."""
    times_a = np.asarray(times)
    vals = np.stack(values)
    k = np.clip(np.searchsorted(times_a, t, side="right") - 1, 0, len(times_a) - 2)
    span = np.maximum(times_a[k + 1] - times_a[k], 1e-9)
    s = min_jerk((t - times_a[k]) / span)
    return vals[k] + (vals[k + 1] - vals[k]) * s[:, None]


def _slerp_matrices(R0: np.ndarray, R1: np.ndarray, s: np.ndarray) -> np.ndarray:
    q0, q1 = matrix_to_quat(R0), matrix_to_quat(R1)
    return quat_to_matrix(slerp(np.broadcast_to(q0, s.shape + (4,)), np.broadcast_to(q1, s.shape + (4,)), s))


# ================================================================ timeline (s)
@dataclass(frozen=True)
class Timeline:
    """When each sub-movement starts (``*0``), ends and lasts, in seconds, and the frame times."""

    fps: float
    tempo: float
    reach0: float
    reach: float  # duration of the reach
    final0: float
    final: float  # duration of the final approach
    arrive: float
    closed: float
    lift0: float
    lift: float
    move0: float
    move: float
    place0: float
    place: float
    placed: float
    rel0: float
    rel1: float
    ret0: float
    retreat: float
    ret1: float
    total: float
    t: np.ndarray  # (T,) frame times

    @property
    def preshape(self) -> tuple[float, float]:
        """The fingers pre-shape during the reach."""
        return self.reach0 + 0.1 * self.reach, self.reach0 + 0.75 * self.reach

    def phases(self) -> dict[str, tuple[float, float]]:
        return {
            "approach": (self.reach0, self.arrive),
            "preshape": self.preshape,
            "grasp": (self.arrive, self.closed),
            "lift": (self.lift0, self.lift0 + self.lift),
            "move": (self.move0, self.move0 + self.move),
            "place": (self.place0, self.placed),
            "release": (self.rel0, self.rel1),
            "retreat": (self.ret0, self.ret1),
        }


def timeline(rng: np.random.Generator, fps: float) -> Timeline:
    """Phase durations at a reference pace, then one tempo per person / video
    (total kept within 3-8 s). Sub-movements overlap as in human reaching."""
    u = rng.uniform
    d = {
        "wait": u(0.15, 0.4), "reach": u(0.7, 1.3), "final": u(0.3, 0.55), "close": u(0.25, 0.5),
        "hold": u(0.05, 0.25), "lift": u(0.5, 0.9), "move": u(0.7, 1.8), "place": u(0.5, 0.9),
        "settle": u(0.05, 0.2), "release": u(0.2, 0.4), "retreat": u(0.5, 1.0), "end": u(0.1, 0.4),
    }  # fmt: skip
    span = (d["wait"] + 0.75 * d["reach"] + d["final"] + d["close"] + d["hold"] + 0.7 * d["lift"] + d["move"]
            + 0.7 * d["place"] + d["settle"] + d["release"] - 0.1 + d["retreat"] + d["end"])  # fmt: skip
    tempo = float(np.clip(u(0.7, 1.3), 3.0 / span, 8.0 / span))
    d = {k: tempo * v for k, v in d.items()}
    t_reach0 = d["wait"]
    d_reach, d_final = d["reach"], d["final"]
    t_final0 = t_reach0 + 0.75 * d_reach
    t_arrive = t_final0 + d_final
    t_closed = t_arrive + d["close"]
    t_lift0 = t_closed + d["hold"]
    d_lift, d_move, d_place = d["lift"], d["move"], d["place"]
    t_move0 = t_lift0 + 0.7 * d_lift
    t_place0 = t_move0 + d_move - 0.3 * d_place
    t_placed = t_place0 + d_place
    t_rel0 = t_placed + d["settle"]
    t_rel1 = t_rel0 + d["release"]
    t_ret0 = t_rel1 - 0.1 * tempo
    d_ret = d["retreat"]
    t_ret1 = t_ret0 + d_ret
    total = t_ret1 + d["end"]
    T = int(round(total * fps))
    return Timeline(
        fps=fps, tempo=tempo, reach0=t_reach0, reach=d_reach, final0=t_final0, final=d_final, arrive=t_arrive,
        closed=t_closed, lift0=t_lift0, lift=d_lift, move0=t_move0, move=d_move, place0=t_place0, place=d_place,
        placed=t_placed, rel0=t_rel0, rel1=t_rel1, ret0=t_ret0, retreat=d_ret, ret1=t_ret1, total=total,
        t=np.arange(T) / fps,
    )  # fmt: skip


# ================================================================ rest pose
def rest_pose(rng: np.random.Generator, person: Person, grasp: Grasp) -> tuple[np.ndarray, np.ndarray]:
    """(R, p) of the wrist at rest: the hand starts relaxed, palm down, 18-28 cm
    short of its grasp pose and to its own side (right hands to the right),
    resting on or above the table."""
    u = rng.uniform
    R_rest = _rot("z", u(-0.1, 0.5)) @ _rot("y", u(0.0, 0.3)) @ _rot("x", u(-0.3, 0.3))
    p_rest = np.array([grasp.p[0] - u(0.18, 0.28), grasp.p[1] - u(0.0, 0.12), u(0.05, 0.10)])
    low = (p_rest + person.model.fk(person.rest) @ R_rest.T)[:, 2].min()
    p_rest[2] += max(0.0, 0.008 - low)
    return R_rest, p_rest


# ================================================================ object path
@dataclass(frozen=True)
class ObjectPath:
    p: np.ndarray  # (T, 3) position of the object's frame
    yaw: np.ndarray  # (T,)
    R: np.ndarray  # (T, 3, 3)
    p1: np.ndarray  # (3,) where it is set down
    lift: float  # how high it is lifted (m)


def object_path(
    rng: np.random.Generator, tl: Timeline, obj: ObjectShape, person: Person, grasp: Grasp, p_rest: np.ndarray
) -> ObjectPath:
    """Lifted, carried and set down 10-22 cm away with a yaw change, inside the
    +-0.12 m workspace square, keeping the wrist's path within a 0.4 m square."""
    u, t = rng.uniform, tl.t
    p_obj0, p_grasp = grasp.p_obj0, grasp.p
    dyaw = u(-0.5, 0.5)
    for _ in range(200):
        a, dist = u(-np.pi, np.pi), u(0.10, 0.22)
        p_obj1 = p_obj0 + dist * np.array([np.cos(a), np.sin(a), 0.0])
        wrist_place = p_obj1 + _rot("z", dyaw) @ (p_grasp - p_obj0)
        spread_xy = np.ptp(np.stack([p_rest, p_grasp, wrist_place])[:, :2], axis=0)
        if np.all(np.abs(p_obj1[:2]) <= 0.12) and np.all(spread_xy <= 0.4):
            break
    else:  # (never seen) fall back to a short move straight away from the body
        p_obj1 = p_obj0 + np.array([0.1, 0.0, 0.0])
    hand_grasp_local = person.model.fk(grasp.posture) @ grasp.R.T + p_grasp
    top = max(hand_grasp_local[:, 2].max(), p_obj0[2] + obj.half[2])
    lift = float(np.clip(min(u(0.10, 0.25), WORK_HEIGHT_M - top), 0.05, 0.25))
    s_lift, s_move, s_place = (
        min_jerk(_phase(t, t0, dt)) for t0, dt in ((tl.lift0, tl.lift), (tl.move0, tl.move), (tl.place0, tl.place))
    )
    p_obj = p_obj0 + np.outer(s_lift - s_place, [0.0, 0.0, lift]) + np.outer(s_move, p_obj1 - p_obj0)
    yaw = grasp.yaw0 + dyaw * s_move
    return ObjectPath(p=p_obj, yaw=yaw, R=_rot("z", yaw), p1=p_obj1, lift=lift)


# ================================================================ wrist path
def wrist_path(
    rng: np.random.Generator, tl: Timeline, grasp: Grasp, obj: ObjectPath, R_rest: np.ndarray, p_rest: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(p (T, 3), R (T, 3, 3)) of the wrist: reach in an arc to a pre-grasp
    pose, final approach, then rigidly with the object while it is held, then
    withdraw away from the palm and up, relaxing towards a rest orientation."""
    u, t = rng.uniform, tl.t
    R_grasp, p_grasp, p_obj0 = grasp.R, grasp.p, grasp.p_obj0
    p_pre = p_grasp + grasp.back * u(0.05, 0.09) + UP * u(0.02, 0.05)
    tau_reach = _phase(t, tl.reach0, tl.reach)
    p_wrist = (
        p_rest
        + np.outer(min_jerk(tau_reach), p_pre - p_rest)
        + np.outer(min_jerk(_phase(t, tl.final0, tl.final)), p_grasp - p_pre)
        + np.outer(_bell(tau_reach), UP * u(0.02, 0.06))
    )
    R_wrist = _slerp_matrices(R_rest, R_grasp, min_jerk(_phase(t, tl.reach0, 0.75 * tl.reach + 0.5 * tl.final)))
    held = t >= tl.lift0
    rel_R = obj.R @ grasp.R_obj0.T  # (T, 3, 3) object motion since the grasp
    R_wrist[held] = rel_R[held] @ R_grasp
    p_wrist[held] = obj.p[held] + np.einsum("tij,j->ti", rel_R[held], p_grasp - p_obj0)
    after = t >= tl.ret0
    R_place = rel_R[-1] @ R_grasp
    p_place = obj.p1 + rel_R[-1] @ (p_grasp - p_obj0)
    p_ret = p_place + R_place[:, 2] * u(0.05, 0.09) + UP * u(0.05, 0.10) + np.array([-u(0.02, 0.08), 0.0, 0.0])
    R_ret = _slerp_matrices(R_place, R_rest, np.array(u(0.3, 0.6)))
    tau_ret = _phase(t[after], tl.ret0, tl.retreat)
    p_wrist[after] = p_place + np.outer(min_jerk(tau_ret), p_ret - p_place) + np.outer(_bell(tau_ret), UP * u(0.0, 0.03))
    R_wrist[after] = _slerp_matrices(R_place, R_ret, min_jerk(tau_ret))
    return p_wrist, R_wrist


# ================================================================ fingers
def hand_joints(
    tl: Timeline, person: Person, grasp: Grasp, p_wrist: np.ndarray, R_wrist: np.ndarray
) -> np.ndarray:
    """(T, 21, 3) joints, table frame: the fingers go rest -> pre-shape -> grasp
    -> release -> rest; the wrist's path is raised where they would touch the
    table (or lowered where the hand would leave the work height)."""
    t, rest = tl.t, person.rest
    ps0, ps1 = tl.preshape
    posture = _keyframes(
        t,
        [0.0, ps0, ps1, tl.arrive, tl.closed, tl.rel0, tl.rel1, tl.ret1, max(tl.total, tl.ret1 + 1e-3)],
        [rest, rest, grasp.preshape, grasp.preshape, grasp.posture, grasp.posture, grasp.release, rest, rest],
    )
    local = person.model.fk(posture)
    p_wrist = p_wrist.copy()
    joints = p_wrist[:, None, :] + np.einsum("tij,tkj->tki", R_wrist, local)
    # A withdrawing hand must neither sink into the table as its fingers relax
    # nor rise above the work height: shift the withdrawal smoothly.
    after = t >= tl.ret0
    tau_ret = _phase(t[after], tl.ret0, tl.retreat)
    ramp = min_jerk(tau_ret) / max(min_jerk(tau_ret).max(), 1e-6)
    shortfall = np.max(0.005 - joints[after, :, 2].min(axis=1), initial=0.0)
    excess = np.max(joints[after, :, 2].max(axis=1) - WORK_HEIGHT_M, initial=0.0)
    if shortfall > 0.0 or excess > 0.0:
        p_wrist[after, 2] += ramp * (shortfall if shortfall > 0.0 else -excess)
        joints = p_wrist[:, None, :] + np.einsum("tij,tkj->tki", R_wrist, local)
    # Likewise a reaching hand whose fingers pre-shape near the table: a higher arc.
    bell = _bell(_phase(t, tl.reach0, tl.reach))
    reaching = bell > 0.05
    need = np.max((0.005 - joints[reaching, :, 2].min(axis=1)) / bell[reaching], initial=0.0)
    if need > 0.0:
        p_wrist[:, 2] += bell * min(need, 0.1)
        joints = p_wrist[:, None, :] + np.einsum("tij,tkj->tki", R_wrist, local)
    return joints
