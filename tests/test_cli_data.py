"""``hop-data`` commands end to end, in subprocesses, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

INFO_KEYS = {"episodes", "steps", "sources", "embodiment", "joint_names", "control_hz", "num_points", "shards"}


def hop_data(*args):
    return subprocess.run([sys.executable, "-m", "hop_data.cli", *args], capture_output=True, text=True, timeout=300)


def test_simulate_then_info(tmp_path):
    store = tmp_path / "store.zarr"
    run = hop_data("simulate", "--scenes", "6", "--steps", "8", "--store", str(store), "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["episodes_written"] == 6 and summary["physics_steps_per_s"] > 0
    info = hop_data("info", str(store), "--json")
    assert info.returncode == 0, info.stderr
    facts = json.loads(info.stdout)
    assert INFO_KEYS <= facts.keys()
    assert facts["episodes"] == 6 and facts["steps"] == 48 and facts["sources"] == 1
    assert facts["embodiment"] == "xarm7_allegro_right" and len(facts["joint_names"]) == 23
    # the same run again is skipped: each source is committed once per store
    again = json.loads(hop_data("simulate", "--scenes", "6", "--steps", "8", "--store", str(store), "--json").stdout)
    assert again["skipped_already_committed"] and again["episodes_written"] == 0


def test_info_on_bad_paths_is_one_clear_line(tmp_path):
    for path, words in [(tmp_path / "missing", "does not exist"), (tmp_path, "empty directory")]:
        run = hop_data("info", str(path))
        assert run.returncode == 2
        assert words in run.stderr and str(path) in run.stderr
        assert "Traceback" not in run.stderr
    junk = tmp_path / "junk.txt"
    junk.write_text("not a store")
    run = hop_data("info", str(junk))
    assert run.returncode == 2 and "not a trajectory store" in run.stderr


def test_retarget_reports_bad_files_and_goes_on(tmp_path):
    from hop_data import synth

    good = synth.synthesize(tmp_path / "hoi", 1, 5)[0]
    bad = tmp_path / "hoi" / "broken.hoi.npz"
    bad.write_bytes(b"not an npz at all")
    store = tmp_path / "s.zarr"
    run = hop_data("retarget", str(tmp_path / "hoi"), "--store", str(store), "--attempts", "4", "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["videos"] == 1 and summary["attempts"] == 4
    assert [f["source"] for f in summary["failed"]] == [str(bad)]
    assert "broken.hoi.npz" in summary["failed"][0]["reason"]
    assert {"acceptance", "attempt_frames_per_s", "median_error_m", "p95_error_m"} <= summary.keys()
    facts = json.loads(hop_data("info", str(store), "--json").stdout)
    assert facts["sources"] == 1 and facts["episodes"] == summary["accepted"]
    # a second run skips the committed video and still reports the broken file
    again = json.loads(hop_data("retarget", str(tmp_path / "hoi"), "--store", str(store), "--attempts", "4", "--json").stdout)
    assert again["skipped_already_committed"] == 1 and again["videos"] == 0 and len(again["failed"]) == 1
    assert good.exists()
