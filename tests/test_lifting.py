"""Lifting stage, pure-numpy parts (main environment): camera fit, smoothing,
track selection, object proxy, the whole post-detection pipeline on
observations made from a known 3D trajectory, options and CLI errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from hop_data import hoi
from hop_data.cli import main as hop_data_main
from hop_data.lifting import api, camera, hand_choice, hand_shape, objects, segments, smooth, tracking
from hop_data.lifting.hands import HandBackendUnavailable, HandObservation, HamerHands, make_hand_backend
from hop_robot.geometry import quat_to_matrix

K = camera.Intrinsics(900.0, 900.0, 640.0, 360.0)


def _hand_track(T: int = 90) -> np.ndarray:
    """A rigid right hand (fixed bone lengths, wrist -> middle knuckle 9 cm)
    turning and moving through the camera's view: (T, 21, 3) metres."""
    base = np.zeros((21, 3))
    mcps = {5: (0.085, 0.024, -0.002), 9: (0.09, 0.0, 0.0), 13: (0.085, -0.02, -0.004), 17: (0.077, -0.039, -0.009)}
    for mcp, p in mcps.items():
        base[mcp] = p
        for k in range(1, 4):
            base[mcp + k] = np.array(p) + [0.03 * k, 0.0, -0.012 * k * k]
    base[1:5] = [(0.024, 0.022, -0.014), (0.045, 0.045, -0.03), (0.06, 0.06, -0.045), (0.075, 0.07, -0.055)]
    u = np.linspace(0.0, 1.0, T)
    out = np.empty((T, 21, 3))
    for t in range(T):
        a, b = 0.8 * u[t], 0.5 * np.sin(2 * u[t])
        Rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        Rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
        out[t] = base @ (Rz @ Rx).T + [-0.15 + 0.3 * u[t], 0.05 * np.sin(3 * u[t]), 0.8 - 0.25 * u[t]]
    return out


def _observations(joints: np.ndarray, noise_px: float = 0.0, seed: int = 0, side: str = "right") -> list[HandObservation]:
    rng = np.random.default_rng(seed)
    out = []
    for j in joints:
        xy = K.project(j) + rng.normal(0, noise_px, (21, 2))
        out.append(HandObservation(xy, j - j.mean(axis=0), side, 0.9))
    return out


# ---------------------------------------------------------------- camera
def test_intrinsics_parse_and_estimate():
    assert camera.Intrinsics.parse("800, 810,320,240").as_list() == [800, 810, 320, 240]
    for bad in ("800,800,320", "a,b,c,d", "0,800,320,240"):
        with pytest.raises(ValueError, match="intrinsics"):
            camera.Intrinsics.parse(bad)
    est = camera.estimate_intrinsics(1280, 720)
    assert est.cx == 640 and est.cy == 360
    assert est.fx == pytest.approx(640 / np.tan(np.radians(30)))  # 60 degrees across the long side


def test_place_hand_recovers_translation():
    joints = _hand_track(40)
    centred = joints - joints.mean(axis=1, keepdims=True)
    xy = K.project(joints)
    t, err = camera.place_hand(xy, centred, K)
    np.testing.assert_allclose(t, joints.mean(axis=1), atol=1e-6)
    assert np.all(err < 1e-6)
    # with 2 px of landmark noise, depth within 2 %, lateral within 3 mm
    rng = np.random.default_rng(1)
    t, err = camera.place_hand(xy + rng.normal(0, 2.0, xy.shape), centred, K)
    truth = joints.mean(axis=1)
    assert np.max(np.abs(t[:, 2] / truth[:, 2] - 1)) < 0.02
    assert np.max(np.abs(t[:, :2] - truth[:, :2])) < 0.003
    # NaN frames stay NaN
    xy[3] = np.nan
    t, err = camera.place_hand(xy, centred, K)
    assert np.isnan(t[3]).all() and np.isfinite(t[4]).all()


