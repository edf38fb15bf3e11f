"""The batched MuJoCo backend: real MuJoCo, the real robot model."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from hop_robot.sim.mujoco_batch import MujocoSimulator
from hop_robot.sim import SceneConfig, SceneParams, Simulator
from hop_robot.sim.scene import SceneError, compile_scene, object_cloud
from hop_robot.embodiment import spec
from hop_robot.geometry import transform_points, yaw_quat


def box_points(half=(0.03, 0.04, 0.06), n=400, seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-1, 1, size=(n, 3))
    axis = np.argmax(np.abs(pts), axis=1)
    pts[np.arange(n), axis] = np.sign(pts[np.arange(n), axis])
    return pts * np.asarray(half)


def home(n):
    return np.tile(spec.DEFAULT_POSE, (n, 1))


def far_object(n):
    pose = np.zeros((n, 7))
    pose[:, 0], pose[:, 2], pose[:, 3] = 0.6, 0.3, 1.0
    return pose


@pytest.fixture(scope="module")
def sim4():
    sim = MujocoSimulator.from_points(box_points(), 4, nthread=2)
    yield sim
    sim.close()


def link_position(sim, name, qpos):
    data = mujoco.MjData(sim.model)
    data.qpos[sim.index.qpos] = qpos
    mujoco.mj_kinematics(sim.model, data)
    return data.xpos[sim.model.body(name).id].copy()


def test_protocol_and_shapes(sim4):
    assert isinstance(sim4, Simulator)
    obs = sim4.reset(home(4), far_object(4))
    assert obs.qpos.shape == (4, spec.NUM_JOINTS)
    assert obs.object_pc.shape == (4, 100, 3) and obs.object_pc.dtype == np.float32
    assert obs.keypoints.shape == (4, spec.NUM_KEYPOINTS, 3)
    assert obs.arm_contact.shape == (4,) and obs.arm_contact.dtype == bool


def test_holds_home_pose_without_contact(sim4):
    sim4.reset(home(4), far_object(4))
    for _ in range(20):
        obs = sim4.step(home(4), far_object(4))
    assert np.abs(obs.qpos[:, spec.ARM] - spec.DEFAULT_POSE[spec.ARM]).max() < 0.02
    assert np.abs(obs.qpos[:, spec.HAND] - spec.DEFAULT_POSE[spec.HAND]).max() < 0.1
    assert not obs.arm_contact.any() and not obs.hand_contact.any()


def test_arm_target_is_rate_limited_then_tracked(sim4):
    sim4.reset(home(4), far_object(4))
    goal = home(4)
    goal[:, 0] += 0.5
    obs = sim4.step(goal, far_object(4))
    moved = obs.qpos[:, 0] - spec.DEFAULT_POSE[0]
    # 6 substeps x 1/120 rad = 0.05 rad of target motion in one control step.
    assert np.all(moved < 0.05 + 1e-3)
    assert np.all(moved > 0.0)
    for _ in range(40):
        obs = sim4.step(goal, far_object(4))
    assert np.abs(obs.qpos[:, 0] - goal[:, 0]).max() < 0.01


def test_keypoints_match_forward_kinematics(sim4):
    rng = np.random.default_rng(3)
    q = spec.clip_to_limits(home(4) + rng.normal(0, 0.1, (4, spec.NUM_JOINTS)))
    sim4.reset(q, far_object(4))
    obs = sim4.step(q, far_object(4))
    data = mujoco.MjData(sim4.model)
    for i in range(4):
        data.qpos[sim4.index.qpos] = obs.qpos[i]
        mujoco.mj_kinematics(sim4.model, data)
        np.testing.assert_allclose(obs.keypoints[i], data.site_xpos[sim4.index.keypoint_sites], atol=1e-9)


def test_object_cloud_follows_pose(sim4):
    pose = far_object(4)
    pose[:, 3:7] = yaw_quat(np.array([0.0, 0.5, 1.0, 2.0]))
    pose[:, 1] = [0.0, 0.1, -0.1, 0.2]
    obs = sim4.reset(home(4), pose)
    expected = transform_points(object_cloud(box_points(), 100), pose)
    np.testing.assert_allclose(obs.object_pc, expected, atol=1e-6)
    assert sim4.num_points == 100


def test_per_scene_table_pose_and_obstacles_flag_arm_contact(sim4):
    n = 4
    params = SceneParams.default(n)
    elbow = link_position(sim4, "link4", spec.DEFAULT_POSE)
    # scene 1: the table top raised through the forearm.
    params.table_pose[1, :3] = [elbow[0], elbow[1], elbow[2] + 0.05]
    # scene 2: a box obstacle around the elbow.
    params.obstacles[2, 0] = [*elbow, 1.0, 0.0, 0.0, 0.0, 0.08, 0.08, 0.08]
    # scene 3: an obstacle far from the robot (no contact).
    params.obstacles[3, 0] = [1.5, 1.5, 0.5, 1.0, 0.0, 0.0, 0.0, 0.05, 0.05, 0.05]
    sim4.reset(home(n), far_object(n), params)
    obs = sim4.step(home(n), far_object(n))
    assert obs.arm_contact.tolist() == [False, True, True, False]
    # contact flags are sticky until the next reset, and cleared by it
    sim4.reset(home(n), far_object(n))
    obs = sim4.step(home(n), far_object(n))
    assert not obs.arm_contact.any()


def test_hand_on_table_is_hand_contact_not_arm(sim4):
    n = 4
    params = SceneParams.default(n)
    flange = link_position(sim4, "link7", spec.DEFAULT_POSE)
    sim4.reset(home(n), far_object(n))
    tips = sim4.step(home(n), far_object(n)).keypoints[0]
    lowest = tips[:, 2].min()
    assert flange[2] > lowest + 0.05  # the hand hangs below the flange at home
    # scene 0: the table top just above the lowest keypoint, under the hand only
    params.table_pose[0, :3] = [tips[:, 0].mean(), tips[:, 1].mean(), lowest + 0.01]
    sim4.reset(home(n), far_object(n), params)
    obs = sim4.step(home(n), far_object(n))
    assert obs.hand_contact[0] and not obs.hand_contact[1:].any()


def test_joint_friction_slows_tracking(sim4):
    n = 4
    params = SceneParams.default(n)
    params.joint_friction[1, 0] = 200.0  # N·m of dry friction on joint1 in scene 1
    sim4.reset(home(n), far_object(n), params)
    goal = home(n)
    goal[:, 0] += 0.3
    for _ in range(4):
        obs = sim4.step(goal, far_object(n))
    moved = obs.qpos[:, 0] - spec.DEFAULT_POSE[0]
    assert moved[1] < moved[0] - 0.01


def test_deterministic_and_thread_count_independent():
    rng = np.random.default_rng(0)
    q0 = spec.clip_to_limits(home(6) + rng.normal(0, 0.05, (6, spec.NUM_JOINTS)))
    plan = [spec.clip_to_limits(q0 + rng.normal(0, 0.05, q0.shape)) for _ in range(5)]

    def run(nthread):
        with MujocoSimulator.from_points(box_points(), 6, nthread=nthread) as sim:
            sim.reset(q0, far_object(6))
            return np.stack([sim.step(t, far_object(6)).qpos for t in plan])

    a, b, c = run(1), run(2), run(2)
    assert np.array_equal(a, b) and np.array_equal(b, c)


def test_bad_inputs_name_the_argument(sim4):
    with pytest.raises(ValueError, match="qpos"):
        sim4.reset(home(3), far_object(4))
    with pytest.raises(ValueError, match="object_pose"):
        sim4.reset(home(4), far_object(4)[:, :6])
    with pytest.raises(ValueError, match="targets"):
        sim4.step(np.full((4, spec.NUM_JOINTS), np.nan), far_object(4))
    bad = SceneParams.default(4)
    bad.table_pose = bad.table_pose[:2]
    with pytest.raises(ValueError, match="table_pose"):
        sim4.reset(home(4), far_object(4), bad)


def test_object_points_are_checked():
    with pytest.raises(SceneError, match="object points"):
        compile_scene(np.zeros((3, 3)))
    with pytest.raises(SceneError, match="NaN"):
        compile_scene(np.full((10, 3), np.nan))


def test_flat_object_still_compiles():
    flat = box_points()
    flat[:, 2] = 0.0
    model, _ = compile_scene(flat)
    assert model.nmesh == 1


def test_config_changes_layout():
    config = SceneConfig(table_distance=0.8, num_points=64, max_obstacles=2)
    with MujocoSimulator.from_points(box_points(), 2, config=config, nthread=1) as sim:
        obs = sim.reset(home(2), far_object(2))
        assert obs.object_pc.shape == (2, 64, 3)
        assert len(sim.index.obstacle_geoms) == 2
        table = sim.model.geom("table")
        assert table.pos[0] == pytest.approx(0.8)


def observed(obs) -> dict[str, np.ndarray]:
    return {name: getattr(obs, name).copy() for name in obs.__dataclass_fields__}


@pytest.mark.parametrize("dynamic", [False, True])
def test_state_dict_continues_bit_for_bit(dynamic):
    """Step, save, step K more; a fresh simulator built the same way that loads
    the state steps the same K steps to the bit (warm start, arm targets,
    applied forces, contact flags, a kinematic pose and scene params included)."""
    config = SceneConfig(object_dynamic=dynamic, object_collision=dynamic, max_obstacles=1)
    make = lambda: MujocoSimulator.from_points(box_points(), 3, config=config, nthread=2)  # noqa: E731
    rng = np.random.default_rng(0)
    q0 = spec.clip_to_limits(home(3) + rng.normal(0, 0.05, (3, spec.NUM_JOINTS)))
    goals = [spec.clip_to_limits(q0 + rng.normal(0, 0.3, q0.shape)) for _ in range(8)]
    pose = far_object(3)
    pose[:, 2] = 0.05 + 0.02 * np.arange(3)  # a dynamic object falls to the table
    params = SceneParams.default(3, config)
    params.joint_friction[1] = 0.5
    params.table_pose[2, :3] = link_position(make(), "link4", spec.DEFAULT_POSE) + [0, 0, 0.05]  # arm contact
    sim = make()
    sim.reset(q0, pose, params)
    xfrc = sim.read("xfrc_applied")
    xfrc[0, sim.index.object_body, :3] = [0.0, 1.0, 2.0]
    sim.write("xfrc_applied", xfrc)
    for goal in goals[:3]:
        sim.step(goal)
    state = sim.state_dict()
    before = {name: sim.read(name) for name in ("qpos", "qvel", "qacc_warmstart", "time", "site_xpos", "sensordata")}
    expected = [observed(sim.step(goal)) for goal in goals[3:]]
    assert any(e["arm_contact"][2] for e in expected) and np.any(state["integration"] != sim.state_dict()["integration"])

    fresh = make()
    fresh.load_state_dict(state)
    for name, value in before.items():
        np.testing.assert_array_equal(fresh.read(name), value, err_msg=name)
    for step, goal in enumerate(goals[3:]):
        got = observed(fresh.step(goal))
        for name in got:
            np.testing.assert_array_equal(got[name], expected[step][name], err_msg=f"step {step}: {name}")
    np.testing.assert_array_equal(fresh.read("qacc_warmstart"), sim.read("qacc_warmstart"))
    with pytest.raises(ValueError, match="other scenes"):
        MujocoSimulator.from_points(box_points(), 2, config=config, nthread=1).load_state_dict(state)
