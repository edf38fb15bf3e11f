"""The task environments: real MuJoCo worlds, the real robot model."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import hop_train.envs as envs
from hop_robot.embodiment import spec
from hop_robot.sim import Observation
from hop_train.envs.cabinet import HOLD_STEPS, SUCCESS_OPENING, OpenCabinetVectorEnv
from hop_train.envs.grasp import REWARD, SUCCESS_RADIUS, GraspLiftVectorEnv, GraspThrowVectorEnv, fingertip_distance
from hop_train.evaluate import wilson_interval

HOME = spec.SCALER.scale(spec.DEFAULT_POSE)


def hold_actions(env) -> np.ndarray:
    return np.tile(HOME, (env.num_envs, 1))


def constructed(env, **fields) -> Observation:
    """An Observation of env's latest state with some fields replaced."""
    obs = env._obs
    values = {name: getattr(obs, name).copy() for name in Observation.__dataclass_fields__}
    values.update(fields)
    return Observation(**values)


def test_registered_and_native_vector_env():
    for name, cls in envs.TASKS.items():
        vec = gym.make_vec(f"hop/{name}", num_envs=3)
        assert isinstance(vec, cls) and isinstance(vec, gym.vector.VectorEnv) and vec.num_envs == 3
        obs, _ = vec.reset(seed=0)
        assert obs["proprio"].shape == (3, 23) and obs["points"].shape == (3, spec.NUM_POINTS, 3)
        assert vec.observation_space.contains(obs)
        vec.close()
    with pytest.raises(ValueError, match="unknown task"):
        envs.task_id("PickAndPlace-v0")


def test_single_env_passes_gymnasium_checker():
    from gymnasium.utils.env_checker import check_env

    env = gym.make("hop/GraspLift-v0")
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_object_sets_have_published_sizes_and_masses():
    train = {o.name: o for o in envs.TRAIN_OBJECTS}
    assert sorted(train) == ["002_master_chef_can", "005_tomato_soup_can", "010_potted_meat_can", "024_bowl",
                             "025_mug", "036_wood_block"]  # fmt: skip
    extent = {n: np.ptp(o.points(), axis=0) for n, o in train.items()}
    np.testing.assert_allclose(extent["002_master_chef_can"], [0.102, 0.102, 0.139], atol=2e-3)
    np.testing.assert_allclose(extent["005_tomato_soup_can"], [0.066, 0.066, 0.101], atol=2e-3)
    np.testing.assert_allclose(extent["010_potted_meat_can"], [0.050, 0.097, 0.082], atol=2e-3)
    np.testing.assert_allclose(extent["036_wood_block"], [0.085, 0.085, 0.200], atol=2e-3)
    np.testing.assert_allclose(extent["024_bowl"][2], 0.053, atol=2e-3)
    assert {n: o.mass for n, o in train.items()} == {
        "002_master_chef_can": 0.414, "005_tomato_soup_can": 0.349, "010_potted_meat_can": 0.370,
        "024_bowl": 0.147, "025_mug": 0.118, "036_wood_block": 0.729,
    }  # fmt: skip
    assert not set(o.name for o in envs.HELDOUT_OBJECTS) & set(train)
    env = GraspLiftVectorEnv(6)
    masses = [env.sim.variants[k].model.body_mass[env.index.object_body] for k in range(6)]
    np.testing.assert_allclose(masses, [o.mass for o in envs.TRAIN_OBJECTS], rtol=1e-9)
    env.close()


def test_reset_noise_bounds():
    env = GraspLiftVectorEnv(32)
    obs, _ = env.reset(seed=3)
    pose = env._obs.object_pose
    cfg = env.config
    assert np.all(np.abs(pose[:, :2] - cfg.object_xy) <= cfg.object_xy_noise + 1e-6)
    assert np.all(pose[:, 2] >= env.rest_height) and np.all(pose[:, 2] <= env.rest_height + cfg.object_z_noise + 0.003)
    q = env._obs.qpos
    assert np.all(np.abs(q - spec.DEFAULT_POSE) <= cfg.joint_noise + 1e-6)
    assert np.std(pose[:, 0]) > 0.02  # really randomised
    env.close()


