"""Synthetic videos with real hand poses (hop_data/synth/real_hands.py): the
fingers take the given poses' shapes at the right phases while the wrist path,
object and camera stay the synthetic video's; and, with the shared photos, the
poses MediaPipe measures make right-handed, valid, retargetable files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from hop_data import hoi
from hop_data.lifting import testclips
from hop_data.lifting.objects import hand_frame
from hop_data.synth import make_episode, video_rng
from hop_data.synth.real_hands import RealHandPose, _local, real_hand_corpus, with_real_hands


def _pose_from(index: int, frame: str) -> RealHandPose:
    """A stand-in "real" pose: another synthetic video's clean hand at rest or in its hold."""
    video = make_episode(video_rng(7, index), index, 7, hand_side="right")
    t = video.traj.times
    k = 0 if frame == "open" else int(np.searchsorted(t, np.mean(video.phases["lift"])))
    return RealHandPose(f"video{index}", "right", video.hand_joints_table[k].astype(np.float64), 0.0 if frame == "open" else 1.0)


def _shape_error(joints: np.ndarray, pose: RealHandPose) -> float:
    """Largest joint distance (in hand sizes) between a frame's shape and a pose's."""
    return float(np.abs(_local(joints.astype(np.float64)) - _local(pose.joints)).max())


def test_fingers_take_the_poses_and_the_wrist_path_stays():
    video = make_episode(video_rng(3, 0), 0, 3, hand_side="right")
    open_pose, grasp_pose = _pose_from(1, "open"), _pose_from(2, "grasp")
    assert _shape_error(open_pose.joints, grasp_pose) > 0.1  # the two poses differ
    traj = with_real_hands(video, open_pose, grasp_pose, source="synth-real/3/0000")
    before, after = video.traj.hand_joints, traj.hand_joints
    seen = np.isfinite(before).all(axis=(1, 2))
    np.testing.assert_array_equal(np.isfinite(after).all(axis=(1, 2)), seen)  # dropouts kept
    R0, o0 = hand_frame(before[seen])
    R1, o1 = hand_frame(after[seen])
    np.testing.assert_allclose(o1, o0, atol=1e-5)  # the wrist path
    np.testing.assert_allclose(R1, R0, atol=1e-4)  # and the hand's orientation
    times = video.traj.times
    first = np.flatnonzero(seen & (times < video.phases["grasp"][0]))[0]
    held = np.flatnonzero(seen & (times > video.phases["grasp"][1]) & (times < video.phases["release"][0]))[0]
    assert _shape_error(after[first], open_pose) < 1e-4
    assert _shape_error(after[held], grasp_pose) < 1e-4
    size = hoi.hand_size(before)
    assert hoi.hand_size(after) == pytest.approx(size, rel=0.02)  # scaled to the video's hand
    np.testing.assert_allclose(traj.object_pose, video.traj.object_pose, atol=1e-6)  # (validate renormalises)
    assert traj.source == "synth-real/3/0000" and traj.hand_side == "right"


def test_corpus_is_deterministic_and_splits_poses_by_flexion(tmp_path):
    poses = [_pose_from(i, kind) for i, kind in ((1, "open"), (2, "grasp"), (4, "open"), (5, "grasp"))]
    a = real_hand_corpus(tmp_path / "a", 3, 1, poses)
    b = real_hand_corpus(tmp_path / "b", 3, 1, poses[::-1])  # order does not matter: sorted by flexion
    assert [p.name for p in a] == ["real-0000.hoi.npz", "real-0001.hoi.npz", "real-0002.hoi.npz"]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(hoi.load(x).hand_joints, hoi.load(y).hand_joints)
    with pytest.raises(ValueError, match="no real hand poses"):
        real_hand_corpus(tmp_path / "c", 1, 1, [])


@pytest.mark.skipif(not (testclips.SHARED_DATA / testclips.DRINK).is_file(),
                    reason=f"shared test photos not found at {testclips.SHARED_DATA}")  # fmt: skip
def test_synth_with_real_hands_from_the_shared_photos(tmp_path):
    from hop_data.lifting.runtime import lift_python

    try:
        lift_python()
    except FileNotFoundError as exc:
        pytest.skip(f"no lifting environment: {exc}")
    out = tmp_path / "real"
    run = subprocess.run([sys.executable, "-m", "hop_data.cli", "synth", "--out", str(out), "--videos", "2",
                          "--seed", "1", "--real-hands", str(testclips.SHARED_DATA)],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "real hand poses" in run.stdout
    files = sorted(out.glob("*.hoi.npz"))
    assert len(files) == 2
    for f in files:
        traj = hoi.load(f)
        c = hoi.chirality(traj.hand_joints)
        assert np.nanmedian(c) > 0  # right-handed geometry throughout
        assert 0.06 < hoi.hand_size(traj.hand_joints) < 0.12
        assert traj.source.startswith("synth-real/1/")