# ---------------------------------------------------------------- smoothing
def test_savgol_keeps_quadratics_and_respects_gaps():
    T = 40
    x = np.linspace(0, 1, T)
    y = np.stack([1 + 2 * x - 3 * x**2, x], axis=1)
    valid = np.ones(T, bool)
    valid[18:21] = False
    y_in = y.copy()
    y_in[~valid] = np.nan
    out = smooth.savgol(y_in, valid, window=9, order=2)
    np.testing.assert_allclose(out[valid], y[valid], atol=1e-12)  # exact for polynomials of the order, edges included
    assert np.isnan(out[~valid]).all()
    noisy = y + np.random.default_rng(0).normal(0, 0.05, y.shape)
    sm = smooth.savgol(noisy, np.ones(T, bool), window=9)
    assert np.std(sm - y) < 0.6 * np.std(noisy - y)


def test_fill_gaps_and_outliers():
    T = 30
    p = np.stack([np.linspace(0, 1, T)] * 3, axis=1)
    valid = np.ones(T, bool)
    valid[[5, 6, 20, 21, 22, 23]] = False
    filled, v2 = smooth.fill_gaps(np.where(valid[:, None], p, np.nan), valid, max_gap=2)
    assert v2[[5, 6]].all() and not v2[20:24].any()
    np.testing.assert_allclose(filled[[5, 6]], p[[5, 6]], atol=1e-12)
    q = p.copy()
    q[12] += 0.5  # a jump to the wrong place
    keep = smooth.reject_outliers(q, np.ones(T, bool), threshold=0.1)
    assert not keep[12] and keep.sum() == T - 1


# ---------------------------------------------------------------- following one hand
def _mirrored(obs: HandObservation) -> HandObservation:
    """The same image hand with left-hand geometry (depth reflected: what MediaPipe
    returns when its label flips) and the other label."""
    m = obs.metric.copy()
    m[:, 2] = 2 * m[:, 2].mean() - m[:, 2]
    return HandObservation(obs.image_xy.copy(), m, "left" if obs.side == "right" else "right", 0.6)


def test_identity_is_kept_across_a_handedness_label_flip():
    """Two hands: a right hand that reaches (moving) and whose label and 3D
    geometry flip to "left" while it is half hidden (frames 20-29), and a
    resting left hand far away that is briefly labelled "right". The
    tracker follows each by continuity; the followed hand is the reaching
    one, its side measured from the joints' chirality, its flipped frames
    given back right-hand geometry."""
    T = 60
    reach = _observations(_hand_track(T))  # moves 30 cm across, turns
    rest_joints = _hand_track(T)[:1].repeat(T, 0) + np.array([0.25, 0.0, 0.1])
    rest_joints[..., 0] = 2 * rest_joints[..., 0].mean() - rest_joints[..., 0]  # a left hand (mirrored in x)
    rest = _observations(rest_joints, side="left")
    assert hoi.chirality(reach[0].metric) > 0 > hoi.chirality(rest[0].metric)
    dets = []
    for t in range(T):
        a, b = reach[t], rest[t]
        if 20 <= t < 30:
            a = _mirrored(a)  # label and geometry flip: "left"
        if 40 <= t < 45:
            b = HandObservation(b.image_xy, b.metric, "right", 0.9)  # the far hand labelled "right"
        frame = [b, a] if t % 2 else [a, b]
        if t in (33, 34):
            frame = [b]  # the reaching hand missed for two frames
        dets.append(frame)
    tracks = tracking.track_detections(dets, 30.0)
    hands = tracking.stitch(tracks, 30.0)
    assert len(hands) == 2
    entries, side, facts = hand_choice.follow_hand(tracks, T, 30.0, "auto")
    assert side == "right"  # measured, not the labels
    followed = [None if e is None else e.obs for e in entries]
    for t in range(T):
        if t in (33, 34):
            assert followed[t] is None
        else:  # always the reaching hand (its landmarks), never the resting one
            np.testing.assert_allclose(followed[t].image_xy, reach[t].image_xy)
    # --side picks the interacting hand of that measured side
    entries_left, side_left, _ = hand_choice.follow_hand(tracks, T, 30.0, "left")
    assert side_left == "left" and all(np.allclose(e.obs.image_xy, rest[t].image_xy) for t, e in enumerate(entries_left))
    # the flipped frames are given the followed hand's geometry back
    m = tracking.consistent_metric(followed[25], "right")
    assert hoi.chirality(m) > 0
    np.testing.assert_allclose(m, reach[25].metric, atol=1e-9)
    # the lifted hand follows the reaching hand's 3D path through the flip and the short miss
    traj, stats = api.lift_observations(entries, 30.0, K, side, "video/flip", api.LiftOptions())
    err = np.linalg.norm(traj.hand_joints.astype(np.float64) - _hand_track(T), axis=-1)
    assert np.nanmedian(err) < 0.005 and np.isfinite(err).all()
    assert (traj.hand_provenance[[33, 34]] == hoi.INTERPOLATED).all() and stats["provenance"]["observed"] == pytest.approx(58 / 60, abs=1e-3)
    with pytest.raises(api.NoHandError, match="no right hand is followed"):
        hand_choice.follow_hand(tracking.track_detections([[rest[t]] for t in range(T)], 30.0), T, 30.0, "right")