def test_vector_env_equals_single_env_step_for_step():
    vec = GraspLiftVectorEnv(3)
    single = gym.make("hop/GraspLift-v0").unwrapped
    rng = np.random.default_rng(0)
    obs_v, _ = vec.reset(seed=11)
    obs_s, _ = single.reset(seed=11)
    np.testing.assert_array_equal(obs_v["proprio"][0], obs_s["proprio"])
    for _ in range(15):
        a = np.clip(HOME + rng.normal(0, 0.05, (3, 23)), -1, 1)
        obs_v, r_v, *_ = vec.step(a)
        obs_s, r_s, *_ = single.step(a[0])
        np.testing.assert_array_equal(obs_v["proprio"][0], obs_s["proprio"])
        np.testing.assert_array_equal(obs_v["points"][0], obs_s["points"])
        assert r_v[0] == np.float32(r_s)
    vec.close()
    single.close()


def test_same_seed_same_rollout():
    def rollout():
        env = GraspThrowVectorEnv(4)
        env.reset(seed=5)
        rng = np.random.default_rng(1)
        out = [env.step(np.clip(HOME + rng.normal(0, 0.1, (4, 23)), -1, 1))[0]["state"] for _ in range(10)]
        env.close()
        return np.stack(out)

    np.testing.assert_array_equal(rollout(), rollout())


def test_grasp_lift_reward_terms_by_hand():
    env = GraspLiftVectorEnv(1)
    env.reset(seed=0)
    z0 = env.z0[0]
    tips_before = env._prev_tip[0]
    goal = env.goal[0]
    # The object raised 0.12 m toward the goal, the hand moved 2 cm closer, the joints moving at known speeds.
    pose = env._obs.object_pose.copy()
    pose[0, 2] = z0 + 0.12
    cloud = env._obs.object_pc + np.array([0, 0, 0.12 + z0 - env._obs.object_pose[0, 2]], np.float32)
    qvel = np.zeros((1, 23))
    qvel[0, spec.ARM] = 0.5
    qvel[0, spec.HAND] = 1.0
    keypoints = env._obs.keypoints.copy()
    obs = constructed(env, object_pose=pose, object_pc=cloud, qvel=qvel, keypoints=keypoints)
    d_tip = fingertip_distance(keypoints, cloud)[0]
    prev_goal = env._prev_goal[0]
    d_goal = np.linalg.norm(pose[0, :3] - goal)
    reward, terms, success, failed = env._task_step(obs)
    assert terms["approach"][0] == pytest.approx(50.0 * (tips_before - d_tip))
    assert terms["lift"][0] == pytest.approx(20.0 * min(0.12 + 0.02, 0.5))
    assert terms["lift_bonus"][0] == pytest.approx(300.0)
    assert terms["goal"][0] == pytest.approx(200.0 * (prev_goal - d_goal))
    assert terms["near_goal"][0] == pytest.approx(20.0 * (d_goal < SUCCESS_RADIUS))
    assert terms["joint_speed"][0] == pytest.approx(-(0.003 * 7 * 0.5 + 0.0003 * 16 * 1.0))
    assert reward[0] == pytest.approx(sum(t[0] for t in terms.values()))
    assert not success[0] and not failed[0]
    # The bonus is paid once; the approach term stops after the lift.
    _, terms, _, _ = env._task_step(obs)
    assert terms["lift_bonus"][0] == 0.0 and terms["approach"][0] == 0.0
    assert REWARD["lift_bonus"] == 300.0
    env.close()


def test_grasp_lift_success_after_50_steps_at_the_goal():
    env = GraspLiftVectorEnv(1)
    env.reset(seed=0)
    pose = env._obs.object_pose.copy()
    pose[0, :3] = env.goal[0] + [0.05, 0.0, 0.0]  # within 0.1125 m
    obs = constructed(env, object_pose=pose)
    for k in range(1, 51):
        _, terms, success, _ = env._task_step(obs)
        assert terms["near_goal"][0] == 20.0
        assert bool(success[0]) == (k >= 50)
    pose[0, :3] = env.goal[0] + [0.2, 0.0, 0.0]  # outside: the count starts over
    env._task_step(constructed(env, object_pose=pose))
    assert env.hold[0] == 0
    env.close()


