"""Checks that say what is wrong with an input (handedness, interaction) and
why attempts fail: refusals naming the file and the cause, rejection counts
by cause that add up to the attempts, in the summary and in the store."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from hop_data import hoi, synth
from hop_data.report import video_summary
from hop_data.retarget.attempts import AttemptConfig
from hop_data.retarget.checks import (
    HandednessError,
    NoInteractionError,
    check_handedness,
    load_for_retargeting,
    measured_handedness,
)
from hop_data.retarget.config import REJECTION_CAUSES
from hop_data.retarget.engine import RetargetConfig, Retargeter
from hop_robot.embodiment import spec


def hop_data(*args):
    return subprocess.run([sys.executable, "-m", "hop_data.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def right():
    return synth.make_trajectory(synth.video_rng(0, 0), 0, 0)  # a right hand


def test_handedness_is_measured_from_the_joints(right):
    assert right.hand_side == "right" and measured_handedness(right.hand_joints)[0] == "right"
    left = hoi.mirror(right)  # a left hand, labelled left: fine
    assert measured_handedness(left.hand_joints)[0] == "left"
    check_handedness(left)
    check_handedness(right)
    wrong = replace(left, hand_side="right")  # a left hand in a file marked right
    with pytest.raises(HandednessError, match=r"clip\.hoi\.npz: key 'hand_side' says 'right' but the joints form a left hand") as e:
        check_handedness(wrong, "clip.hoi.npz")
    assert e.value.measured == "left" and e.value.label == "right" and e.value.chirality < 0


def test_mirrored_hand_is_refused_naming_file_and_handedness(tmp_path, right):
    mirrored = replace(hoi.mirror(right), hand_side="right", source="test/mirrored")
    path = hoi.save(tmp_path / "mirrored.hoi.npz", mirrored)
    with pytest.raises(HandednessError) as e:
        load_for_retargeting(path)
    assert str(path) in str(e.value) and "left hand" in str(e.value) and "mirror" in str(e.value)
    # the engine refuses it too, whatever way it comes in (prepare mirrors nothing: it says right)
    retargeter = Retargeter(RetargetConfig(attempts=2), threads=1)
    with pytest.raises(HandednessError, match="left hand"):
        retargeter.run(hoi.prepare(mirrored), seed=0)
    # through the command: reported with its cause, nothing stored for it, the batch goes on
    hoi.save(tmp_path / "good.hoi.npz", right)
    store = tmp_path / "s.zarr"
    run = hop_data("retarget", str(tmp_path / "mirrored.hoi.npz"), str(tmp_path / "good.hoi.npz"),
                   "--store", str(store), "--attempts", "4", "--json", "--quiet")  # fmt: skip
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["videos"] == 1 and summary["refused_inputs"] == {"handedness": 1}
    (failed,) = summary["failed"]
    assert failed["cause"] == "handedness" and str(tmp_path / "mirrored.hoi.npz") in failed["reason"]
    assert "form a left hand" in failed["reason"]
    facts = json.loads(hop_data("info", str(store), "--json").stdout)
    assert facts["sources"] == 1 and [v["source"] for v in facts["retargeting"]["per_video"]] == [right.source]


def test_no_interaction_is_refused_unless_allowed(tmp_path, right):
    idle = replace(right, contact=np.zeros(right.num_frames, bool), source="test/idle")
    path = hoi.save(tmp_path / "idle.hoi.npz", idle)
    assert hoi.load(path).contact is not None and not hoi.load(path).contact.any()
    with pytest.raises(NoInteractionError, match=r"idle\.hoi\.npz: key 'contact' shows no hand-object interaction"):
        load_for_retargeting(path)
    assert load_for_retargeting(path, allow_no_interaction=True).num_frames > 0
    held = replace(right, contact=np.ones(right.num_frames, bool))
    assert load_for_retargeting(hoi.save(tmp_path / "held.hoi.npz", held)).contact.all()
    store = tmp_path / "s.zarr"
    summary = json.loads(hop_data("retarget", str(path), "--store", str(store), "--attempts", "2", "--json", "--quiet").stdout)
    assert summary["videos"] == 0 and summary["refused_inputs"] == {"no_interaction": 1}
    assert "--allow-no-interaction" in summary["failed"][0]["reason"]
    forced = hop_data("retarget", str(path), "--store", str(store), "--attempts", "2", "--allow-no-interaction", "--json", "--quiet")
    assert forced.returncode == 0 and json.loads(forced.stdout)["videos"] == 1


def test_rejection_counts_add_up_to_the_attempts(tmp_path):
    """Causes of several kinds in one run (objects drawn off the table and not re-drawn, a hand
    rising to the edge of reach, a tight error threshold): per video and in total the counts
    add up to the attempts, and the store's reports say the same."""
    traj = hoi.prepare(synth.make_trajectory(synth.video_rng(7, 0), 0, 7))
    far = traj.hand_joints.astype(np.float64).copy()
    far -= np.linspace(0.0, 0.85, traj.num_frames)[:, None, None] * traj.gravity  # the hand rises to the edge of reach
    cfg = RetargetConfig(attempts=24, error_threshold=0.016, attempt=AttemptConfig(placement_redraws=0))
    retargeter = Retargeter(cfg, threads=2)
    results = [retargeter.run(traj, seed=1), retargeter.run(replace(traj, hand_joints=far.astype(np.float32), source="far"), seed=1)]
    causes = set()
    for r in results:
        v = video_summary(r)
        assert v["accepted"] + sum(v["rejected"].values()) == v["attempts"] == 24
        assert v["simulated"] == 24 - sum(v["rejected"][c] for c in ("under_table", "off_table", "unreachable"))
        causes |= {c for c, n in v["rejected"].items() if n}
        if v["accepted"]:
            assert set(v["kept_keypoint_error_m"]) == set(spec.KEYPOINT_SITES)
            assert v["kept_fingertip_error_m"]["median"] <= v["kept_fingertip_error_m"]["p95"]
            assert v["kept_error_m"]["p95"] < cfg.error_threshold
    assert {"keypoint_error", "unreachable", "off_table"} <= causes
    from hop_data.report import retarget_summary

    summary = retarget_summary(results, [{"source": "x", "reason": "r", "cause": "handedness"}], 1.0)
    assert summary["accepted"] + sum(summary["rejections"].values()) == summary["attempts"] == 48
    assert set(summary["rejections"]) == set(REJECTION_CAUSES) and summary["refused_inputs"] == {"handedness": 1}
    # the store keeps each video's report; `hop-data info` adds them up the same way
    from hop_data.store import TrajectoryStore

    store = TrajectoryStore.open(tmp_path / "s.zarr", "a")
    with store.writer("w") as w:
        for r in results:
            w.append_episodes(r.source, r.episodes, report=video_summary(r))
    info = json.loads(hop_data("info", str(tmp_path / "s.zarr"), "--json").stdout)["retargeting"]
    assert info["attempts"] == 48 and info["accepted"] + sum(info["rejections"].values()) == 48
    assert info["rejections"] == summary["rejections"]
    text = hop_data("info", str(tmp_path / "s.zarr")).stdout
    assert "per video:" in text and "far: " in text and "unreachable" in text
