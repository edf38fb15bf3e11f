"""DexYCB importer on a small release the test writes in the published layout
(meta.yml, pose.npz, per-camera labels_%06d.npz, calibration YAML with
!!python/tuple tags, YCB model), checked against the ground truth it was made from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hop_data import hoi, synth
from hop_data.cli import main as hop_data_main
from hop_data.sources import dexycb
from hop_robot.geometry import quat_to_matrix

SERIALS = ["836212060125", "839512060362"]
MASTER = "839512060362"  # the second camera is the master: its extrinsics are the identity
EXTR_NAME = "20200702_151821"
F = 12


def _rot(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def _tuple_yaml(values: np.ndarray, indent: str = "  ") -> str:
    return "!!python/tuple\n" + "".join(f"{indent}- {float(v)!r}\n" for v in np.ravel(values))


def _write_calibration(root: Path) -> dict[str, np.ndarray]:
    intr = root / "calibration" / "intrinsics"
    intr.mkdir(parents=True)
    for s in SERIALS:
        (intr / f"{s}_640x480.yml").write_text(
            "color:\n  fx: 615.0\n  fy: 615.0\n  ppx: 320.0\n  ppy: 240.0\n"
            "depth:\n  fx: 390.0\n  fy: 390.0\n  ppx: 320.0\n  ppy: 240.0\n"
        )
    mats = {
        SERIALS[0]: np.hstack([_rot(np.array([0.2, 1.0, 0.1]), 0.9), [[0.4], [-0.1], [0.2]]]),
        MASTER: np.hstack([np.eye(3), np.zeros((3, 1))]),
        # the tag on the table, seen from the master camera looking down at it
        "apriltag": np.hstack([_rot(np.array([1.0, 0.1, 0.0]), -2.2), [[-0.3], [0.25], [0.9]]]),
    }
    extr = root / "calibration" / f"extrinsics_{EXTR_NAME}"
    extr.mkdir(parents=True)
    text = "extrinsics:\n"
    for key, m in mats.items():
        text += f"  '{key}': " + _tuple_yaml(m, "  ").replace("\n  - ", "\n    - ")
    text += f"master: '{MASTER}'\n"
    (extr / "extrinsics.yml").write_text(text)
    mano = root / "calibration" / "mano_20200709_140042_subject-01_right"
    mano.mkdir(parents=True)
    (mano / "mano.yml").write_text("betas:\n" + "".join(f"- {v}\n" for v in np.linspace(-0.5, 0.5, 10)))
    return mats


def _write_box_obj(path: Path, half: tuple[float, float, float]) -> None:
    hx, hy, hz = half
    v = [(x, y, z) for x in (-hx, hx) for y in (-hy, hy) for z in (-hz, hz)]
    quads = [(1, 2, 4, 3), (5, 7, 8, 6), (1, 5, 6, 2), (3, 4, 8, 7), (1, 3, 7, 5), (2, 6, 8, 4)]
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["mtllib textured_simple.obj.mtl"] + [f"v {a} {b} {c}" for a, b, c in v] + ["vt 0 0", "vn 0 0 1"]
    lines += ["f " + " ".join(f"{i}/1/1" for i in q) for q in quads]
    path.write_text("\n".join(lines) + "\n")


def _world_to_cam(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    R, t = m[:, :3], m[:, 3]
    return (points - t) @ R  # R^T (p - t) for row vectors


def _write_sequence(root: Path, mats: dict, subject: str, name: str, side: str, seed: int) -> dict:
    """One sequence with known world-frame hand joints and object poses."""
    rng = np.random.default_rng(seed)
    seq = root / subject / name
    seq.mkdir(parents=True)
    ycb_ids, grasp = [2, 5, 16], 1  # cracker box, mustard bottle (grasped), wood block
    (seq / "meta.yml").write_text(
        "serials:\n" + "".join(f"- '{s}'\n" for s in SERIALS)
        + f"num_frames: {F}\nextrinsics: '{EXTR_NAME}'\nycb_ids:\n" + "".join(f"- {i}\n" for i in ycb_ids)
        + f"ycb_grasp_ind: {grasp}\nmano_sides:\n- {side}\nmano_calib:\n- 20200709_140042_subject-01_right\n"
    )  # fmt: skip
    hand = synth.make_trajectory(synth.video_rng(seed, 0), 0).hand_joints[:F].astype(np.float64)
    hand = np.nan_to_num(hand, nan=0.1)
    pose_y = np.zeros((F, len(ycb_ids), 7))
    pose_y[:] = dexycb.MISSING_POSE
    q = rng.normal(size=(F, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    pose_y[:, grasp, :4] = q  # x, y, z, w
    pose_y[:, grasp, 4:] = rng.uniform(-0.2, 0.2, (F, 3)) + [0, 0, 0.8]
    pose_y[:, 0, :4], pose_y[:, 0, 4:] = [0, 0, 0, 1], [0.1, 0.0, 0.9]
    pose_y[[3, 4], grasp] = dexycb.MISSING_POSE  # not annotated
    pose_m = rng.normal(size=(F, 1, 51)).astype(np.float32)
    pose_m[7] = 0.0  # no hand in frame 7
    np.savez_compressed(seq / "pose.npz", pose_y=pose_y.astype(np.float32), pose_m=pose_m)
    truth = hand.copy()
    truth[7] = np.nan
    for s in SERIALS:
        (seq / s).mkdir()
        for f in range(F):
            j = _world_to_cam(hand[f], mats[s])[None]
            if f == 7 or (s == MASTER and f in (2, 9)):  # missing: everywhere in 7, at the master in 2 and 9
                j = -np.ones((1, 21, 3))
            np.savez_compressed(
                seq / s / f"labels_{f:06d}.npz",
                seg=np.zeros((480, 640), np.uint8), pose_y=np.zeros((3, 3, 4), np.float32), pose_m=pose_m[f],
                joint_3d=j.astype(np.float32), joint_2d=np.zeros((1, 21, 2), np.float32),
            )  # fmt: skip
    return {"hand": truth, "pose_y": pose_y[:, grasp], "path": seq}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("dexycb")
    mats = _write_calibration(root)
    _write_box_obj(root / "models" / "006_mustard_bottle" / "textured_simple.obj", (0.04, 0.03, 0.09))
    (root / "models" / "003_cracker_box").mkdir(parents=True)
    np.savetxt(root / "models" / "003_cracker_box" / "points.xyz", np.random.default_rng(1).uniform(-0.1, 0.1, (500, 3)))
    right = _write_sequence(root, mats, "20200709-subject-01", "20200709_141754", "right", seed=3)
    left = _write_sequence(root, mats, "20200709-subject-01", "20200709_142000", "left", seed=4)
    return root, mats, right, left


def test_import_matches_ground_truth(release, tmp_path):
    root, mats, right, _ = release
    report = dexycb.import_dexycb(root, tmp_path)
    assert len(report.written) == 1 and report.skipped[0]["reason"].startswith("left hand")
    traj = hoi.load(tmp_path / "20200709-subject-01" / "20200709_141754.hoi.npz")
    assert traj.source == "dexycb/20200709-subject-01/20200709_141754"
    assert traj.fps == 30.0 and traj.hand_side == "right" and traj.num_frames == F
    # hand joints: camera frame -> world exactly, from the master camera or, where its label is missing, the other
    np.testing.assert_allclose(traj.hand_joints, right["hand"], atol=2e-6)
    assert np.isnan(traj.hand_joints[7]).all()
    # object pose: x, y, z, w + t -> t + w, x, y, z; identity rows -> NaN
    py = right["pose_y"]
    known = np.ones(F, bool)
    known[[3, 4]] = False
    assert np.isnan(traj.object_pose[~known]).all()
    np.testing.assert_allclose(traj.object_pose[known, :3], py[known, 4:], atol=1e-6)
    R_ours = quat_to_matrix(traj.object_pose[known, 3:].astype(np.float64))
    q = py[known, :4]
    w = hoi.quat_to_matrix(np.concatenate([q[:, 3:], q[:, :3]], axis=1))
    np.testing.assert_allclose(R_ours, w, atol=1e-6)
    # gravity: minus the table tag's z axis in the world frame
    z = mats["apriltag"][:, 2]
    np.testing.assert_allclose(traj.gravity, -z / np.linalg.norm(z), atol=1e-6)
    # object points: the mustard model (a 8 x 6 x 18 cm box), sampled on its surface
    pts = traj.object_points
    assert pts.shape == (1024, 3)
    assert np.all(np.abs(pts) <= np.array([0.04, 0.03, 0.09]) + 1e-6)
    on_face = np.isclose(np.abs(pts) / [0.04, 0.03, 0.09], 1.0, atol=1e-5).any(axis=1)
    assert on_face.all()
    assert np.ptp(pts, axis=0) == pytest.approx([0.08, 0.06, 0.18], abs=0.01)


def test_hands_option_resume_and_cli(release, tmp_path, capsys):
    root, *_ = release
    out = tmp_path / "out"
    assert hop_data_main(["import", "dexycb", str(root), "--out", str(out), "--hands", "left,right", "--quiet"]) == 0
    files = sorted(p.name for p in out.rglob("*.hoi.npz"))
    assert files == ["20200709_141754.hoi.npz", "20200709_142000.hoi.npz"]
    assert hoi.load(out / "20200709-subject-01" / "20200709_142000.hoi.npz").hand_side == "left"
    capsys.readouterr()
    assert hop_data_main(["import", "dexycb", str(root), "--out", str(out), "--hands", "left,right", "--json"]) == 0
    assert '"kept_existing": 2' in capsys.readouterr().out
    # a single sequence folder works too
    single = tmp_path / "single"
    assert hop_data_main(["import", "dexycb", str(root / "20200709-subject-01" / "20200709_141754"), "--out", str(single), "--quiet"]) == 0
    assert len(list(single.rglob("*.hoi.npz"))) == 1


def test_user_errors(release, tmp_path, capsys):
    root, mats, *_ = release
    assert hop_data_main(["import", "dexycb", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "nope: no such file" in capsys.readouterr().err
    assert hop_data_main(["import", "dexycb", str(root), "--out", str(tmp_path / "o"), "--hands", "both"]) == 2
    assert hop_data_main(["import", "dexycb", str(root)]) == 2
    # a broken sequence is reported with its file and key; the others are imported
    broken = root / "20200709-subject-02" / "20200709_150000"
    broken.mkdir(parents=True)
    (broken / "meta.yml").write_text("serials: ['836212060125']\nnum_frames: 3\n")
    try:
        report = dexycb.import_dexycb(root, tmp_path / "o2")
        reasons = [s["reason"] for s in report.skipped]
        assert any("meta.yml: key 'ycb_ids' is missing" in r for r in reasons), reasons
        assert len(report.written) == 1
    finally:
        (broken / "meta.yml").unlink()
        broken.rmdir()
        broken.parent.rmdir()


def test_yaml_tuples_and_mesh_sampling(tmp_path):
    p = tmp_path / "e.yml"
    p.write_text("extrinsics:\n  '1': !!python/tuple\n    - 1.0\n    - 2.0\nmaster: '1'\n")
    assert dexycb._yaml(p) == {"extrinsics": {"1": [1.0, 2.0]}, "master": "1"}
    p.write_text("x: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(dexycb.DexYCBError, match="not valid YAML"):
        dexycb._yaml(p)
    obj = tmp_path / "m.obj"
    _write_box_obj(obj, (0.5, 0.5, 0.5))
    v, f = dexycb.read_obj_mesh(obj)
    assert v.shape == (8, 3) and f.shape == (12, 3)
    pts = dexycb.sample_mesh(v, f, 6000)
    # area-uniform: each of the six faces gets about a sixth
    counts = [np.sum(np.isclose(pts[:, a], s * 0.5)) for a in range(3) for s in (-1, 1)]
    assert min(counts) > 850 and max(counts) < 1150