def test_throw_fails_when_the_object_falls_and_succeeds_in_the_basket():
    env = GraspThrowVectorEnv(2)
    env.reset(seed=0)
    pose = env._obs.object_pose.copy()
    pose[0, :3] = [0.6, -0.2, -0.07]  # fell below the table top
    pose[1, :3] = np.asarray(env.basket.rim_center) + [0.0, 0.0, -0.05]  # in the basket
    obs = constructed(env, object_pose=pose)
    for k in range(10):
        _, _, success, failed = env._task_step(obs)
    assert failed[0] and not success[0]
    assert success[1] and not failed[1]
    env.close()


def test_cabinet_success_rule_and_contact_reset():
    env = OpenCabinetVectorEnv(2)
    env.reset(seed=0)
    qpos = env.sim.qpos
    qpos[0, env._drawer_qpos] = SUCCESS_OPENING + 0.07  # the hand at rest may nudge it a little
    env.sim.write("qpos", qpos)
    for k in range(HOLD_STEPS):
        _, _, terminated, _, info = env.step(hold_actions(env))
    assert terminated[0] and info["success"][0] and not info["success"][1]
    assert info["final_info"]["episode_milestone"][0] and env.milestone == "half open"
    # The ended episode restarted: its drawer is closed again.
    assert env.opening()[0] == pytest.approx(0.0, abs=1e-6)
    contact = constructed(env, arm_contact=np.array([False, True]))
    _, terms, success, failed = env._task_step(contact)
    assert failed[1] and not failed[0]
    assert terms["goal"][0] == pytest.approx(6.0 * env.opening()[0])
    env.close()


def test_camera_cloud_shows_the_visible_side_only():
    env = GraspLiftVectorEnv(2, cloud="camera", objects=("005_tomato_soup_can",))
    obs, _ = env.reset(seed=0)
    centre = env._obs.object_pose[:, :3]
    towards_camera = (obs["points"] - centre[:, None]) @ (np.array([1.35, 0.0, 0.62]) - centre[0]) > 0
    assert towards_camera.mean() > 0.9
    env.close()


def test_perturbation_pushes_a_held_object():
    env = GraspLiftVectorEnv(1, perturb=True, objects=("005_tomato_soup_can",))
    env.reset(seed=0)
    qpos = env.sim.qpos
    qpos[0, env.index.object_qpos + 2] = 0.3  # in the air: "held"
    env.sim.write("qpos", qpos)
    env.step(hold_actions(env))
    force = env.sim.read("xfrc_applied")[0, env.index.object_body, :3]
    assert np.linalg.norm(force) == pytest.approx(0.349 * 9.81)
    env.close()


def test_wilson_interval():
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-3)
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-3)


