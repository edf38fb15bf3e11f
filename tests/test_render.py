"""hop-data render: a stored episode to a video, offscreen."""

from __future__ import annotations

import ctypes.util
import os

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("MUJOCO_GL", "osmesa") == "osmesa" and ctypes.util.find_library("OSMesa") is None,
    reason="offscreen rendering needs libOSMesa (apt-get install libosmesa6; make installs it as root)",
)


def test_render_episode_with_human_keypoints(tmp_path):
    import imageio.v2 as imageio

    from hop_data import hoi, synth
    from hop_data.render import render_episode
    from hop_data.retarget.engine import RetargetConfig, Retargeter
    from hop_data.store import TrajectoryStore

    path = synth.synthesize(tmp_path / "hoi", 1, 3)[0]
    traj = hoi.prepare(hoi.load(path))
    result = Retargeter(RetargetConfig(attempts=4), threads=1).run(traj, seed=0)
    assert result.episodes, "the synthetic video should retarget"
    store = TrajectoryStore.open(tmp_path / "s.zarr", "a")
    with store.writer("t") as writer:
        writer.append_episodes(traj.source, result.episodes)
    out = tmp_path / "ep.mp4"
    summary = render_episode(str(tmp_path / "s.zarr"), 0, out, hoi_path=tmp_path / "hoi", width=160, height=128)
    assert summary["human_keypoints"] and summary["frames"] == result.steps
    frames = imageio.mimread(out, memtest=False)
    assert len(frames) == result.steps and frames[0].shape == (128, 160, 3)
    assert np.std(frames[len(frames) // 2]) > 5  # not a blank image
    with pytest.raises(IndexError, match="episode 99"):
        render_episode(str(tmp_path / "s.zarr"), 99, tmp_path / "x.mp4")