# ---------------------------------------------------------------- the hand that lifts
def _posed(T: int, path: np.ndarray, mirror: bool = False) -> np.ndarray:
    """The test hand held in one pose (a loose grasp: its fingers curled) moved along ``path`` (T, 3)."""
    base = _hand_track(2)[0]
    base = base - base.mean(axis=0)
    if mirror:
        base[:, 0] = -base[:, 0]  # a left hand
    return base[None] + path[:, None, :]


def test_the_hand_that_lifts_is_followed():
    """Two hands, 3 s: a right hand slides an object 30 cm across the table
    (more travel, so the most 'interacting' by presence and motion), a left hand
    waits at its object, then lifts it 10 cm. The tracker's image evidence
    (``object_flow.went_with_hand``: what the hand touched went with it) is
    given: both objects go with their hands. The lifting hand is followed;
    without that evidence, or when the rising hand's object stays behind (a
    hand raised empty), the sliding one; --side right still gives the slider."""
    T, fps = 90, 30.0
    u = np.clip((np.arange(T) - 50) / 25.0, 0.0, 1.0)
    slide = np.stack([np.linspace(-0.25, 0.05, T), np.full(T, 0.12), np.full(T, 0.75)], axis=1)
    lift = np.stack([np.full(T, 0.22), 0.12 - 0.10 * u, np.full(T, 0.75)], axis=1)
    a, b = _observations(_posed(T, slide)), _observations(_posed(T, lift, mirror=True), side="left")
    tracks = tracking.track_detections([[a[t], b[t]] for t in range(T)], fps)
    assert len(tracks) == 2
    slider, lifter = sorted(tracks, key=lambda tr: tr.entries[0].obs.image_xy[0, 0])

    def give(slider_with: float, lifter_with: float) -> None:
        for tr, score in ((slider, slider_with), (lifter, lifter_with)):
            tr.went_with = {t: (t - 10, score) for t in range(10, T, 3)}

    give(0.5, 0.5)
    entries, side, facts = hand_choice.follow_hand(tracks, T, fps, "auto", None, K, api.LiftOptions(), api.lift_observations)
    assert side == "left" and np.allclose(entries[60].obs.image_xy, b[60].image_xy)
    lifts = {h["side"]: h for h in facts["hand_lifts"]}
    assert lifts["left"]["followed"] and 9.0 < lifts["left"]["rise_cm"] < 11.0 and lifts["right"]["rise_cm"] < 1.0
    hands = tracking.stitch(tracks, fps)
    by_side = {h.side: h for h in hands}

    def chosen(side: str = "auto") -> str:
        lifts = hand_choice.hand_lifts(hands, T, fps, K, api.LiftOptions(), 60, api.lift_observations)
        got = tracking.choose_hand(hands, side, None, lifts, 60)
        return "lifter" if got is by_side["left"] else "slider"

    assert chosen() == "lifter" and chosen("right") == "slider"  # --side overrides
    give(0.5, -0.4)
    assert chosen() == "slider"  # the rising hand's object stayed behind: raised empty
    give(0.0, 0.0)
    assert hand_choice.hand_lifts(hands, T, fps, K, api.LiftOptions(), 60, api.lift_observations) == {} or chosen() == "slider"
    for tr in tracks:
        tr.went_with = {}
    entries, _, facts = hand_choice.follow_hand(tracks, T, fps, "auto", None, K, api.LiftOptions(), api.lift_observations)
    assert facts["hand_lifts"] == [] and np.allclose(entries[60].obs.image_xy, a[60].image_xy)  # no image evidence: as before


