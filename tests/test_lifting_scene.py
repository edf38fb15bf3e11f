"""Lifting, what the video says about the scene: contact phases (approach,
grasp, carry, release), a clip without hand-object interaction flagged, and
gravity from a given camera pitch or from the hand's motion (pitched
synthetic cameras with a known answer). Pure numpy, main environment."""

from __future__ import annotations

import numpy as np
import pytest

from hop_data import hoi, synth
from hop_data.lifting import contact, gravity


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b), -1.0, 1.0))))


def _open_hand_clip(T: int = 90, fps: float = 30.0) -> np.ndarray:
    """A flat, open right hand held up in front of the camera, fingers up,
    waving: (T, 21, 3) camera frame."""
    base = np.zeros((21, 3))
    for k, (x, y) in {5: (0.022, -0.085), 9: (0.0, -0.09), 13: (-0.02, -0.085), 17: (-0.038, -0.077)}.items():
        for i in range(4):
            base[k + i] = [x * (1 + 0.15 * i), y - 0.028 * i, -0.004 * i]  # straight fingers, slightly spread
    base[1:5] = [[0.03, -0.02, -0.01], [0.055, -0.035, -0.015], [0.075, -0.05, -0.018], [0.09, -0.065, -0.02]]
    t = np.arange(T) / fps
    out = np.empty((T, 21, 3))
    for i, ti in enumerate(t):
        a = 0.3 * np.sin(2 * np.pi * 0.7 * ti)
        R = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
        out[i] = base @ R.T + [0.05 * np.sin(2 * np.pi * 0.5 * ti), 0.0, 0.5]
    return out


def test_open_hand_without_an_object_is_flagged():
    joints = _open_hand_clip()
    assert hoi.chirality(joints[None, 0])[0] > 0  # a right hand, palm toward the camera
    report = contact.contact_phases(joints, 30.0)
    assert not report.interaction and report.how == "open_hand" and not report.contact.any()
    assert report.verdict.startswith("no hand-object interaction") and "open" in report.verdict
    summary = report.summary(30.0)
    assert summary["interaction"] is False and summary["segments"] == []
    # in the lift summary: flagged under the video's line
    (flag,) = contact.lift_flags({"interaction": summary})
    assert flag.startswith("FLAGGED: no hand-object interaction") and "retargeting refuses it" in flag
    # the lifted trajectory records no contact frame, so retargeting refuses it
    traj = hoi.HOITrajectory(
        joints.astype(np.float32), np.tile(np.array([0, 0, 0.5, 1, 0, 0, 0], np.float32), (90, 1)),
        np.random.default_rng(0).normal(size=(128, 3)).astype(np.float32) * 0.02, 30.0,
        np.array(hoi.CAMERA_GRAVITY, np.float32), "right", "video/wave",
    )  # fmt: skip
    out, info = contact.annotate_trajectory(traj)
    assert out.contact is not None and not out.contact.any() and info["interaction"]["interaction"] is False
    assert info["gravity"]["source"] == "camera_down" and "--camera-pitch" in info["gravity"]["note"]
    from hop_data.retarget.checks import NoInteractionError, check_interaction

    with pytest.raises(NoInteractionError, match="no hand-object interaction"):
        check_interaction(hoi.validate(out), "wave.hoi.npz")


@pytest.mark.parametrize("index", [3, 4, 6, 9])
def test_contact_phases_of_a_reach_grasp_lift_place(index):
    ep = synth.make_episode(synth.video_rng(0, index), index, 0)
    t = ep.traj
    report = contact.contact_phases(t.hand_joints, t.fps)
    assert report.interaction and report.how == "grip"
    held = (t.times >= ep.phases["lift"][0]) & (t.times < ep.phases["place"][0])  # certainly held: lift to set-down
    assert report.contact[held].mean() > 0.9
    assert set(report.phase[held]) <= {"grasp", "carry"} and (report.phase[held] == "carry").mean() > 0.5
    segments = report.summary(t.fps)["segments"]
    assert [s["phase"] for s in segments][:1] == ["approach"] and "release" in [s["phase"] for s in segments]
    assert segments[0]["start"] == 0 and all(a["stop"] == b["start"] for a, b in zip(segments[:-1], segments[1:]))


