"""Synthetic HOI corpus: determinism, format, human-like hand and motion, reachability."""

from __future__ import annotations

import numpy as np
import pytest

from hop_data import hoi, synth

N_VIDEOS = 24


@pytest.fixture(scope="module")
def episodes():
    return [synth.make_episode(synth.video_rng(5, i), i, 5) for i in range(N_VIDEOS)]


def _frame(video: synth.SynthVideo, seconds: float) -> int:
    return min(int(round(seconds * video.traj.fps)), video.traj.num_frames - 1)


def test_synthesize_writes_deterministic_bytes(tmp_path):
    a = synth.synthesize(tmp_path / "a", 3, seed=11)
    b = synth.synthesize(tmp_path / "b", 3, seed=11)
    c = synth.synthesize(tmp_path / "c", 2, seed=12)
    assert [p.name for p in a] == ["0000.hoi.npz", "0001.hoi.npz", "0002.hoi.npz"]
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert a[0].read_bytes() != c[0].read_bytes()
    # a video does not depend on how many are made
    d = synth.synthesize(tmp_path / "d", 2, seed=11)
    assert d[1].read_bytes() == a[1].read_bytes()
    traj = hoi.load(a[2])
    assert traj.source == "synth/11/0002"
    assert synth.synthesize(tmp_path / "e", 0, seed=1) == []


def test_files_load_and_prepare_cleanly(tmp_path):
    for path in synth.synthesize(tmp_path, 4, seed=3):
        traj = hoi.load(path)
        assert traj.fps in synth.FPS_CHOICES
        assert 3.0 <= traj.duration <= 8.0 + 1e-6
        assert traj.object_points.shape == (synth.NUM_OBJECT_POINTS, 3) and np.isfinite(traj.object_points).all()
        out = hoi.prepare(traj)
        assert out.fps == 20.0 and out.hand_side == "right"
        assert not np.isnan(out.hand_joints).any() and not np.isnan(out.object_pose).any()


def test_episodes_validate_and_prepare(episodes):
    sides = [v.traj.hand_side for v in episodes]
    assert "right" in sides and "left" in sides
    assert len({v.shape for v in episodes}) >= 4
    for v in episodes:
        t = v.traj
        assert hoi.validate(t).num_frames == t.num_frames
        assert t.hand_joints.dtype == np.float32 and t.object_pose.dtype == np.float32
        hoi.prepare(t)  # gaps are short, duration long enough


def test_hand_size_is_human(episodes):
    for v in episodes:
        size = hoi.hand_size(v.traj.hand_joints)  # from the noisy camera-frame rows
        assert 0.07 <= size <= 0.11, (v.traj.source, size)
        clean = np.linalg.norm(v.hand_joints_table[:, 9] - v.hand_joints_table[:, 0], axis=-1)
        np.testing.assert_allclose(clean, synth.HAND_SIZE_M * v.hand_scale, rtol=1e-9)
        bones = np.linalg.norm(np.diff(v.hand_joints_table[:, [0, 9, 10, 11, 12]], axis=1), axis=-1)
        np.testing.assert_allclose(bones, bones[:1].repeat(len(bones), 0), atol=1e-9)  # rigid bones


def test_phases_object_still_then_lifted(episodes):
    for v in episodes:
        t = v.traj
        up = -t.gravity.astype(np.float64)
        pos = t.object_pose[:, :3].astype(np.float64)
        height = pos @ up
        before = slice(0, _frame(v, v.phases["grasp"][1]))
        rest = pos[before][~np.isnan(pos[before, 0])]
        assert np.linalg.norm(rest.std(axis=0)) < 0.004  # still (1 mm tracking jitter) before the grasp
        lift_end = _frame(v, v.phases["lift"][1])
        rise = np.nanmax(height[before.stop : lift_end + 1]) - np.nanmedian(height[before])
        assert rise > 0.06, (t.source, rise)  # rises during the lift (0.7 of a 10-25 cm lift by then)
        peak = np.nanmax(height) - np.nanmedian(height[before])
        assert 0.09 <= peak <= 0.26, (t.source, peak)
        end = pos[_frame(v, v.phases["release"][1]) :]
        assert np.nanmax(height[_frame(v, v.phases["release"][1]) :]) - np.nanmedian(height[before]) < 0.01  # set down
        assert np.linalg.norm(np.nanmedian(end, axis=0) - np.nanmedian(rest, axis=0)) > 0.08  # somewhere else
        # the hand is near the object while holding it
        mid = _frame(v, v.phases["move"][0])
        wrist_to_object = np.linalg.norm(v.hand_joints_table[mid, 0] - v.object_pose_table[mid, :3])
        assert wrist_to_object < 0.2  # within reach of the fingers