# ---------------------------------------------------------------- one geometry per hand
def _turns_deg(joints: np.ndarray) -> np.ndarray:
    """Degrees the hand's pointing (wrist -> middle knuckle) turns between consecutive frames."""
    d = joints[:, 9] - joints[:, 0]
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    return np.degrees(np.arccos(np.clip(np.sum(d[1:] * d[:-1], axis=-1), -1.0, 1.0)))


def _other_side_fingers(hand: np.ndarray) -> np.ndarray:
    """The hand with its thumb and fingers mirrored through its palm plane: the
    palm (so the pointing) kept, the chirality the other hand's."""
    n = np.cross(hand[5] - hand[0], hand[17] - hand[0])
    n /= np.linalg.norm(n)
    out = hand.copy()
    free = [j for j in range(21) if j not in hand_shape.RIGID]
    out[free] -= 2.0 * ((hand[free] - hand[0]) @ n)[:, None] * n
    return out


def _wavering(T: int = 60, right_at: tuple[int, ...] = (12, 25, 26, 40)) -> tuple[np.ndarray, list[HandObservation]]:
    """What the backend gave on the real cups video: a right hand given as its
    reflection in depth (a left hand) in most frames, and in a few frames as a
    right hand pointing the same (wrong) way; the fingers point half towards the
    camera (a reflection in depth then turns them by ~100 degrees). Returns the
    truth and the observations."""
    truth = _hand_track(T)
    c, s = np.cos(np.radians(55)), np.sin(np.radians(55))
    centre = truth.mean(axis=1, keepdims=True)
    truth = centre + (truth - centre) @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]).T
    obs = []
    for t in range(T):
        given = hand_shape.reflect_in_depth(truth[t])
        if t in right_at:
            given = _other_side_fingers(given)
        obs.append(HandObservation(K.project(truth[t]), given - given.mean(axis=0), "left", 0.9))
    return truth, obs


def test_reflections_are_chosen_for_the_whole_video():
    truth, obs = _wavering()
    metric = np.stack([o.metric for o in obs])
    # a per-frame choice by chirality turns the hand back and forth
    per_frame = np.stack([tracking.consistent_metric(o, "right") for o in obs])
    assert _turns_deg(per_frame).max() > 60
    chosen, agree = hand_shape.steady_reflections(metric, "right")
    assert _turns_deg(chosen).max() < 5  # the true hand turns < 1 degree a frame
    wavering = np.zeros(len(obs), bool)
    wavering[[12, 25, 26, 40]] = True
    np.testing.assert_allclose(chosen[~wavering], (truth - truth.mean(axis=1, keepdims=True))[~wavering], atol=1e-9)
    assert (agree[wavering] < -hand_shape.OTHER_HAND).all() and (agree[~wavering] > hand_shape.OTHER_HAND).all()
    # lifting drops those frames (the other hand's geometry), bridges them and follows the true hand
    traj, stats = api.lift_observations(obs, 30.0, K, "right", "video/wavering", api.LiftOptions())
    assert stats["other_hand_frames_dropped"] == 4
    assert (traj.hand_provenance[wavering] == hoi.INTERPOLATED).all()
    err = np.linalg.norm(traj.hand_joints.astype(np.float64) - truth, axis=-1)
    assert np.median(err) < 0.005 and err.max() < 0.03
    sizes = np.linalg.norm(traj.hand_joints[:, 9] - traj.hand_joints[:, 0], axis=-1)
    assert sizes.min() > 0.95 * np.median(sizes)  # smoothing never folds the hand


