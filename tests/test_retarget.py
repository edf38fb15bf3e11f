"""Retargeting: solvers against known answers and each other, the engine end to end."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from hop_data import hoi, synth
from hop_data.retarget.attempts import AttemptConfig, attempt_seeds
from hop_data.retarget.batched_solver import BatchedSolver
from hop_data.retarget.engine import RetargetConfig, Retargeter
from hop_data.retarget.nlopt_solver import NloptSolver
from hop_data.retarget.objective import RetargetObjective
from hop_robot.embodiment import spec
from hop_robot.embodiment.model import load_model
from hop_robot.kinematics import RobotKinematics


@pytest.fixture(scope="module")
def objective():
    return RetargetObjective(RobotKinematics(load_model()))


@pytest.fixture(scope="module")
def retargeter():
    return Retargeter(RetargetConfig(attempts=8), threads=2)


@pytest.fixture(scope="module")
def video():
    return hoi.prepare(synth.make_trajectory(synth.video_rng(7, 0), 0, 7))


def configurations(n, seed, spread=0.3):
    rng = np.random.default_rng(seed)
    return spec.clip_to_limits(spec.DEFAULT_POSE + rng.normal(0, spread, (n, spec.NUM_JOINTS)))


@pytest.mark.parametrize("make_solver", [BatchedSolver, NloptSolver], ids=["batched", "nlopt"])
def test_solver_recovers_a_reachable_configuration(objective, make_solver):
    truth = configurations(6, 0)
    targets = objective.kin.sites(truth)
    start = spec.clip_to_limits(truth + np.random.default_rng(1).normal(0, 0.05, truth.shape))
    a, cost = make_solver(objective).solve(targets, prev=truth, init=start)
    # with prev = truth the optimum is truth itself, at cost 0
    assert np.all(cost < 1e-10)
    np.testing.assert_allclose(objective.kin.sites(a), targets, atol=1e-4)


def test_solvers_respect_joint_limits_and_agree(objective):
    beyond = np.tile(spec.DEFAULT_POSE, (3, 1))
    beyond[0, 8] = spec.JOINT_UPPER[8] + 0.6  # index proximal bent past its limit
    beyond[1, 19] = spec.JOINT_LOWER[19] - 0.5  # thumb base below its limit
    beyond[2, 3] = spec.JOINT_LOWER[3] - 0.4  # elbow (joint4) past its limit
    targets = objective.kin.sites(beyond)  # the kinematics do not clamp: the targets are unreachable
    prev = np.tile(spec.DEFAULT_POSE, (3, 1))
    a_b, cost_b = BatchedSolver(objective).solve(targets, prev)
    a_r, cost_r = NloptSolver(objective).solve(targets, prev)
    for a in (a_b, a_r):
        assert np.all(a >= spec.JOINT_LOWER) and np.all(a <= spec.JOINT_UPPER)
    assert np.all(cost_b > 1e-6)  # the limits keep the targets out of reach
    assert np.all(cost_b <= cost_r + 1e-8)
    assert a_b[1, 19] == pytest.approx(spec.JOINT_LOWER[19])  # pinned at the limit it was pushed past


def test_batched_reaches_the_reference_cost(objective):
    """Cost parity on the same frames: hand-like targets from perturbed configurations."""
    truth = configurations(40, 2)
    prev = spec.clip_to_limits(truth + np.random.default_rng(3).normal(0, 0.15, truth.shape))
    noise = np.random.default_rng(4).normal(0, 0.01, (40, spec.NUM_KEYPOINTS, 3))  # not exactly reachable
    targets = objective.kin.sites(truth) + noise
    _, batched = BatchedSolver(objective).solve(targets, prev)
    _, reference = NloptSolver(objective).solve(targets, prev)
    assert np.mean(batched <= reference + 1e-6) >= 0.95
    assert np.median(batched) <= np.median(reference) + 1e-9


def test_seeds_are_stable_and_distinct():
    a, b = attempt_seeds(0, "synth/0/0000", 50), attempt_seeds(0, "synth/0/0000", 50)
    assert np.array_equal(a, b) and len(set(a.tolist())) == 50
    assert not np.array_equal(a, attempt_seeds(1, "synth/0/0000", 50))
    assert not np.array_equal(a, attempt_seeds(0, "synth/0/0001", 50))


def test_engine_keeps_good_attempts_and_replays_a_seed_bit_for_bit(retargeter, video):
    result = retargeter.run(video, seed=0)
    assert result.attempts == 8 and result.accepted.any()
    lead = int(retargeter.config.lead_in_s * spec.CONTROL_HZ)
    for ep in result.episodes:
        assert ep.proprio.shape == (video.num_frames + lead, spec.NUM_JOINTS)
        assert ep.object_pc.shape == (video.num_frames + lead, 100, 3)
        assert ep.max_error < 0.03 and not ep.collision
        assert np.all(ep.action >= spec.JOINT_LOWER - 1e-6) and np.all(ep.action <= spec.JOINT_UPPER + 1e-6)
    # the same run again, and one attempt replayed alone from its stored seed, are identical
    again = retargeter.run(video, seed=0)
    first = result.episodes[0]
    assert np.array_equal(again.episodes[0].action, first.action)
    alone = retargeter.run(video, seeds=np.array([first.seed]))
    assert np.array_equal(alone.episodes[0].proprio, first.proprio)
    assert np.array_equal(alone.episodes[0].action, first.action)
    assert np.array_equal(alone.episodes[0].object_pc, first.object_pc)


def test_hand_out_of_reach_is_rejected_for_error(retargeter, video):
    far = video.hand_joints.copy()
    ramp = np.linspace(0.0, 1.5, video.num_frames)[:, None, None]
    far -= ramp * np.asarray(video.gravity, dtype=np.float32)  # the hand rises 1.5 m, out of reach
    far_video = replace(video, hand_joints=far.astype(np.float32))
    # the IK check sees it before simulating: every placement re-drawn, then refused as unreachable
    out = retargeter.run(far_video, seed=0)
    assert not out.accepted.any() and not out.simulated.any() and out.attempt_frames == 0
    assert set(out.cause) == {"unreachable"}
    assert out.placement_redraws == 8 * retargeter.config.attempt.placement_redraws
    # without the check it is simulated and rejected for its keypoint error
    unchecked = Retargeter(RetargetConfig(attempts=8, attempt=AttemptConfig(reach_check=False)), threads=2)
    out = unchecked.run(far_video, seed=0)
    assert not out.accepted.any()
    assert np.all(out.max_error[out.simulated] > 0.03) and set(out.cause[out.simulated]) == {"keypoint_error"}


def test_hand_driven_through_the_table_is_rejected_for_contact(retargeter, video):
    down = video.hand_joints.copy()
    g = np.asarray(video.gravity, dtype=np.float32)
    dip = np.clip(np.linspace(-0.5, 1.5, video.num_frames), 0.0, 1.0)[:, None, None]
    down += 0.6 * dip * g  # 60 cm along gravity: the hand dives through the table top
    dive = replace(video, hand_joints=down)
    # placement refuses it: keeping the hand above the table would lift the object 60 cm
    out = retargeter.run(dive, seed=0)
    assert set(out.cause) == {"under_table"} and not out.simulated.any()
    # with the lift allowed and the reach unchecked, the arm follows the hand into the table
    lenient = AttemptConfig(table_margin=-1.0, wrist_margin=-1.0, reach_check=False)
    out = Retargeter(RetargetConfig(attempts=8, attempt=lenient), threads=2).run(dive, seed=0)
    assert out.arm_contact.any()
    assert not out.accepted[out.arm_contact].any()


def test_unprepared_trajectory_is_refused(retargeter):
    raw = synth.make_trajectory(synth.video_rng(7, 0), 0, 7)
    with pytest.raises(ValueError, match="prepare"):
        retargeter.run(raw, seed=0)