def test_fingers_touch_the_object_when_grasped(episodes):
    for v in episodes:
        k = _frame(v, v.phases["grasp"][1])
        R = hoi.quat_to_matrix(v.object_pose_table[k, 3:])
        radius = synth.FINGER_RADIUS_M * v.hand_scale
        touching = 0
        for digit in range(5):
            probes = synth._digit_points(v.hand_joints_table[k], digit)
            sdf = v.object_shape.sdf((probes - v.object_pose_table[k, :3]) @ R)
            assert sdf.min() > radius - 0.003  # no digit sunk into the object
            touching += sdf.min() < radius + 0.003
        assert touching >= 2, v.traj.source
        # and open before: the pre-shape aperture exceeds the grasp's
        k0 = _frame(v, v.phases["preshape"][1])
        aperture = lambda j: np.linalg.norm(j[4] - j[8])  # noqa: E731
        assert aperture(v.hand_joints_table[k0]) > aperture(v.hand_joints_table[k]) - 0.005


def test_reachable_workspace(episodes):
    for v in episodes:
        joints = v.hand_joints_table
        wrist = joints[:, 0]
        assert np.ptp(wrist, axis=0).max() <= 0.5, v.traj.source
        assert joints[..., 2].min() >= 0.0 and joints[..., 2].max() <= 0.35
        depth = v.traj.hand_joints[..., 2]
        assert np.nanmin(depth) > 0.35 and np.nanmax(depth) < 1.0  # camera frame: in front, 0.4-0.9 m


def test_camera_frame_and_gravity(episodes):
    for v in episodes:
        R, t = v.camera_from_table[:3, :3], v.camera_from_table[:3, 3]
        np.testing.assert_allclose(v.traj.gravity, R @ [0, 0, -1], atol=1e-6)
        assert 0.45 < v.traj.gravity[1] < 0.85 and abs(v.traj.gravity[0]) < 0.1  # pitched down, small roll
        clean_cam = v.hand_joints_table @ R.T + t
        err = v.traj.hand_joints - clean_cam
        jitter = np.sqrt(np.nanmean(np.sum(err**2, axis=-1)))
        assert 0.002 < jitter < 0.007, jitter  # 3-5 mm per joint, like lifted video
        # aligning gravity gives a frame where the table is level
        A = hoi.gravity_alignment(v.traj.gravity)
        obj_h = (v.traj.object_pose[:, :3] @ A.T)[: _frame(v, v.phases["approach"][0]) + 1, 2]
        assert np.nanstd(obj_h) < 0.003


def test_dropouts_are_short(episodes):
    had_hand_gap = had_object_gap = False
    for v in episodes:
        t = v.traj
        missing = np.isnan(t.hand_joints).any(axis=(1, 2))
        starts, lengths = hoi._runs(missing)
        assert (lengths < 0.2 * t.fps).all()
        had_hand_gap |= len(lengths) > 0
        starts, lengths = hoi._runs(np.isnan(t.object_pose).any(axis=1))
        assert (lengths < 0.2 * t.fps).all()
        had_object_gap |= len(lengths) > 0
    assert had_hand_gap and had_object_gap


def test_left_hands_have_left_geometry_and_mirror_to_right():
    for i in range(3):
        v = synth.make_episode(synth.video_rng(9, i), i, 9, hand_side="left")
        assert v.traj.hand_side == "left"
        assert np.nanmedian(hoi.chirality(v.traj.hand_joints)) < -0.1
        prepared = hoi.prepare(v.traj)
        assert prepared.hand_side == "right"
        assert np.median(hoi.chirality(prepared.hand_joints)) > 0.1
        right = synth.make_episode(synth.video_rng(9, i), i, 9, hand_side="right")
        assert np.nanmedian(hoi.chirality(right.traj.hand_joints)) > 0.1


@pytest.mark.parametrize("shape", synth.SHAPES)
def test_every_shape(shape):
    v = synth.make_episode(synth.video_rng(2, 0), 0, 2, shape=shape)
    assert v.shape == shape
    pts = v.traj.object_points.astype(np.float64)
    np.testing.assert_allclose(v.object_shape.sdf(pts), 0.0, atol=1e-6)  # on the surface, object frame
    hoi.prepare(v.traj)


def test_make_trajectory_and_bad_arguments():
    t = synth.make_trajectory(synth.video_rng(0, 4), 4, seed=0)
    assert t.source == "synth/0/0004"
    with pytest.raises(ValueError):
        synth.video_rng(-1, 0)
    with pytest.raises(ValueError):
        synth.make_episode(synth.video_rng(0, 0), 0, shape="teapot")
    with pytest.raises(ValueError):
        synth.make_episode(synth.video_rng(0, 0), 0, hand_side="both")
