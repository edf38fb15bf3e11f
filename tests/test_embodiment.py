"""The robot model (hop_robot/embodiment/model.xml + model.py) against spec.py and the
xArm7's published kinematics, with real MuJoCo."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import mujoco
import numpy as np
import pytest

from hop_robot.embodiment import model as M
from hop_robot.embodiment import spec as S


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return M.load_model()


# ---------------------------------------------------------------- structure
def test_compiles_with_sim_options(model):
    assert model.opt.timestep == pytest.approx(1.0 / S.SIM_HZ)
    assert model.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    assert np.allclose(model.opt.gravity, [0, 0, -9.81])
    assert model.nq == S.NUM_JOINTS and model.nv == S.NUM_JOINTS  # fixed base, robot only
    assert model.nu == S.NUM_JOINTS
    # no world geometry of its own: every geom belongs to a robot body
    assert (model.geom_bodyid > 0).all()
    assert model.body("link_base").pos.tolist() == [0, 0, 0]


def test_joints_match_spec(model):
    qi = M.joint_qpos_indices(model)
    assert qi.tolist() == list(range(S.NUM_JOINTS))  # spec order is qpos order
    for i, name in enumerate(S.JOINT_NAMES):
        j = model.joint(name)
        assert j.type[0] == mujoco.mjtJoint.mjJNT_HINGE
        assert j.limited[0]
        assert j.range == pytest.approx([S.JOINT_LOWER[i], S.JOINT_UPPER[i]])
        assert model.dof_armature[model.jnt_dofadr[j.id]] > 0


def test_actuators_match_spec(model):
    kp, kd, effort = S.per_joint_gains()
    ai = M.actuator_indices(model)
    for i, name in enumerate(S.JOINT_NAMES):
        a = ai[i]
        assert model.actuator(a).name == name
        assert model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT
        assert model.actuator_trnid[a, 0] == model.joint(name).id
        assert model.actuator_gainprm[a, 0] == pytest.approx(kp[i])
        assert model.actuator_biasprm[a, :3] == pytest.approx([0.0, -kp[i], -kd[i]])
        assert model.actuator_forcelimited[a] and model.actuator_ctrllimited[a]
        assert model.actuator_forcerange[a] == pytest.approx([-effort[i], effort[i]])
        assert model.actuator_ctrlrange[a] == pytest.approx([S.JOINT_LOWER[i], S.JOINT_UPPER[i]])


def test_home_keyframe_and_sites(model):
    key = model.key("home")
    assert key.qpos[M.joint_qpos_indices(model)] == pytest.approx(S.DEFAULT_POSE)
    assert key.ctrl[M.actuator_indices(model)] == pytest.approx(S.DEFAULT_POSE)
    si = M.site_indices(model)
    assert [model.site(i).name for i in si] == list(S.KEYPOINT_SITES)
    model.site("ee")
    for body in ["link_base", *[f"link{i}" for i in range(1, 8)], "palm"]:
        model.body(body)
    assert model.body(model.site_bodyid[model.site("ee").id]).name == "link7"
    assert model.body(model.site_bodyid[model.site("kp_palm").id]).name == "palm"
    # the built-in hand weighs about what an Allegro does, the whole robot about an xArm7 + hand
    assert 0.8 < model.body_subtreemass[model.body("palm").id] < 1.3
    assert 12.0 < model.body_subtreemass[model.body("link_base").id] < 16.0


def test_keypoints_geometry_at_home(model):
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, model.key("home").id)
    mujoco.mj_kinematics(model, data)
    kp = dict(zip(S.KEYPOINT_SITES, M.keypoints(model, data)))
    scale = M.hand_scale_reference(model)
    assert scale == pytest.approx(np.linalg.norm(kp["kp_middle_base"] - kp["kp_palm"]))
    assert 0.08 < scale < 0.15
    # open hand: tips farther from the palm keypoint than their bases, fingers ~0.1 m long
    for f in S.FINGERS:
        base, tip = kp[f"kp_{f}_base"], kp[f"kp_{f}_tip"]
        assert np.linalg.norm(tip - kp["kp_palm"]) > np.linalg.norm(base - kp["kp_palm"])
        assert 0.06 < np.linalg.norm(tip - base) < 0.13
    # the palm extends along the flange z axis: fingers point away from the arm
    flange_z = data.site("ee").xmat.reshape(3, 3)[:, 2]
    assert np.dot(kp["kp_middle_tip"] - data.site("ee").xpos, flange_z) > 0.2


# ---------------------------------------------------------------- kinematics
# xArm7 standard DH table (UFactory): (d, alpha, a) per joint, theta = q (no offsets).
_XARM7_DH = [
    (0.267, -np.pi / 2, 0.0),
    (0.0, np.pi / 2, 0.0),
    (0.293, np.pi / 2, 0.0525),
    (0.0, np.pi / 2, 0.0775),
    (0.3425, np.pi / 2, 0.0),
    (0.0, -np.pi / 2, 0.076),
    (0.097, 0.0, 0.0),
]


def _dh_flange(q: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    for (d, alpha, a), theta in zip(_XARM7_DH, q):
        ct, st, ca, sa = np.cos(theta), np.sin(theta), np.cos(alpha), np.sin(alpha)
        T = T @ np.array(
            [[ct, -st * ca, st * sa, a * ct], [st, ct * ca, -ct * sa, a * st], [0, sa, ca, d], [0, 0, 0, 1]]
        )
    return T


def test_flange_matches_published_fk(model):
    data = mujoco.MjData(model)
    qi = M.joint_qpos_indices(model)
    rng = np.random.default_rng(0)
    configs = [np.zeros(7), S.DEFAULT_ARM_POSE] + [
        rng.uniform(S.JOINT_LOWER[S.ARM], S.JOINT_UPPER[S.ARM]) for _ in range(5)
    ]
    # xArm7 zero pose: the tool flange at (206, 0, 120.5) mm, pointing down
    assert _dh_flange(configs[0])[:3, 3] == pytest.approx([0.206, 0.0, 0.1205], abs=1e-9)
    for q in configs:
        data.qpos[qi[S.ARM]] = q
        mujoco.mj_kinematics(model, data)
        T = _dh_flange(q)
        assert np.abs(data.site("ee").xpos - T[:3, 3]).max() < 1e-3
        assert np.abs(data.site("ee").xmat.reshape(3, 3) - T[:3, :3]).max() < 1e-3
        assert data.body("link7").xpos == pytest.approx(data.site("ee").xpos)


# ---------------------------------------------------------------- dynamics
def _track(model, target: np.ndarray, seconds: float = 2.0):
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, model.key("home").id)
    qi, ai = M.joint_qpos_indices(model), M.actuator_indices(model)
    max_speed = 0.0
    for _ in range(int(seconds * S.CONTROL_HZ)):
        data.ctrl[ai] = target  # one 20 Hz action ...
        for _ in range(S.SUBSTEPS):  # ... PD-tracked over 6 substeps at 120 Hz
            mujoco.mj_step(model, data)
        assert np.isfinite(data.qpos).all() and np.isfinite(data.qvel).all()
        max_speed = max(max_speed, float(np.abs(data.qvel).max()))
    return data, data.qpos[qi].copy(), max_speed


def test_pd_tracking_converges(model):
    rng = np.random.default_rng(3)
    grasp = np.array([0.0, 0.6, 0.6, 0.4] * 3 + [1.0, 0.5, 0.4, 0.3])
    targets = []
    for k in range(3):
        t = np.asarray(S.DEFAULT_POSE).copy()
        t[S.ARM] += rng.uniform(-0.4, 0.4, S.NUM_ARM_JOINTS)
        t[S.HAND] = grasp if k == 0 else rng.uniform(0.3, 0.6, S.NUM_HAND_JOINTS) * (
            S.JOINT_UPPER[S.HAND] - S.JOINT_LOWER[S.HAND]) + S.JOINT_LOWER[S.HAND]
        targets.append(S.clip_to_limits(t, 0.02))
    for target in targets:
        data, q, max_speed = _track(model, target)
        assert np.abs(q[S.ARM] - target[S.ARM]).max() < 0.01
        assert np.abs(q[S.HAND] - target[S.HAND]).max() < 0.05
        assert np.abs(data.qvel).max() < 1e-2  # settled, not oscillating
        assert max_speed < 20.0  # no blow-up on the way


def test_no_self_contact_at_home(model):
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, model.key("home").id)
    mujoco.mj_forward(model, data)
    assert data.ncon == 0
    data = mujoco.MjData(model)  # the xArm zero pose (open hand) is contact-free too
    mujoco.mj_forward(model, data)
    assert data.ncon == 0


def test_robot_collides_with_world_but_not_adjacent_links(model):
    # every robot geom collides with a default scene geom (contype = conaffinity = 1)
    for g in range(model.ngeom):
        assert (model.geom_contype[g] & 1) or (model.geom_conaffinity[g] & 1)
    spec = M.load_spec()
    spec.worldbody.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[2, 2, 0.1])
    m2 = spec.compile()
    data = mujoco.MjData(m2)
    data.qpos[M.joint_qpos_indices(m2)] = S.DEFAULT_POSE
    data.qpos[M.joint_qpos_indices(m2)[1]] = 1.6  # shoulder forward: the hand hits the floor
    mujoco.mj_forward(m2, data)
    floor = m2.geom("floor").id
    assert any(floor in (c.geom1, c.geom2) for c in data.contact[: data.ncon])


# ---------------------------------------------------------------- user models
def _builtin_xml() -> str:
    return S.model_path().read_text()


def test_user_model_via_env_and_path(tmp_path, monkeypatch):
    # a "user" model: same names, no actuators of its own and a wrong joint range;
    # load_spec adds the actuators and the spec ranges win
    xml = re.sub(r"<actuator>.*</actuator>", "", _builtin_xml(), flags=re.S)
    xml = xml.replace('range="-2.059 2.0944"', 'range="-1 1"')
    user = tmp_path / "user_robot.xml"
    user.write_text(xml)
    for via_env in (True, False):
        if via_env:
            monkeypatch.setenv(S.MODEL_ENV_VAR, str(user))
            m = M.load_model()
        else:
            monkeypatch.delenv(S.MODEL_ENV_VAR, raising=False)
            m = M.load_model(user)
        assert S.model_path(None if via_env else user) == user.resolve()
        assert m.nu == S.NUM_JOINTS
        assert m.jnt_range[m.joint("joint2").id] == pytest.approx([S.JOINT_LOWER[1], S.JOINT_UPPER[1]])
        assert m.actuator_gainprm[m.actuator("joint2").id, 0] == pytest.approx(S.ARM_GAINS.kp)
    # existing actuators with other gains are overwritten; stray ones on spec joints go
    xml = _builtin_xml().replace('kp="40" kv="5"', 'kp="3" kv="1"')
    xml = xml.replace('<position name="joint2" joint="joint2"', '<position name="joint2" joint="joint3"')
    xml = xml.replace("</actuator>", '<motor name="extra" joint="joint1"/></actuator>')
    user.write_text(xml)
    m = M.load_model(user)
    assert m.nu == S.NUM_JOINTS
    assert m.actuator_gainprm[m.actuator("thumb_distal").id, 0] == pytest.approx(S.HAND_GAINS.kp)
    for i, name in enumerate(S.JOINT_NAMES):
        assert m.actuator_trnid[m.actuator(name).id, 0] == m.joint(name).id


def test_user_model_missing_joint_or_site_is_refused(tmp_path):
    bad = tmp_path / "no_thumb_distal.xml"
    bad.write_text(_builtin_xml().replace('name="thumb_distal"', 'name="thumb_dist"'))
    with pytest.raises(ValueError, match=r"thumb_distal") as err:
        M.load_spec(bad)
    assert str(bad) in str(err.value)
    bad.write_text(_builtin_xml().replace('name="kp_ring_tip"', 'name="ring_tip_site"'))
    with pytest.raises(ValueError, match=r"kp_ring_tip"):
        M.load_spec(bad)
    with pytest.raises(FileNotFoundError):
        M.load_spec(tmp_path / "absent.xml")


# ---------------------------------------------------------------- CLI
def test_cli_describe_json():
    out = subprocess.run(
        [sys.executable, "-m", "hop_robot.cli", "describe", "--json"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    info = json.loads(out)
    for key in ("name", "joint_names", "joint_lower", "joint_upper", "default_pose", "gains",
                "control_hz", "sim_hz", "substeps", "keypoint_sites", "model_path"):
        assert key in info
    assert info["joint_names"] == list(S.JOINT_NAMES)
    assert info["keypoint_sites"] == list(S.KEYPOINT_SITES)
    assert info["model_path"] == str(S.model_path())


def test_cli_describe_table_and_bad_model(tmp_path, capsys):
    from hop_robot.cli import main

    assert main(["describe"]) == 0
    text = capsys.readouterr().out
    assert "thumb_distal" in text and "kp_palm" in text
    assert main(["describe", "--model", str(tmp_path / "absent.xml")]) == 2


def test_model_file_holds_no_copy_of_the_spec_facts():
    """Limits, gains, force limits and rates live in spec.py alone: the MJCF
    carries none, so load_spec is the only way they reach a simulation."""
    raw = mujoco.MjSpec.from_file(str(S.model_path())).compile()
    for name in S.JOINT_NAMES:
        assert not raw.jnt_limited[raw.joint(name).id], f"{name} has a range in model.xml"
    assert np.all(raw.actuator_gainprm[:, 0] == 1.0), "model.xml sets actuator gains"
    assert not np.any(raw.actuator_forcelimited), "model.xml sets force limits"
    assert raw.opt.timestep == pytest.approx(0.002)  # MuJoCo's default: the rate is spec.SIM_HZ's