def test_rigid_palm_unfolds_a_folded_palm():
    truth = _hand_track(40)
    given = truth.copy()
    folded = np.arange(10, 18)
    for t in folded:  # the knuckles squeezed towards the middle one (a palm half hidden by what it holds)
        for j in (5, 13, 17):
            given[t, j] = given[t, 9] + 0.15 * (given[t, j] - given[t, 9])
    assert np.linalg.norm(given[folded, 5] - given[folded, 17], axis=-1).max() < 0.01
    out, moved = hand_shape.rigid_palm(given)
    rows = np.setdiff1d(np.arange(40), folded)
    np.testing.assert_allclose(out[rows], truth[rows], atol=1e-9)  # a rigid palm is left alone
    assert moved[rows].max() < 1e-9 and moved[folded].min() > 0.005
    palm = list(hand_shape.RIGID)
    assert np.abs(out[folded][:, palm] - truth[folded][:, palm]).max() < 0.01
    # each finger moved with its base: its bends kept
    np.testing.assert_allclose(out[folded, 8] - out[folded, 5], given[folded, 8] - given[folded, 5], atol=1e-12)
    assert hand_shape.canonical_palm(truth)[0] == pytest.approx([0, 0, 0])
    with pytest.raises(ValueError, match="no frame shows the whole palm"):
        hand_shape.canonical_palm(np.full((3, 21, 3), np.nan))


# ---------------------------------------------------------------- object proxy
def test_anchored_object_moves_with_the_hand_only_while_held():
    joints = _hand_track(60)
    contact = np.zeros(60, bool)
    contact[15:35] = True
    contact[45:55] = True
    proxy = objects.anchored_object(joints, 30.0, contact=contact)
    R, o = objects.hand_frame(joints)
    pose = proxy.pose.astype(np.float64)
    Ro = quat_to_matrix(pose[:, 3:])
    # while held, constant in the hand frame
    rel_p = np.einsum("tji,tj->ti", R, pose[:, :3] - o)
    rel_R = np.einsum("tji,tjk->tik", R, Ro)
    np.testing.assert_allclose(rel_p[15:35], np.repeat(rel_p[15:16], 20, 0), atol=1e-5)
    np.testing.assert_allclose(rel_R[45:55], np.repeat(rel_R[45:46], 10, 0), atol=1e-5)
    # at the first grasp, the centre is the grip centre
    np.testing.assert_allclose(pose[15, :3], objects.grip_centre(joints[15:16])[0], atol=1e-6)
    # before the grasp it rests where grasped; between grasps where released; no jump at the re-grasp
    np.testing.assert_allclose(pose[:15], np.repeat(pose[15:16], 15, 0), atol=1e-6)
    np.testing.assert_allclose(pose[35:45], np.repeat(pose[34:35], 10, 0), atol=1e-6)
    np.testing.assert_allclose(pose[45], pose[44], atol=1e-6)
    assert proxy.points.shape == (objects.NUM_OBJECT_POINTS, 3)
    assert objects.DIAMETER_RANGE[0] <= proxy.diameter <= objects.DIAMETER_RANGE[1]
    r = np.linalg.norm(proxy.points[:, [0, 2]], axis=1)
    assert r.max() == pytest.approx(proxy.diameter / 2, rel=1e-3)
    assert np.ptp(proxy.points[:, 1]) == pytest.approx(proxy.height, rel=1e-3)
    # the grip decides contact without annotations
    c = objects.contact_from_grip(joints, 30.0)
    assert c.dtype == bool and c.any()


# ---------------------------------------------------------------- the whole post-detection pipeline
def test_lift_observations_recovers_a_known_hand():
    joints = _hand_track(90)
    obs = _observations(joints, noise_px=1.0)
    obs[40] = obs[41] = None  # a 2-frame dropout, bridged
    opts = api.LiftOptions(intrinsics="900,900,640,360").validated()
    size = hoi.hand_size(joints)
    traj, stats = api.lift_observations(obs, 30.0, K, "right", "video/test", opts)
    traj = hoi.validate(traj)
    assert traj.hand_side == "right" and traj.gravity.tolist() == [0, 1, 0]
    assert stats["hand_size_m"] == pytest.approx(size, rel=0.02)
    err = np.linalg.norm(traj.hand_joints - joints, axis=-1)
    assert np.isfinite(err).all()
    assert np.median(err) < 0.003 and np.percentile(err, 95) < 0.006  # 1 px of landmark noise, 2-frame gap
    # the scale prior: a wrong hand size scales depth and lateral position together
    traj2, _ = api.lift_observations(obs, 30.0, K, "right", "video/test", api.LiftOptions(hand_size=1.2 * size))
    ratio = np.nanmedian(traj2.hand_joints[:, 0, 2] / traj.hand_joints[:, 0, 2])
    assert ratio == pytest.approx(1.2, rel=0.01)
    with pytest.raises(api.NoHandError, match="seen in 1 of 3 frames"):
        api.lift_observations([None, obs[0], None], 30.0, K, "right", "video/x", opts)


