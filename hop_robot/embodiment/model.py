"""Load the xArm7 + Allegro MJCF model with the embodiment facts of ``spec.py`` applied.

``load_spec`` is the entry point for anything that builds a simulation: it returns an
editable ``mujoco.MjSpec`` (a scene builder adds floor, table, objects and cameras to it),
in which joint ranges, position actuators (kp, kv, force limits, control ranges) and the
``home`` keyframe have been set from ``spec.py`` so that spec.py is the single source of
those numbers, whichever MJCF file is loaded. The file is ``spec.model_path(path)``: the
argument, else ``$HOP_ROBOT_MODEL``, else the built-in primitive-geometry model.

A user's higher-detail model must use the joint names of ``spec.JOINT_NAMES`` (hinge
joints) and the site names of ``spec.KEYPOINT_SITES``; anything missing is refused with a
``ValueError`` naming the file.
"""

from __future__ import annotations

import os

import mujoco
import numpy as np

from hop_robot.embodiment import spec as S

HOME_KEY = "home"


def _robot_root(mj: mujoco.MjSpec, joint_body: mujoco.MjsBody) -> mujoco.MjsBody:
    """The top-level body (child of the world body) that holds ``joint_body``."""
    body = joint_body
    while True:
        parent = body.parent
        if parent is None or parent.name == "world":
            return body
        body = parent


def _subtree(body: mujoco.MjsBody) -> list[mujoco.MjsBody]:
    return [body, *body.find_all(mujoco.mjtObj.mjOBJ_BODY)]


def load_spec(path: str | os.PathLike | None = None) -> mujoco.MjSpec:
    """The robot model as an ``MjSpec`` with spec.py's limits, actuators and home keyframe.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` when a joint of
    ``spec.JOINT_NAMES`` (as a hinge) or a site of ``spec.KEYPOINT_SITES`` is missing.
    """
    file = S.model_path(path)
    try:
        mj = mujoco.MjSpec.from_file(str(file))
    except Exception as exc:  # mujoco raises ValueError with a parser message
        raise ValueError(f"robot model {file}: cannot be parsed: {exc}") from exc

    # ------------------------------------------------------------ validate names
    missing_joints, not_hinge = [], []
    joints = {}
    for name in S.JOINT_NAMES:
        joint = mj.joint(name)
        if joint is None:
            missing_joints.append(name)
        elif joint.type != mujoco.mjtJoint.mjJNT_HINGE:
            not_hinge.append(name)
        else:
            joints[name] = joint
    missing_sites = [name for name in S.KEYPOINT_SITES if mj.site(name) is None]
    problems = []
    if missing_joints:
        problems.append("missing joints " + ", ".join(missing_joints))
    if not_hinge:
        problems.append("joints that are not hinges " + ", ".join(not_hinge))
    if missing_sites:
        problems.append("missing sites " + ", ".join(missing_sites))
    if problems:
        raise ValueError(
            f"robot model {file} does not match the {S.EMBODIMENT_NAME} embodiment: "
            + "; ".join(problems)
        )

    # ------------------------------------------------------------ joint limits
    for i, name in enumerate(S.JOINT_NAMES):
        joint = joints[name]
        joint.limited = mujoco.mjtLimited.mjLIMITED_TRUE
        joint.range = [float(S.JOINT_LOWER[i]), float(S.JOINT_UPPER[i])]

    # ------------------------------------------------------------ gravity compensation
    # The xArm controller and the Allegro PD loop both compensate gravity; model that
    # (without it the spec gains leave a ~0.04 rad sag at the shoulder).
    root = _robot_root(mj, joints[S.JOINT_NAMES[0]].parent)
    for body in _subtree(root):
        body.gravcomp = 1.0

    # ------------------------------------------------------------ position actuators
    kp, kd, effort = S.per_joint_gains()
    wanted = set(S.JOINT_NAMES)
    # Drop actuators that would fight the PD controller or take a spec joint's name for
    # something else: any other actuator on a spec joint, and a spec-named actuator that
    # does not drive its joint. What is left is at most one actuator per joint, named as it.
    for act in list(mj.actuators):
        on_joint = act.trntype == mujoco.mjtTrn.mjTRN_JOINT
        if (on_joint and act.target in wanted and act.name != act.target) or (
            act.name in wanted and not (on_joint and act.target == act.name)
        ):
            mj.delete(act)
    for i, name in enumerate(S.JOINT_NAMES):
        act = mj.actuator(name)
        if act is None:
            act = mj.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=float(kp[i]), kv=float(kd[i]))
        act.gear = [1.0, 0, 0, 0, 0, 0]
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.ctrlrange = [float(S.JOINT_LOWER[i]), float(S.JOINT_UPPER[i])]
        act.inheritrange = 0.0
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = [-float(effort[i]), float(effort[i])]

    # ------------------------------------------------------------ simulation rate
    mj.option.timestep = 1.0 / S.SIM_HZ
    mj.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST

    # ------------------------------------------------------------ home keyframe
    _set_home_key(mj)
    return mj


