"""Format 1 (HOI trajectory): save / load validation, preparation for retargeting, mirroring, gravity."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hop_data import hoi
from hop_data.hoi import HOIFormatError, HOITrajectory
from hop_robot.embodiment import spec


# ---------------------------------------------------------------- fixtures
def _hand(rng: np.random.Generator, T: int) -> np.ndarray:
    """A plausible right hand (palm down, fingers curled a little), moving slowly: (T, 21, 3)."""
    base = np.zeros((21, 3))
    mcps = {5: (0.085, 0.024, -0.002), 9: (0.09, 0.0, 0.0), 13: (0.085, -0.02, -0.004), 17: (0.077, -0.039, -0.009)}
    for mcp, p in mcps.items():
        base[mcp] = p
        for k in range(1, 4):  # fingers go on and bend palmar (-z)
            base[mcp + k] = np.array(p) + [0.03 * k, 0.0, -0.012 * k * k]
    base[1:5] = [(0.024, 0.022, -0.014), (0.045, 0.045, -0.03), (0.06, 0.06, -0.045), (0.075, 0.07, -0.055)]
    t = np.arange(T)[:, None, None]
    return base[None] + 0.001 * t * np.array([1.0, 0.5, 0.2]) + rng.normal(0, 1e-4, (T, 21, 3))


def _traj(T: int = 60, fps: float = 30.0, seed: int = 0, **kw) -> HOITrajectory:
    rng = np.random.default_rng(seed)
    angle = np.linspace(0.0, 1.0, T)
    pose = np.concatenate(
        [np.linspace([0.1, 0.2, 0.5], [0.3, 0.1, 0.6], T), np.stack([np.cos(angle / 2), 0 * angle, 0 * angle, np.sin(angle / 2)], 1)], 1
    )
    fields = dict(
        hand_joints=_hand(rng, T).astype(np.float32),
        object_pose=pose.astype(np.float32),
        object_points=rng.normal(0, 0.03, (128, 3)).astype(np.float32),
        fps=fps,
        gravity=np.array([0.0, 1.0, 0.0], np.float32),
        hand_side="right",
        source="test/clip",
    )
    fields.update(kw)
    return HOITrajectory(**fields)


def _write(path: Path, **arrays) -> Path:
    """Write an npz directly (bypassing ``save``'s validation) from the default fields, with overrides."""
    t = _traj()
    fields = {
        "hand_joints": t.hand_joints, "object_pose": t.object_pose, "object_points": t.object_points,
        "fps": np.array(t.fps), "gravity": t.gravity, "hand_side": np.array(t.hand_side), "source": np.array(t.source),
    }  # fmt: skip
    for k, v in arrays.items():
        if v is None:
            fields.pop(k)
        else:
            fields[k] = v
    np.savez(path, **fields)
    return path


# ---------------------------------------------------------------- constants
def test_joint_names_follow_mano_order():
    assert len(hoi.HUMAN_JOINT_NAMES) == 21
    assert hoi.HUMAN_JOINT_NAMES[0] == "wrist" and hoi.HUMAN_JOINT_NAMES[4] == "thumb_tip"
    assert [hoi.HUMAN_JOINT_NAMES[i] for i in hoi.FINGERTIPS] == ["thumb_tip", "index_tip", "middle_tip", "ring_tip", "little_tip"]
    assert hoi.FINGER_JOINTS["middle"] == (9, 10, 11, 12)
    # the robot's keypoint map indexes the same joints
    assert [hoi.HUMAN_JOINT_NAMES[i] for i in spec.HUMAN_KEYPOINT_INDEX][:5] == [
        "wrist", "index_mcp", "middle_mcp", "ring_mcp", "thumb_mcp",
    ]  # fmt: skip


# ---------------------------------------------------------------- round trip
def test_save_load_round_trip(tmp_path):
    t = _traj()
    t.hand_joints[3, 7] = np.nan  # one unseen joint
    t.object_pose[10] = np.nan  # one unknown object row
    path = hoi.save(tmp_path / "clip.hoi.npz", t)
    assert path.name == "clip.hoi.npz"
    back = hoi.load(path)
    np.testing.assert_array_equal(back.hand_joints, t.hand_joints)
    np.testing.assert_allclose(back.object_pose, t.object_pose, atol=1e-6)
    np.testing.assert_array_equal(back.object_points, t.object_points)
    assert back.fps == 30.0 and back.hand_side == "right" and back.source == "test/clip"
    assert back.hand_joints.dtype == back.object_pose.dtype == back.object_points.dtype == back.gravity.dtype == np.float32
    with np.load(path, allow_pickle=False) as z:  # plain npz, no pickles, strings as 0-d unicode
        assert z["source"].dtype.kind == "U" and z["source"].shape == ()


def test_save_is_byte_deterministic(tmp_path):
    a = hoi.save(tmp_path / "a.hoi.npz", _traj())
    b = hoi.save(tmp_path / "b.hoi.npz", _traj())
    assert a.read_bytes() == b.read_bytes()


def test_load_casts_float64_and_normalises(tmp_path):
    t = _traj()
    pose = t.object_pose.astype(np.float64)
    pose[:, 3:] *= 1.05  # near-unit quaternions
    path = _write(tmp_path / "f64.hoi.npz", hand_joints=t.hand_joints.astype(np.float64), object_pose=pose,
                  gravity=np.array([0.0, 9.81, 0.0]), fps=np.array(30))  # fmt: skip
    back = hoi.load(path)
    assert back.hand_joints.dtype == np.float32 and back.object_pose.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(back.object_pose[:, 3:], axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(back.gravity, [0, 1, 0])
    assert back.fps == 30.0


# ---------------------------------------------------------------- bad inputs
T0 = 60
BAD_CASES = {
    "missing key": ({"gravity": None}, "gravity", "missing"),
    "hand shape": ({"hand_joints": np.zeros((10, 20, 3), np.float32)}, "hand_joints", "(T, 21, 3), got (10, 20, 3)"),
    "hand 2-d": ({"hand_joints": np.zeros((10, 63), np.float32)}, "hand_joints", "(T, 21, 3)"),
    "hand int dtype": ({"hand_joints": np.zeros((T0, 21, 3), np.int64)}, "hand_joints", "float"),
    "hand inf": ({"hand_joints": np.full((T0, 21, 3), np.inf, np.float32)}, "hand_joints", "infinite"),
    "too short": ({"hand_joints": np.zeros((1, 21, 3), np.float32), "object_pose": np.tile([0, 0, 0, 1, 0, 0, 0], (1, 1)).astype(np.float32)},
                  "hand_joints", "at least 2 frames"),  # fmt: skip
    "pose rows": ({"object_pose": np.tile([0, 0, 0, 1, 0, 0, 0], (T0 - 1, 1)).astype(np.float32)}, "object_pose", "(T, 7)"),
    "pose width": ({"object_pose": np.zeros((T0, 6), np.float32)}, "object_pose", "(T, 7)"),
    "zero quaternion": ({"object_pose": np.zeros((T0, 7), np.float32)}, "object_pose", "zero-length quaternion"),
    "wild quaternion": ({"object_pose": np.tile([0, 0, 0, 2, 0, 0, 0], (T0, 1)).astype(np.float32)}, "object_pose", "norm 2"),
    "partly NaN pose": ({"object_pose": np.tile([np.nan, 0, 0, 1, 0, 0, 0], (T0, 1)).astype(np.float32)}, "object_pose", "partly-NaN"),
    "few points": ({"object_points": np.zeros((99, 3), np.float32)}, "object_points", "at least 100"),
    "points shape": ({"object_points": np.zeros((200, 4), np.float32)}, "object_points", "(P, 3)"),
    "points NaN": ({"object_points": np.full((200, 3), np.nan, np.float32)}, "object_points", "finite"),
    "fps zero": ({"fps": np.array(0.0)}, "fps", "> 0"),
    "fps nan": ({"fps": np.array(np.nan)}, "fps", "> 0"),
    "fps vector": ({"fps": np.array([30.0])}, "fps", "scalar"),
    "fps string": ({"fps": np.array("30")}, "fps", "number"),
    "gravity zero": ({"gravity": np.zeros(3, np.float32)}, "gravity", "non-zero"),
    "gravity shape": ({"gravity": np.zeros(4, np.float32)}, "gravity", "(3,)"),
    "gravity nan": ({"gravity": np.array([0, np.nan, 0], np.float32)}, "gravity", "finite"),
    "hand side": ({"hand_side": np.array("both")}, "hand_side", "'both'"),
    "hand side bytes": ({"hand_side": np.array(b"right")}, "hand_side", "unicode"),
    "source empty": ({"source": np.array("  ")}, "source", "non-empty"),
    "source not string": ({"source": np.array(3.0)}, "source", "unicode"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_load_rejects_bad_file_naming_the_key(tmp_path, case):
    overrides, key, words = BAD_CASES[case]
    path = _write(tmp_path / "clip.hoi.npz", **overrides)
    with pytest.raises(HOIFormatError) as err:
        hoi.load(path)
    msg = str(err.value)
    assert err.value.key == key
    assert msg.startswith(f"{path}: key '{key}'"), msg
    assert words in msg, msg


def test_error_message_format(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(Path("clip.hoi.npz"), hand_joints=np.zeros((10, 20, 3), np.float32))
    with pytest.raises(HOIFormatError, match=r"^clip\.hoi\.npz: key 'hand_joints' must be \(T, 21, 3\), got \(10, 20, 3\)$"):
        hoi.load("clip.hoi.npz")


def test_load_refuses_pickled_object_arrays(tmp_path):
    path = tmp_path / "pickled.hoi.npz"
    t = _traj()
    np.savez(path, hand_joints=t.hand_joints, object_pose=t.object_pose, object_points=t.object_points, fps=np.array(30.0),
             gravity=t.gravity, hand_side=np.array("right", dtype=object), source=np.array("x"))  # fmt: skip
    with pytest.raises(HOIFormatError, match="key 'hand_side'.*pickle"):
        hoi.load(path)


def test_load_rejects_partly_nan_joint(tmp_path):
    hand = _traj().hand_joints.copy()
    hand[5, 3, 1] = np.nan
    path = _write(tmp_path / "c.hoi.npz", hand_joints=hand)
    with pytest.raises(HOIFormatError, match="key 'hand_joints'.*frame 5, joint 3"):
        hoi.load(path)


@pytest.mark.parametrize("content", [b"not an npz at all, just bytes\n" * 10, b"", "truncated"])
def test_load_rejects_non_npz_files(tmp_path, content):
    path = tmp_path / "bad.hoi.npz"
    if content == "truncated":
        hoi.save(path, _traj())
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(HOIFormatError, match=str(path)):
        hoi.load(path)


def test_load_rejects_corrupt_member(tmp_path):
    path = tmp_path / "corrupt.hoi.npz"
    hoi.save(path, _traj())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("hand_joints.npy")
    start = info.header_offset + 30 + len(info.filename) + 20 + 40  # inside the compressed data
    data[start : start + 64] = bytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(HOIFormatError, match=str(path)):
        hoi.load(path)


def test_load_rejects_directory_and_npy(tmp_path):
    (tmp_path / "dir.hoi.npz").mkdir()
    with pytest.raises(HOIFormatError, match="dir.hoi.npz"):
        hoi.load(tmp_path / "dir.hoi.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(HOIFormatError, match="single .npy array"):
        hoi.load(tmp_path / "single.npy")
    with pytest.raises(FileNotFoundError):
        hoi.load(tmp_path / "absent.hoi.npz")


def test_save_validates(tmp_path):
    with pytest.raises(HOIFormatError, match="key 'hand_side'"):
        hoi.save(tmp_path / "x.hoi.npz", _traj(hand_side="up"))
    assert not list(tmp_path.iterdir())  # nothing written, no temporary left behind


# ---------------------------------------------------------------- preparation
def test_gap_interpolation_recovers_a_known_signal():
    T, fps = 90, 30.0
    t = np.arange(T) / fps
    truth = _traj(T=T, fps=fps)
    hand = truth.hand_joints.astype(np.float64)
    hand[:] = hand[0] + (0.1 * t)[:, None, None] * np.array([1.0, -0.5, 0.25])  # linear motion
    axis_angle = 0.8 * t  # rotation about a fixed axis at constant rate: slerp recovers it exactly
    axis = np.array([1.0, 2.0, 2.0]) / 3.0
    quat = np.concatenate([np.cos(axis_angle / 2)[:, None], np.sin(axis_angle / 2)[:, None] * axis], 1)
    pose = np.concatenate([np.outer(t, [0.05, 0.0, -0.02]) + [0.1, 0.2, 0.5], quat], 1)
    gappy_hand, gappy_pose = hand.copy(), pose.copy()
    gappy_hand[20:27] = np.nan  # 7 frames = 0.233 s, interior
    gappy_hand[40, 8] = np.nan  # one fingertip: the whole frame counts as missing
    gappy_pose[50:55] = np.nan
    traj = replace(truth, hand_joints=gappy_hand.astype(np.float32), object_pose=gappy_pose.astype(np.float32))
    out = hoi.prepare(traj, control_hz=fps)  # same rate: no resampling, only gap filling
    assert out.num_frames == T and not np.isnan(out.hand_joints).any()
    np.testing.assert_allclose(out.hand_joints, hand, atol=2e-6)
    np.testing.assert_allclose(out.object_pose[:, :3], pose[:, :3], atol=2e-6)
    dots = np.abs(np.sum(out.object_pose[:, 3:].astype(np.float64) * quat, axis=1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-6)


def test_short_leading_and_trailing_gaps_hold_nearest_value():
    traj = _traj(T=90)
    hand = traj.hand_joints.copy()
    hand[:5] = np.nan
    hand[-3:] = np.nan
    out = hoi.prepare(replace(traj, hand_joints=hand), control_hz=30.0)
    np.testing.assert_array_equal(out.hand_joints[:5], np.broadcast_to(hand[5], (5, 21, 3)))
    np.testing.assert_array_equal(out.hand_joints[-3:], np.broadcast_to(hand[-4], (3, 21, 3)))


@pytest.mark.parametrize(
    "key, rows, kind",
    [("hand_joints", slice(30, 38), "interior"), ("hand_joints", slice(0, 9), "leading"),
     ("object_pose", slice(82, 90), "trailing"), ("object_pose", slice(0, 90), "no known")],
)  # fmt: skip
def test_long_gaps_are_rejected(key, rows, kind):
    traj = _traj(T=90)
    arr = getattr(traj, key).copy()
    arr[rows] = np.nan
    with pytest.raises(HOIFormatError) as err:
        hoi.prepare(replace(traj, **{key: arr}))
    assert err.value.key == key and kind in str(err.value)
    if kind != "no known":
        n = rows.stop - rows.start
        assert f"{n} frames ({n / 30:.3f} s)" in str(err.value) and f"frames {rows.start}-{rows.stop - 1}" in str(err.value)


def test_resampling_a_linear_motion_is_exact():
    T, fps = 151, 30.0  # 5 s
    t = np.arange(T) / fps
    velocity = np.array([0.2, -0.1, 0.05])
    hand = np.broadcast_to(_hand(np.random.default_rng(1), 1)[0], (T, 21, 3)) + (t[:, None] * velocity)[:, None, :]
    rate = 0.6  # rad/s about z
    quat = np.stack([np.cos(rate * t / 2), 0 * t, 0 * t, np.sin(rate * t / 2)], 1)
    pose = np.concatenate([0.3 + t[:, None] * velocity, quat], 1)
    traj = _traj(T=T, fps=fps, hand_joints=hand.astype(np.float32), object_pose=pose.astype(np.float32))
    out = hoi.prepare(traj)
    assert out.fps == spec.CONTROL_HZ
    n = out.num_frames
    assert n == int(5 * spec.CONTROL_HZ) + 1
    t_out = np.arange(n) / spec.CONTROL_HZ
    expected = hand[0] + (t_out[:, None] * velocity)[:, None, :]
    np.testing.assert_allclose(out.hand_joints, expected, atol=2e-6)
    np.testing.assert_allclose(out.object_pose[:, :3], 0.3 + t_out[:, None] * velocity, atol=2e-6)
    expected_q = np.stack([np.cos(rate * t_out / 2), 0 * t_out, 0 * t_out, np.sin(rate * t_out / 2)], 1)
    np.testing.assert_allclose(out.object_pose[:, 3:], expected_q, atol=2e-6)


def test_resampling_handles_quaternion_sign_flips():
    traj = _traj(T=90)
    pose = traj.object_pose.copy()
    pose[1::2, 3:] *= -1  # same rotations, alternating signs
    out = hoi.prepare(replace(traj, object_pose=pose), control_hz=20)
    ref = hoi.prepare(traj, control_hz=20)
    dots = np.abs(np.sum(out.object_pose[:, 3:] * ref.object_pose[:, 3:], axis=1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-6)


def test_too_short_is_rejected_with_duration():
    with pytest.raises(HOIFormatError, match=r"key 'hand_joints' spans 1\.500 s \(45 frames at 30 fps\); at least 2 s"):
        hoi.prepare(_traj(T=45))
    assert hoi.prepare(_traj(T=60)).num_frames == 40  # exactly 2 s passes


# ---------------------------------------------------------------- mirroring
def _triple(hand: np.ndarray) -> np.ndarray:
    """Sign of det(index MCP - wrist, little MCP - wrist, thumb MCP - wrist) per frame."""
    w = hand[:, 0]
    return np.sign(np.linalg.det(np.stack([hand[:, 5] - w, hand[:, 17] - w, hand[:, 2] - w], axis=1)))


@pytest.mark.parametrize("gravity", [(0.0, 1.0, 0.0), (0.0, 0.6, 0.8), (0.1, 0.7, 0.7), (1.0, 0.0, 0.0)])
def test_mirroring_twice_is_identity(gravity):
    t = hoi.validate(_traj(gravity=np.array(gravity, np.float32)))
    twice = hoi.mirror(hoi.mirror(t))
    np.testing.assert_allclose(twice.hand_joints, t.hand_joints, atol=1e-6)
    np.testing.assert_allclose(twice.object_pose, t.object_pose, atol=1e-6)
    np.testing.assert_allclose(twice.object_points, t.object_points, atol=1e-6)
    assert twice.hand_side == t.hand_side
    once = hoi.mirror(t)
    assert once.hand_side == "left"
    np.testing.assert_allclose(once.gravity, t.gravity, atol=1e-6)  # the mirror plane contains gravity


def test_mirror_changes_chirality_and_keeps_rigid_geometry():
    t = hoi.validate(_traj(gravity=np.array([0.05, 0.8, 0.6], np.float32)))
    m = hoi.mirror(t)
    assert (hoi.chirality(t.hand_joints) > 0).all() and (_triple(t.hand_joints) > 0).all()
    assert (hoi.chirality(m.hand_joints) < 0).all() and (_triple(m.hand_joints) < 0).all()
    R = hoi.quat_to_matrix(m.object_pose[:, 3:])
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-5)  # proper rotations
    # World object points, mirrored, equal the mirrored pose applied to the mirrored points.
    M = hoi.mirror_matrix(t.gravity)
    world = t.object_pose[:, None, :3] + np.einsum("tij,pj->tpi", hoi.quat_to_matrix(t.object_pose[:, 3:]), t.object_points)
    world_m = m.object_pose[:, None, :3] + np.einsum("tij,pj->tpi", R, m.object_points)
    np.testing.assert_allclose(world_m, world @ M.T, atol=1e-5)
    # The camera-frame mirror is the image flipped left-right.
    np.testing.assert_allclose(hoi.mirror_matrix([0, np.cos(0.7), np.sin(0.7)]), np.diag([-1.0, 1, 1]), atol=1e-12)


def test_prepare_mirrors_left_hands():
    right = _traj(T=90)
    left = hoi.mirror(hoi.validate(right))
    out = hoi.prepare(left)
    assert out.hand_side == "right"
    assert (hoi.chirality(out.hand_joints) > 0).all()
    np.testing.assert_allclose(out.hand_joints, hoi.prepare(right).hand_joints, atol=1e-6)


# ---------------------------------------------------------------- gravity alignment
@pytest.mark.parametrize("g", [(0, 1, 0), (0, 0.6, 0.8), (0.3, -0.2, 0.9), (0, 0, -1), (0, 0, 1), (1e-9, 0, 1)])
def test_gravity_alignment_is_a_rotation_to_minus_z(g):
    R = hoi.gravity_alignment(np.array(g, float))
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(R) == pytest.approx(1.0)
    gu = np.array(g, float) / np.linalg.norm(g)
    np.testing.assert_allclose(R @ gu, [0, 0, -1], atol=1e-9)
    np.testing.assert_array_equal(R, hoi.gravity_alignment(np.array(g, float)))  # deterministic


def test_gravity_alignment_convention():
    np.testing.assert_allclose(hoi.gravity_alignment([0, 0, -1]), np.eye(3))
    # OpenCV camera looking down at 50 deg: image-right stays +x, the viewing direction goes to +y (level) and up.
    a = np.deg2rad(50)
    R = hoi.gravity_alignment([0, np.cos(a), np.sin(a)])
    np.testing.assert_allclose(R @ [1, 0, 0], [1, 0, 0], atol=1e-12)
    forward = R @ [0, 0, 1]
    assert forward[0] == pytest.approx(0) and forward[1] > 0 and forward[2] == pytest.approx(-np.sin(a))
    with pytest.raises(ValueError):
        hoi.gravity_alignment([0, 0, 0])


def test_rotation_helpers_round_trip():
    rng = np.random.default_rng(3)
    q = hoi.quat_normalize(rng.normal(size=(200, 4)))
    R = hoi.quat_to_matrix(q)
    q2 = hoi.matrix_to_quat(R)
    np.testing.assert_allclose(np.abs(np.sum(q * q2, 1)), 1.0, atol=1e-12)
    np.testing.assert_allclose(hoi.quat_to_matrix(hoi.quat_multiply(q[:100], q[100:])), R[:100] @ R[100:], atol=1e-12)
    mid = hoi.slerp(q[:100], q[100:], np.full(100, 0.5))
    np.testing.assert_allclose(np.linalg.norm(mid, axis=1), 1.0)


# ---------------------------------------------------------------- hand provenance (optional key)
def test_provenance_round_trip_and_default(tmp_path):
    t = _traj(T=60)
    hand = t.hand_joints.copy()
    hand[10:12] = np.nan
    prov = np.full(60, hoi.OBSERVED, np.uint8)
    prov[5:8], prov[20:30], prov[40] = hoi.RECOVERED, hoi.CARRIED, hoi.INTERPOLATED
    prov[10:12] = hoi.UNSEEN
    back = hoi.load(hoi.save(tmp_path / "p.hoi.npz", replace(t, hand_joints=hand, hand_provenance=prov)))
    assert back.hand_provenance.dtype == np.uint8
    np.testing.assert_array_equal(back.hand_provenance, prov)
    assert hoi.provenance_fractions(back.hand_provenance)["carried"] == pytest.approx(10 / 60)
    # absent: observed where seen, unseen where no joint is
    plain = hoi.load(hoi.save(tmp_path / "q.hoi.npz", replace(t, hand_joints=hand)))
    assert plain.hand_provenance is None
    np.testing.assert_array_equal(hoi.provenance(plain), np.where(np.arange(60) // 2 == 5, hoi.UNSEEN, hoi.OBSERVED))
    assert hoi.PROVENANCE_NAMES[hoi.CARRIED] == "carried" and len(hoi.PROVENANCE_NAMES) == hoi.UNSEEN + 1


@pytest.mark.parametrize(
    "value, words",
    [(np.zeros(60, np.float32), "integer array"), (np.zeros(59, np.uint8), "(T,) with T = 60"),
     (np.full(60, 7, np.uint8), "code 7 at frame 0"), (np.full(60, hoi.UNSEEN, np.uint8), "marks frame 0 'unseen' but its joints are seen")],
)  # fmt: skip
def test_provenance_is_validated(tmp_path, value, words):
    path = _write(tmp_path / "clip.hoi.npz", hand_provenance=value)
    with pytest.raises(HOIFormatError) as err:
        hoi.load(path)
    assert err.value.key == "hand_provenance" and words in str(err.value), str(err.value)
    t = _traj()
    hand = t.hand_joints.copy()
    hand[3] = np.nan
    with pytest.raises(HOIFormatError, match="marks frame 3 'observed' but none of its joints is seen"):
        hoi.validate(replace(t, hand_joints=hand, hand_provenance=np.zeros(60, np.uint8)))


def test_prepare_resamples_provenance_and_marks_filled_frames():
    t = _traj(T=90)
    hand = t.hand_joints.copy()
    hand[30:33] = np.nan
    prov = np.zeros(90, np.uint8)
    prov[30:33] = hoi.UNSEEN
    prov[60:90] = hoi.CARRIED
    out = hoi.prepare(replace(t, hand_joints=hand, hand_provenance=prov), control_hz=30.0)
    assert (out.hand_provenance[30:33] == hoi.INTERPOLATED).all() and (out.hand_provenance[60:] == hoi.CARRIED).all()
    out20 = hoi.prepare(replace(t, hand_joints=hand, hand_provenance=prov))
    assert out20.hand_provenance.shape == (out20.num_frames,) and (out20.hand_provenance[41:] == hoi.CARRIED).all()


# ---------------------------------------------------------------- the one rule for gaps and jumps
def test_jumps_are_refused_and_segments_cut_by_the_rule():
    t = _traj(T=150)
    hand = t.hand_joints.copy()
    hand[100:] += np.array([0.3, 0.0, 0.0], np.float32)  # 0.3 m in one frame: 9 m/s
    with pytest.raises(HOIFormatError, match=r"jumps: the wrist moves 0\.30\d m between frames 99 and 100 .* 9\.\d m/s"):
        hoi.prepare(replace(t, hand_joints=hand))
    hand[40:50] = np.nan  # an unbridgeable gap (0.33 s) too
    hand[70:72] = np.nan  # a short one, kept inside its segment
    segs = hoi.split_segments(hand, 30.0)
    assert [(s.start, s.stop, s.usable) for s in segs] == [(0, 40, False), (50, 100, False), (100, 150, False)]
    assert "under the 2 s" in segs[0].reason
    segs = hoi.split_segments(hand, 30.0, hoi.GapRule(min_duration_s=1.5))
    assert [(s.start, s.stop, s.usable) for s in segs] == [(0, 40, False), (50, 100, True), (100, 150, True)]
    for s in segs[1:]:  # each usable piece passes the rule on its own
        piece = replace(t, hand_joints=hand[s.start : s.stop], object_pose=t.object_pose[s.start : s.stop])
        hoi.check_rule(piece, hoi.GapRule(min_duration_s=1.5))
    assert hoi.RETARGET_RULE.max_gap_frames(30.0) == 7 and hoi.RETARGET_RULE.min_frames(30.0) == 60