def test_evaluate_cli_random_and_refusal(tmp_path):
    import torch

    from hop_train.export import export_policy
    from hop_train.model import HopPolicy

    out = subprocess.run(
        [sys.executable, "-m", "hop_train.cli", "evaluate", "--task", "OpenCabinet-v0", "--policy", "random",
         "--envs", "4", "--json"], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["episodes"] == 4 and 0.0 <= summary["success_rate"] <= 1.0 and len(summary["success_ci95"]) == 2
    torch.manual_seed(0)
    wrong = export_policy(HopPolicy(num_layers=1, num_points=64), tmp_path / "p64.pt", num_points=64)
    out = subprocess.run(
        [sys.executable, "-m", "hop_train.cli", "evaluate", "--task", "GraspLift-v0", "--policy", str(wrong),
         "--envs", "2", "--json"], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 2 and "num_points 64" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "hop_train.cli", "evaluate", "--task", "Juggle-v0", "--policy", "random"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 2 and "unknown task" in out.stderr


def test_demos_cli_writes_expert_episodes_the_store_reads(tmp_path):
    from hop_data.store import TrajectoryStore

    store = tmp_path / "demos.zarr"
    cmd = [sys.executable, "-m", "hop_train.cli", "demos", "--task", "OpenCabinet-v0", "--episodes", "2",
           "--store", str(store), "--envs", "2", "--json"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["recorded"] == 2 and summary["episodes"] == 2
    reader = TrajectoryStore.open(store).reader()
    assert reader.num_episodes == 2
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)  # same task and seed: nothing new
    assert again.returncode == 0 and json.loads(again.stdout)["episodes"] == 0


@pytest.mark.skipif(
    os.environ.get("MUJOCO_GL", "osmesa") == "osmesa" and ctypes.util.find_library("OSMesa") is None,
    reason="offscreen rendering needs libOSMesa (apt-get install libosmesa6; make installs it as root)",
)
def test_evaluate_renders_an_mp4_of_the_first_envs(tmp_path):
    import imageio.v2 as imageio

    from hop_train.evaluate import evaluate

    video = tmp_path / "eval.mp4"
    summary = evaluate("GraspLift-v0", "random", envs=3, render=str(video), render_envs=2, show_progress=False,
                       episode_steps=5)  # fmt: skip
    assert summary["episodes"] == 3 and summary["render"] == str(video)
    frames = imageio.mimread(video)
    assert len(frames) == 5 and frames[0].shape[1] == 2 * 320  # two envs side by side


@pytest.mark.parametrize("task, options", [
    ("GraspLift-v0", {"perturb": True, "perturb_every": 3}),
    ("OpenCabinet-v0", {}),
])  # fmt: skip
def test_state_dict_continues_step_for_step(task, options):
    """Save a vector env mid-episode; an env rebuilt with the same config that
    loads the state gives the same observations, rewards, ends and resets
    (the per-env generators drawing the next episodes and the perturbation)."""
    make = lambda: envs.make_vector(task, 3, episode_steps=6, nthread=1, **options)  # noqa: E731
    rng = np.random.default_rng(0)
    actions = [np.clip(HOME + rng.normal(0, 0.3, (3, 23)), -1, 1) for _ in range(12)]
    env = make()
    env.reset(seed=3)
    if env.dynamic_object:  # env 0's object in the air: "held", so the perturbation pushes it
        qpos = env.sim.qpos
        qpos[0, env.index.object_qpos + 2] = 0.3
        env.sim.write("qpos", qpos)
    for a in actions[:4]:
        env.step(a)
    state = env.state_dict()
    expected = [env.step(a) for a in actions[4:]]
    fresh = make()
    fresh.reset(seed=99)  # whatever it did before: the loaded state replaces it
    fresh.load_state_dict(state)
    for k, a in enumerate(actions[4:]):
        got = fresh.step(a)
        for name in ("proprio", "points", "state"):
            np.testing.assert_array_equal(got[0][name], expected[k][0][name], err_msg=f"step {k}: {name}")
        for i in (1, 2, 3):
            np.testing.assert_array_equal(got[i], expected[k][i], err_msg=f"step {k}: output {i}")
        assert sorted(got[4]) == sorted(expected[k][4])
        if "final_info" in got[4]:
            for name, value in got[4]["final_info"].items():
                np.testing.assert_array_equal(value, expected[k][4]["final_info"][name], err_msg=name)
    assert any("final_info" in e[4] for e in expected)  # episodes ended and restarted after the save
    with pytest.raises(ValueError, match="another env"):
        envs.make_vector(task, 2, nthread=1).load_state_dict(state)
    env.close()
    fresh.close()


def test_reach_stall_and_palm_path_are_measured_per_episode():
    """A hand held at home for the whole episode ends stalled, its palm path
    about 0, its closest approach no better than at the start and its command
    gap about 0; an arm driven by sinusoidal targets is not stalled, travels,
    and commands targets away from where its joints are."""
    from hop_train.envs.base import STALL_S

    steps = int(STALL_S * spec.CONTROL_HZ) + 20
    env = GraspLiftVectorEnv(2, episode_steps=steps)
    env.reset(seed=0)
    start = env._reach_distance(env._obs).copy()
    for k in range(steps):
        actions = hold_actions(env)
        actions[1, :7] += 0.3 * np.sin(2 * np.pi * k / 40.0)  # env 1's arm keeps moving
        _, _, terminated, truncated, info = env.step(np.clip(actions, -1, 1))
    assert truncated.all() or terminated.any()
    final = info["final_info"]
    assert final["episode_stalled"][0] and not final["episode_stalled"][1]
    assert final["episode_palm_path"][0] < 0.05 < 1.0 < final["episode_palm_path"][1]
    assert final["episode_closest"][0] <= start[0] + 1e-9
    assert final["episode_closest"][0] > 0.5 * start[0]  # the held hand never went near the object
    # the held hand commands where its joints are; the moving arm's targets lead its joints
    gap = final["episode_command_gap"]
    assert gap[0] < 1e-4 and gap[1] > 0.02  # (rad) the joints track a held target exactly
    env.close()