def test_options_and_backends(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="side"):
        api.LiftOptions(side="both").validated()
    with pytest.raises(ValueError, match="hand_size"):
        api.LiftOptions(hand_size=5.0).validated()
    with pytest.raises(ValueError, match="annotations"):
        api.LiftOptions(annotations=str(tmp_path / "none")).validated()
    monkeypatch.delenv("HOP_HAMER_CHECKPOINT", raising=False)
    monkeypatch.delenv("HOP_MANO_DIR", raising=False)
    with pytest.raises(HandBackendUnavailable, match=r"--hands hamer needs .*hamer.ckpt.*MANO_RIGHT.pkl"):
        HamerHands()
    with pytest.raises(HandBackendUnavailable, match="--objects mcc-ho needs"):
        objects.MccHoObjects()
    with pytest.raises(ValueError, match="unknown hand backend"):
        make_hand_backend("openpose")


def test_cli_errors(monkeypatch, tmp_path, capsys):
    assert hop_data_main(["lift", "x.mp4", "--out", str(tmp_path), "--intrinsics", "1,2,3"]) == 2
    assert "intrinsics must be 'fx,fy,cx,cy'" in capsys.readouterr().err
    if not api.lifting_available():
        monkeypatch.setenv("HOP_LIFT_PYTHON", str(tmp_path / "no-python"))
        assert hop_data_main(["lift", "x.mp4", "--out", str(tmp_path)]) == 2
        assert "HOP_LIFT_PYTHON" in capsys.readouterr().err


def test_cli_modules_import_nothing_heavy():
    code = (
        "import sys, hop_data.lifting.cli, hop_data.sources.cli; "
        "heavy = [m for m in ('numpy', 'zarr', 'mediapipe', 'cv2', 'yaml', 'torch') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


# ---------------------------------------------------------------- segments
def test_segments_are_cut_at_an_unbridgeable_gap():
    T = 180  # 6 s
    joints = _hand_track(T)
    obs = _observations(joints, noise_px=0.5)
    for t in list(range(70, 86)) + list(range(150, 160)):
        obs[t] = None  # 0.53 s and 0.33 s: longer than the 0.25 s retargeting bridges
    obs[100] = obs[101] = None  # short: bridged inside its segment
    opts = api.LiftOptions()
    traj, stats = api.lift_observations(obs, 30.0, K, "right", "video/cut", opts)
    pieces = segments.cut_segments(traj, opts)
    assert [(p.start, p.stop) for p in pieces] == [(0, 70), (86, 150), (160, 180)]
    kept = [p for p in pieces if p.traj is not None]
    assert [p.traj.source for p in kept] == ["video/cut/frames_0-69", "video/cut/frames_86-149"]
    assert "spans 0.67 s, under the 2 s" in pieces[2].reason and pieces[2].traj is None
    for p in kept:
        seg = p.traj
        assert seg.num_frames == p.stop - p.start and not np.isnan(seg.hand_joints).any()
        np.testing.assert_allclose(seg.hand_joints, traj.hand_joints[p.start : p.stop], atol=1e-6)
        hoi.prepare(seg)  # retargeting accepts each piece as it stands
    assert (kept[1].traj.hand_provenance[100 - 86 : 102 - 86] == hoi.INTERPOLATED).all()
    assert (traj.hand_provenance[70:86] == hoi.UNSEEN).all()
    # the whole video as one piece keeps the video's own source
    whole, _ = api.lift_observations(_observations(joints[:90]), 30.0, K, "right", "video/one", opts)
    (piece,) = segments.cut_segments(whole, opts)
    assert piece.traj.source == "video/one" and (piece.start, piece.stop) == (0, 90)
    # a piece where the hand idles is dropped
    still, _ = api.lift_observations(_observations(np.repeat(joints[:1], 90, 0)), 30.0, K, "right", "video/idle", opts)
    (piece,) = segments.cut_segments(still, opts)
    assert piece.traj is None and "no interaction" in piece.reason
