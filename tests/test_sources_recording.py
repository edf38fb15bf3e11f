"""hop-data import recording: robot episode recordings into the store."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from hop_robot.embodiment import spec
from hop_robot.record import EpisodeRecorder


def make_recording(path, source, steps=12, seed=0, sent=True):
    rng = np.random.default_rng(seed)
    rec = EpisodeRecorder(path, source=source, table_pose=[0.65, 0, 0, 1, 0, 0, 0])
    for k in range(steps):
        q = spec.DEFAULT_POSE + rng.normal(0, 0.01, spec.NUM_JOINTS)
        rec.append(
            proprio=q, action=q + 0.01, object_pc=rng.normal(0, 0.05, (spec.NUM_POINTS, 3)) + [0.45, 0, 0.1],
            policy_action=q + 0.01, time=k / 20, joint_age=0.01, cloud_age=0.03, policy_latency=0.003,
            miss=False, intervention=0, sent=sent,
        )  # fmt: skip
    return rec.save({"robot": "sim"}), rec


def hop_data(*args):
    return subprocess.run([sys.executable, "-m", "hop_data.cli", *args], capture_output=True, text=True, timeout=120)


def test_recordings_import_once_and_match(tmp_path):
    from hop_data.store import TrajectoryStore

    first, rec = make_recording(tmp_path / "rec" / "a.npz", "robot/test/a")
    make_recording(tmp_path / "rec" / "b.npz", "robot/test/b", steps=7, seed=1)
    (tmp_path / "rec" / "junk.npz").write_bytes(b"junk")
    store = tmp_path / "s.zarr"
    run = hop_data("import", "recording", str(tmp_path / "rec"), "--store", str(store), "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["episodes"] == 2 and summary["steps"] == 19
    assert len(summary["failed"]) == 1 and "junk.npz" in summary["failed"][0]["reason"]
    reader = TrajectoryStore.open(store).reader()
    ep = reader.episode(reader.sources.index("robot/test/a"))
    np.testing.assert_array_equal(ep["proprio"], rec.arrays()["proprio"])
    np.testing.assert_array_equal(ep["object_pc"], rec.arrays()["object_pc"])
    again = json.loads(hop_data("import", "recording", str(first), "--store", str(store), "--json").stdout)
    assert again["skipped_already_committed"] == 1 and again["episodes"] == 0


def test_dry_run_recordings_are_refused(tmp_path):
    path, _ = make_recording(tmp_path / "dry.npz", "robot/test/dry", sent=False)
    summary = json.loads(hop_data("import", "recording", str(path), "--store", str(tmp_path / "s.zarr"), "--json").stdout)
    assert summary["episodes"] == 0 and "dry-run" in summary["failed"][0]["reason"]


def test_import_recording_needs_a_store(tmp_path):
    run = hop_data("import", "recording", str(tmp_path))
    assert run.returncode == 2 and "--store" in run.stderr
