"""HOP release importer: pickled .npy episodes -> store, safe unpickling, joint-order check."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from hop_data.cli import main as hop_data_main
from hop_data.sources import hop_release
from hop_data.sources.hop_release import HopReleaseError, UnsafePickleError
from hop_data.store import TrajectoryStore
from hop_robot.embodiment import spec


def _qpos(rng: np.random.Generator, T: int) -> np.ndarray:
    """(T, 23) joint angles inside the limits, in our (= Allegro) order."""
    lo, hi = spec.JOINT_LOWER, spec.JOINT_UPPER
    lo, hi = np.maximum(lo, -3.0), np.minimum(hi, 3.0)
    u = rng.uniform(0.05, 0.95, (T, spec.NUM_JOINTS))
    return lo + (hi - lo) * u


def _episode(rng: np.random.Generator, T: int) -> dict:
    q = _qpos(rng, T)
    return {"robot_qpos": q, "target_qpos": q + rng.normal(0, 0.01, q.shape), "object_pc": rng.normal(0, 0.05, (T, 100, 3))}


def _write_release(root: Path, layout: dict[str, int], T: int = 7, seed: int = 0, order: np.ndarray | None = None) -> dict:
    rng = np.random.default_rng(seed)
    written = {}
    for rel, n in layout.items():
        d = root / rel
        d.mkdir(parents=True)
        for i in range(n):
            ep = _episode(rng, T + i)
            stored = dict(ep)
            if order is not None:  # write the columns in another order
                inv = np.argsort(order)
                stored = {**ep, "robot_qpos": ep["robot_qpos"][:, inv], "target_qpos": ep["target_qpos"][:, inv]}
            np.save(d / f"traj_{i:03d}.npy", stored, allow_pickle=True)
            written[(rel, i)] = ep
    return written


def test_import_into_store_and_resume(tmp_path):
    src = tmp_path / "release"
    truth = _write_release(src, {"subject_1/ep_0": 2, "subject_1/ep_1": 1, "subject_2/ep_0": 3})
    store = tmp_path / "store.zarr"
    result = hop_release.import_hop_release(src, store)
    assert (result.sources, result.episodes, result.failed) == (3, 6, [])
    reader = TrajectoryStore.open(store).reader(cache_bytes=0)
    assert reader.num_episodes == 6
    assert sorted(set(reader.meta("source"))) == ["hop-release/subject_1/ep_0", "hop-release/subject_1/ep_1", "hop-release/subject_2/ep_0"]
    for i in range(reader.num_episodes):
        ep = reader.episode(i)
        rel = ep["source"].removeprefix("hop-release/")
        k = int(ep["file"].removeprefix("traj_").removesuffix(".npy"))
        want = truth[(rel, k)]
        np.testing.assert_allclose(ep["proprio"], want["robot_qpos"], atol=1e-6)
        np.testing.assert_allclose(ep["action"], want["target_qpos"], atol=1e-6)
        np.testing.assert_allclose(ep["object_pc"], want["object_pc"], atol=1e-6)
        np.testing.assert_allclose(ep["init_qpos"], want["robot_qpos"][0], atol=1e-6)
    # a second run commits nothing new; a new episode directory is added
    _write_release(src, {"subject_3/ep_0": 1}, seed=5)
    again = hop_release.import_hop_release(src, store)
    assert (again.sources, again.skipped_committed) == (1, 3)


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.npy"
    np.save(path, np.array({"robot_qpos": Evil()}, dtype=object), allow_pickle=True)
    with pytest.raises(UnsafePickleError, match=r"evil\.npy: refused to load: the pickle asks for (posix|os)\.system"):
        hop_release.load_pickled_npy(path)
    assert not marker.exists()
    # through the importer: the directory is reported, the store gets nothing from it
    d = tmp_path / "rel" / "s" / "e"
    d.mkdir(parents=True)
    os.replace(path, d / "evil.npy")
    _write_release(tmp_path / "rel", {"s/ok": 1})
    result = hop_release.import_hop_release(tmp_path / "rel", tmp_path / "st.zarr")
    assert result.sources == 1 and "refused to load" in result.failed[0]["reason"]
    assert not marker.exists()


def test_plain_content_and_broken_files(tmp_path):
    p = tmp_path / "a.npy"
    np.save(p, {"x": [1, 2.5, "s"], "y": np.float32(3.0), "z": np.arange(3)}, allow_pickle=True)
    got = hop_release.load_pickled_npy(p)
    assert got["x"] == [1, 2.5, "s"] and got["y"] == 3.0 and got["z"].tolist() == [0, 1, 2]
    (tmp_path / "b.npy").write_bytes(b"not numpy")
    with pytest.raises(HopReleaseError, match="b.npy: not a .npy file"):
        hop_release.load_pickled_npy(tmp_path / "b.npy")
    np.save(tmp_path / "c.npy", {"robot_qpos": np.zeros((3, 22))}, allow_pickle=True)
    with pytest.raises(HopReleaseError, match="key 'target_qpos' is missing"):
        hop_release.read_episode_file(tmp_path / "c.npy")
    np.save(tmp_path / "d.npy", {"robot_qpos": np.zeros((3, 22)), "target_qpos": np.zeros((3, 22)), "object_pc": np.zeros((3, 100, 3))}, allow_pickle=True)
    with pytest.raises(HopReleaseError, match=r"robot_qpos' must be \(T, 23\), got \(3, 22\)"):
        hop_release.read_episode_file(tmp_path / "d.npy")


def test_joint_order_is_checked(tmp_path):
    """Files written in the IsaacGym asset's order (index, thumb, middle, ring)
    are caught by the limits check, and read right with joint_order=isaacgym."""
    ig = hop_release.JOINT_ORDERS["isaacgym"]
    truth = _write_release(tmp_path / "rel", {"s/e": 1}, T=40, order=ig)
    f = tmp_path / "rel" / "s" / "e" / "traj_000.npy"
    with pytest.raises(HopReleaseError, match="not in allegro order.*--joint-order isaacgym"):
        hop_release.read_episode_file(f)
    ep = hop_release.read_episode_file(f, joint_order="isaacgym")
    np.testing.assert_allclose(ep["robot_qpos"], truth[("s/e", 0)]["robot_qpos"], atol=1e-6)
    # the documented mapping: the thumb is last in our order and in the Allegro files
    assert spec.JOINT_NAMES[19:23] == ("thumb_base", "thumb_proximal", "thumb_medial", "thumb_distal")
    assert list(ig[19:23]) == [11, 12, 13, 14]


def test_cli(tmp_path, capsys):
    _write_release(tmp_path / "rel", {"a/b": 2})
    store = str(tmp_path / "s.zarr")
    assert hop_data_main(["import", "hop-release", str(tmp_path / "rel"), "--store", store, "--json"]) == 0
    assert '"episodes": 2' in capsys.readouterr().out
    assert hop_data_main(["import", "hop-release", str(tmp_path / "rel"), "--store", store, "--json"]) == 0
    assert '"skipped_already_committed": 1' in capsys.readouterr().out
    assert hop_data_main(["import", "hop-release", str(tmp_path / "rel")]) == 2
    assert "needs --store" in capsys.readouterr().err
    assert hop_data_main(["import", "hop-release", str(tmp_path / "nothing"), "--store", store]) == 2
    assert "no such directory" in capsys.readouterr().err