def _set_home_key(mj: mujoco.MjSpec) -> None:
    """Add keyframe ``home`` = spec.DEFAULT_POSE (replacing one of that name)."""
    old = mj.key(HOME_KEY)
    if old is not None:
        mj.delete(old)
    model = mj.compile()
    qpos = model.qpos0.copy()
    ctrl = np.zeros(model.nu)
    for i, name in enumerate(S.JOINT_NAMES):
        qpos[model.jnt_qposadr[model.joint(name).id]] = S.DEFAULT_POSE[i]
        ctrl[model.actuator(name).id] = S.DEFAULT_POSE[i]
    mj.add_key(name=HOME_KEY, qpos=qpos.tolist(), ctrl=ctrl.tolist())


def load_model(path: str | os.PathLike | None = None) -> mujoco.MjModel:
    """Compiled robot model (see ``load_spec``)."""
    return load_spec(path).compile()


def joint_qpos_indices(model: mujoco.MjModel) -> np.ndarray:
    """qpos addresses of spec.JOINT_NAMES, (23,) int, in spec order."""
    return np.array([model.jnt_qposadr[model.joint(n).id] for n in S.JOINT_NAMES], dtype=np.int64)


def joint_dof_indices(model: mujoco.MjModel) -> np.ndarray:
    """qvel / dof addresses of spec.JOINT_NAMES, (23,) int, in spec order."""
    return np.array([model.jnt_dofadr[model.joint(n).id] for n in S.JOINT_NAMES], dtype=np.int64)


def actuator_indices(model: mujoco.MjModel) -> np.ndarray:
    """ctrl indices of the position actuators named as spec.JOINT_NAMES, (23,) int."""
    return np.array([model.actuator(n).id for n in S.JOINT_NAMES], dtype=np.int64)


def site_indices(model: mujoco.MjModel) -> np.ndarray:
    """site ids of spec.KEYPOINT_SITES, (9,) int, in spec order."""
    return np.array([model.site(n).id for n in S.KEYPOINT_SITES], dtype=np.int64)


def keypoints(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """World positions of the keypoint sites, (9, 3), from ``data.site_xpos`` (call
    ``mj_forward`` / ``mj_kinematics`` first)."""
    return data.site_xpos[site_indices(model)].copy()


def hand_scale_reference(model: mujoco.MjModel) -> float:
    """kp_palm -> kp_middle_base distance (m) at spec.DEFAULT_POSE: the robot hand size
    that human hands (wrist -> middle MCP) are scaled to."""
    data = mujoco.MjData(model)
    data.qpos[joint_qpos_indices(model)] = S.DEFAULT_POSE
    mujoco.mj_kinematics(model, data)
    palm = data.site_xpos[model.site("kp_palm").id]
    middle = data.site_xpos[model.site("kp_middle_base").id]
    return float(np.linalg.norm(middle - palm))
