"""Placement invariants over many random draws: nothing below the table, the
object starting on it, gravity down, the wrist path reachable; refusals with
their reason; an attempt's placement reproduced by its seed alone."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from hop_data import hoi, synth
from hop_data.retarget.attempts import attempt_seeds
from hop_data.retarget.engine import RetargetConfig, Retargeter
from hop_data.retarget.keypoints import robot_keypoint_targets
from hop_data.retarget.placement import apply_to_points, on_table
from hop_robot.geometry import quat_to_matrix


@pytest.fixture(scope="module")
def retargeter():
    return Retargeter(RetargetConfig(attempts=8), threads=1)


def _rotated(traj: hoi.HOITrajectory, rot: np.ndarray) -> hoi.HOITrajectory:
    """The same scene seen from a frame turned by ``rot`` (gravity turns with it)."""
    pose = traj.object_pose.astype(np.float64).copy()
    pose[:, :3] = pose[:, :3] @ rot.T
    from hop_robot.geometry import matrix_to_quat

    pose[:, 3:] = matrix_to_quat(rot @ quat_to_matrix(pose[:, 3:]))
    return replace(
        traj,
        hand_joints=(traj.hand_joints.astype(np.float64) @ rot.T).astype(np.float32),
        object_pose=pose.astype(np.float32),
        gravity=(rot @ traj.gravity.astype(np.float64)).astype(np.float32),
    )


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _check_invariants(retargeter: Retargeter, traj: hoi.HOITrajectory, plan) -> int:
    cfg = retargeter.config.attempt
    ok = plan.problem == ""
    n = len(plan.seeds)
    table_z = plan.draws.table_pose[:, 2]
    lead = plan.lead
    # nothing below the table: every hand keypoint target of every step, the object's points at every step
    hand_low = plan.targets[..., 2].min(axis=(1, 2))
    assert np.all(hand_low[ok] >= table_z[ok] + cfg.table_margin - 1e-6)
    wrist_low = plan.targets[..., 0, 2].min(axis=1)  # the palm keypoint, where the wrist flange is
    assert np.all(wrist_low[ok] >= table_z[ok] + cfg.wrist_margin - 1e-6)
    rot = quat_to_matrix(plan.object_pose[..., 3:].reshape(-1, 4)).reshape(n, -1, 3, 3)
    pts = np.einsum("ntij,pj->ntpi", rot, traj.object_points.astype(np.float64)) + plan.object_pose[..., None, :3]
    assert np.all(pts[..., 2].min(axis=(1, 2))[ok] >= table_z[ok] - 1e-6)
    # the object starts above the table, by its drawn clearance plus at most the allowed lift
    start_low = pts[:, 0, :, 2].min(axis=1) - table_z
    assert np.all(start_low[ok] >= plan.draws.clearance[ok] - 1e-6)
    assert np.all(start_low[ok] <= plan.draws.clearance[ok] + cfg.max_object_lift + 1e-6)
    np.testing.assert_allclose(start_low[ok], plan.draws.clearance[ok] + plan.lift[ok], atol=1e-6)
    # ... and on the table top, inside its edges
    assert np.all(on_table(plan.object_pose[ok, 0, :2], plan.draws.table_pose[ok], retargeter.config.scene.table_size, cfg))
    # gravity aligned: the placed trajectory's gravity points down
    targets_h = robot_keypoint_targets(traj.hand_joints, retargeter.robot_hand_size)
    a, b = targets_h[0, 0], targets_h[-1, 0]
    placed = plan.targets[:, lead, 0], plan.targets[:, -1, 0]
    g = traj.gravity.astype(np.float64)
    np.testing.assert_allclose(placed[1][:, 2] - placed[0][:, 2], -np.dot(b - a, g), atol=1e-6)
    # reachable: the IK check passes again on the kept placements
    if retargeter.reach is not None and ok.any():
        samples = retargeter.reach.samples(traj.num_frames)
        path = plan.targets[ok][:, lead:][:, samples]
        assert np.all(retargeter.reach.residuals(path, plan.draws.init_qpos[ok]) <= cfg.reach_tolerance)
    return int(ok.sum())


@pytest.mark.parametrize("index", [0, 1, 2, 3, 4])
def test_placement_invariants_over_many_draws(retargeter, index):
    traj = hoi.prepare(synth.make_trajectory(synth.video_rng(11, index), index, 11))
    seeds = attempt_seeds(3, traj.source, 150)
    plan = retargeter.plan(traj, seeds)
    assert _check_invariants(retargeter, traj, plan) >= 140  # synthetic hands are in reach: nearly all placed
    assert set(plan.problem) <= {"", "unreachable", "off_table"}


def test_invariants_hold_in_any_frame_of_reference(retargeter):
    """The same video seen from random (pitched, rolled) frames: gravity decides what is down."""
    traj = hoi.prepare(synth.make_trajectory(synth.video_rng(11, 5), 5, 11))
    rng = np.random.default_rng(0)
    seeds = attempt_seeds(0, traj.source, 60)
    base = retargeter.plan(traj, seeds)
    for _ in range(3):
        turned = _rotated(traj, _random_rotation(rng))
        plan = retargeter.plan(turned, seeds)
        _check_invariants(retargeter, turned, plan)
        # the scene is the same: the same placements (up to rounding)
        np.testing.assert_allclose(plan.targets, base.targets, atol=1e-5)
        assert plan.problem.tolist() == base.problem.tolist()


def test_a_hand_below_its_object_is_lifted_or_refused(retargeter):
    """The object proxy at the fingertips of a hand held up: placing the object on the
    table would put the wrist under it. Lifted while the lift is small, refused beyond."""
    traj = hoi.prepare(synth.make_trajectory(synth.video_rng(11, 0), 0, 11))
    g = traj.gravity.astype(np.float64)
    seeds = attempt_seeds(0, traj.source, 40)
    cfg = retargeter.config.attempt
    for drop, refused in [(0.06, False), (0.25, True)]:
        # the object rides `drop` metres above where it was (the hand stays): the hand is far below it
        pose = traj.object_pose.astype(np.float64).copy()
        pose[:, :3] -= drop * g
        plan = retargeter.plan(replace(traj, object_pose=pose.astype(np.float32)), seeds)
        if refused:
            assert set(plan.problem) == {"under_table"}
            assert np.all(plan.lift > cfg.max_object_lift)
        else:
            ok = plan.problem == ""
            assert ok.sum() >= 35
            assert np.all(plan.lift[ok] > 0.02)  # lifted: the hand stays above the table
            _check_invariants(retargeter, replace(traj, object_pose=pose.astype(np.float32)), plan)


def test_a_placement_is_reproduced_by_its_seed_alone(retargeter):
    traj = hoi.prepare(synth.make_trajectory(synth.video_rng(11, 4), 4, 11))
    seeds = attempt_seeds(1, traj.source, 60)
    plan = retargeter.plan(traj, seeds)
    redrawn = np.flatnonzero(plan.redraws > 0)
    assert redrawn.size  # some attempts were drawn again (object off the table, path out of reach)
    for i in [*redrawn[:3], 0]:
        alone = retargeter.plan(traj, seeds[i : i + 1])
        assert alone.redraws[0] == plan.redraws[i] and alone.problem[0] == plan.problem[i]
        np.testing.assert_array_equal(alone.targets[0], plan.targets[i])
        np.testing.assert_array_equal(alone.object_pose[0], plan.object_pose[i])
