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