def test_gravity_from_a_given_camera_pitch():
    est = gravity.video_gravity(np.zeros((5, 21, 3)), np.zeros(5, bool), 30.0, camera_pitch=40.0)
    np.testing.assert_allclose(est.gravity, [0.0, np.cos(np.radians(40)), np.sin(np.radians(40))])
    assert est.source == "given"
    with pytest.raises(ValueError, match="camera_pitch"):
        gravity.from_pitch(120.0)


def test_gravity_estimate_on_pitched_synthetic_cameras():
    """Cameras looking down 35-63 deg (roll up to 4.6 deg): the estimate from the hand's
    motion, where it is made, is within a few degrees; elsewhere camera-down with a note."""
    errors, level_errors, made = [], [], 0
    for i in range(16):
        ep = synth.make_episode(synth.video_rng(1, i), i, 1)
        t = ep.traj
        truth = t.gravity.astype(np.float64)
        out, info = contact.annotate_trajectory(t)
        g = out.gravity.astype(np.float64)
        level_errors.append(_angle_deg(np.array(hoi.CAMERA_GRAVITY), truth))
        if info["gravity"]["source"] == "scene":
            made += 1
            errors.append(_angle_deg(g, truth))
        else:
            assert info["gravity"]["source"] == "camera_down" and "assumed camera-down" in info["gravity"]["note"]
    assert made >= 10  # most videos show a lift
    assert np.median(errors) < 5.0 and max(errors) < 25.0
    assert np.median(errors) < 0.2 * np.median(level_errors)  # far better than assuming a level camera (35-63 deg off)


def test_a_clip_held_throughout_keeps_camera_down_with_a_note():
    ep = synth.make_episode(synth.video_rng(1, 3), 3, 1)
    t = ep.traj
    held = (t.times >= ep.phases["lift"][0]) & (t.times < ep.phases["place"][0])
    est = gravity.estimate(t.hand_joints[held], np.ones(held.sum(), bool), t.fps, grasp_seen=False)
    assert est.source == "camera_down" and "no grasp is seen" in est.note
    np.testing.assert_array_equal(est.gravity, hoi.CAMERA_GRAVITY)


def test_lift_records_contact_and_the_given_camera_pitch(tmp_path):
    """hop-data lift end to end (the lifting environment, a clip made from a real photo):
    the written file carries its contact frames and the gravity of --camera-pitch; the
    sidecar says how both were found."""
    import json
    import subprocess
    import sys

    from hop_data.lifting import api, testclips

    try:
        api.lift_python()
    except FileNotFoundError:
        pytest.skip("no lifting environment (make lift-env)")
    if not (testclips.SHARED_DATA / testclips.DRINK).is_file():
        pytest.skip("shared test photos not found")
    clip = testclips.sliding_clip(tmp_path / "slide.mp4", frames=60, step_px=(2.0, 0.0))
    run = subprocess.run(
        [sys.executable, "-m", "hop_data.cli", "lift", str(clip.path), "--out", str(tmp_path / "out"),
         "--camera-pitch", "30", "--json", "--quiet"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    (path,) = json.loads(run.stdout)["outputs"]
    traj = hoi.load(path)
    np.testing.assert_allclose(traj.gravity, gravity.from_angles(30.0), atol=1e-6)
    assert traj.contact is not None and traj.contact.shape == (traj.num_frames,) and traj.contact.any()
    extra = json.loads((tmp_path / "out" / "slide.lift.json").read_text())["extra"]
    assert extra["gravity"]["source"] == "given" and extra["interaction"]["interaction"] is True
    assert {s["phase"] for s in extra["interaction"]["segments"]} <= set(contact.PHASES)
