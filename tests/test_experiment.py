"""The experiment (hop_train/experiment): the control prior corpus (every episode
keeps its inputs and gets another episode's actions; real stores) and the report's
sample-efficiency figure against hand-computed values."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from hop_data.store import TrajectoryStore
from hop_data.store.reader import StoreReader
from hop_train.experiment.control import derangement, resample, write_action_shuffled_store

sys.path.insert(0, str(Path(__file__).parent))
from _window_store import build_store  # noqa: E402


@pytest.mark.parametrize("n", [2, 3, 7, 50])
def test_derangement_is_a_permutation_without_fixed_points(n):
    for seed in range(20):
        perm = derangement(n, np.random.default_rng(seed))
        assert sorted(perm.tolist()) == list(range(n))
        assert np.all(perm != np.arange(n))
    with pytest.raises(ValueError, match="at least 2"):
        derangement(1, np.random.default_rng(0))


def test_resample_keeps_the_ends_and_is_linear():
    values = np.array([[0.0, 10.0], [1.0, 20.0], [2.0, 30.0]], np.float32)
    out = resample(values, 5)
    assert out.shape == (5, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0], [0.0, 0.5, 1.0, 1.5, 2.0])
    np.testing.assert_allclose(out[:, 1], [10.0, 15.0, 20.0, 25.0, 30.0])
    np.testing.assert_array_equal(resample(values, 3), values)


def test_shuffled_store_keeps_inputs_and_sources_and_takes_others_actions(tmp_path):
    episodes = build_store(tmp_path / "prior.zarr", {"video-a": [5, 9], "video-b": [7], "video-c": [4, 6]})
    counts = write_action_shuffled_store(tmp_path / "prior.zarr", tmp_path / "control.zarr", seed=3)
    assert counts == {"episodes": 5, "sources": 3, "seed": 3}
    before = StoreReader(TrajectoryStore.open(str(tmp_path / "prior.zarr"), "r"))
    after = StoreReader(TrajectoryStore.open(str(tmp_path / "control.zarr"), "r"))
    assert after.episodes_per_source() == before.episodes_per_source()
    originals = [np.asarray(e.action) for e in episodes]
    for i in range(after.num_episodes):
        ep = after.episode(i)
        mine = before.episode(i)
        np.testing.assert_array_equal(ep["proprio"], mine["proprio"])
        np.testing.assert_array_equal(ep["object_pc"], mine["object_pc"])
        assert len(ep["action"]) == len(mine["proprio"])
        donors = [j for j, a in enumerate(originals) if np.allclose(resample(a, len(ep["action"])), ep["action"], atol=1e-6)]
        assert donors and i not in donors, f"episode {i} kept its own actions"


def test_samples_to_reach_scratch_best_return_by_hand():
    from hop_train.experiment.report import _running_mean, _samples_to_reach

    x, y = _running_mean([(float(s), float(s)) for s in range(1, 11)], k=5)  # y = samples: mean of the last 5
    np.testing.assert_allclose(x, [5, 6, 7, 8, 9, 10])
    np.testing.assert_allclose(y, [3, 4, 5, 6, 7, 8])
    scratch = [(100.0 * i, float(i)) for i in range(1, 11)]  # best running mean: 8 at 1,000 samples
    hop = [(100.0 * i, 2.0 * i) for i in range(1, 11)]  # running mean 2 * (i - 2): reaches 8 at i = 6
    flat = [(100.0 * i, 1.0) for i in range(1, 11)]
    line = _samples_to_reach({"T scratch": scratch, "T hop": hop, "T amp": flat}, "T", ["hop", "scratch", "amp"])[-1]
    assert "(8.0," in line
    assert "hop 600" in line and "scratch 1,000" in line and "amp never (best 1.0)" in line
    assert _samples_to_reach({"T hop": hop}, "T", ["hop"]) == []


def test_return_direction_screens_by_twice_the_spread():
    from hop_train.experiment.report import _return, _return_direction

    assert _return([{"mean_return": 1.0}, {"mean_return": 3.0}]) == (2.0, 1.0)
    assert _return_direction((132.0, 15.0), (216.0, 6.0)) == "lower"  # gap 84 > 2 * 15
    assert _return_direction((216.0, 6.0), (132.0, 15.0)) == "higher"
    assert _return_direction((255.0, 5.0), (248.0, 4.0)) == "the same"  # gap 7 <= 2 * 5


def test_stale_evaluations_are_redone_and_current_ones_kept(tmp_path, monkeypatch):
    """A unit whose summary predates a key of EVALUATION_KEYS is evaluated again
    (not retrained); a current summary, or a stale one whose policy file is gone,
    is left alone."""
    from hop_train.experiment import stages
    from hop_train.experiment.config import ExperimentConfig

    calls = []
    monkeypatch.setattr(stages, "_evaluate", lambda cfg, task, policy, out, log, objects="train", perturb=False:
                        calls.append((out.name, objects, perturb)))  # fmt: skip
    res, policy = tmp_path / "res", tmp_path / "policy.pt"
    current = dict.fromkeys(stages.EVALUATION_KEYS, 0.0)
    stages.write_json(res / "u_train.json", current)
    stages.write_json(res / "u_heldout.json", {"success_rate": 0.0, "milestone_rate": 0.0})  # before reached_rate
    cfg = ExperimentConfig()
    stages._evaluate_unit(cfg, "GraspLift-v0", policy, res, "u", tmp_path / "log", ["heldout", "train", "perturb"])
    assert calls == [("u_perturb.json", "train", True)]  # missing is run; stale without a policy file is kept
    policy.write_bytes(b"")
    calls.clear()
    stages._evaluate_unit(cfg, "GraspLift-v0", policy, res, "u", tmp_path / "log", ["heldout", "train"])
    assert calls == [("u_heldout.json", "heldout", False)]


def test_reach_rung_and_demo_l1_in_the_report(tmp_path):
    """Rates a summary lacks read as absent (not 0 %); the held-out demonstration
    L1 is each seed's best validation loss, averaged over seeds."""
    from hop_train.experiment.report import _pooled, _val_l1

    old = [{"success_rate": 0.5, "milestone_rate": 0.5, "episodes": 4}]
    assert _pooled(old, "reached_rate") is None
    mean, std, ci, n = _pooled(old + [{"success_rate": 0.0, "milestone_rate": 0.0, "episodes": 4}], "success_rate")
    assert (mean, std, n) == (0.25, 0.25, 8) and ci[0] < 0.25 < ci[1]
    for seed, vals in ((0, (0.5, 0.2, 0.3)), (1, (0.4, 0.4, 0.1))):
        rows = "\n".join(f"{i},{v}" for i, v in enumerate(vals))
        (tmp_path / f"r_seed{seed}_metrics.csv").write_text("step,val/loss\n" + rows + "\n9,\n")
    mean, std = _val_l1(tmp_path, "r", [0, 1, 2])  # best: 0.2 and 0.1; seed 2 has no file
    assert mean == pytest.approx(0.15) and std == pytest.approx(0.05)
    assert _val_l1(tmp_path, "none", [0]) is None


def test_a_prior_made_with_another_recipe_is_refused(tmp_path):
    """A recorded prior whose recipe differs from the config's (here: the
    real-hand videos) stops the run with the keys named; nothing is redone."""
    from hop_train.experiment import stages
    from hop_train.experiment.config import ExperimentConfig

    cfg = ExperimentConfig(results_dir=str(tmp_path / "results"), work_dir=str(tmp_path / "work"), real_hand_videos=2)
    recipe = {k: getattr(cfg, k) for k in stages.PRIOR_RECIPE} | {"real_hand_videos": 0}
    stages.write_json(cfg.results / "prior" / "summary.json", {"policy": str(tmp_path / "policy.pt"), "recipe": recipe})
    with pytest.raises(ValueError, match="real_hand_videos: 0 recorded, 2 in the config"):
        stages.stage_prior(cfg)
    assert not cfg.work.exists()


def test_a_failed_unit_stops_the_units_not_started_and_is_raised(tmp_path):
    """Two workers (spawned processes) over six BC units whose demonstration
    store is missing: the first failure is raised with the training log
    named, the units not yet started are not run, and nothing is recorded."""
    from hop_train.experiment import stages
    from hop_train.experiment.config import ExperimentConfig

    cfg = ExperimentConfig(results_dir=str(tmp_path / "results"), work_dir=str(tmp_path / "work"), workers=2)
    units = [("OpenCabinet-v0", 2, "scratch", seed, None) for seed in range(6)]
    with pytest.raises(RuntimeError, match=r"hop-train fit failed .*bc\.log"):
        stages._run_units(cfg, units)
    started = (cfg.work / "logs" / "bc.log").read_text().count("\n$ ")
    assert 1 <= started < len(units)
    assert not (cfg.results / "bc").exists()


def test_stage_markers_add_up_runs_and_keep_the_first_pass(tmp_path, monkeypatch):
    """A stage run three times: the total adds every run, ``runs_s`` lists them, and
    a marker from before runs were listed keeps what it had added up as its first."""
    from hop_train.experiment import stages
    from hop_train.experiment.config import ExperimentConfig

    cfg = ExperimentConfig(results_dir=str(tmp_path), work_dir=str(tmp_path))
    clock = iter([0.0, 2.0, 10.0, 13.0])
    monkeypatch.setattr(stages, "STAGES", {"x": lambda c: {}})
    monkeypatch.setattr(stages.time, "perf_counter", lambda: next(clock))
    stages.write_json(cfg.results / "stages" / "x.json", {"stage": "x", "wall_s_last_run": 5.0, "wall_s_total": 7.0})
    for _ in range(2):
        stages.run_stages(cfg, progress=lambda message: None)
    marker = stages.read_json(cfg.results / "stages" / "x.json")
    assert marker["runs_s"] == [7.0, 2.0, 3.0] and marker["wall_s_total"] == 12.0 and marker["wall_s_last_run"] == 3.0


def test_lifted_videos_are_checked_and_counted_apart(tmp_path):
    """``lifted_videos``: a missing path or a folder without .hoi.npz files stops
    the prior with the key named, before anything is made; generated rows are
    counted by corpus part (synthetic, real hands, lifted) by hand."""
    from hop_train.experiment import stages
    from hop_train.experiment.config import ExperimentConfig

    base = {"results_dir": str(tmp_path / "results"), "work_dir": str(tmp_path / "work")}
    with pytest.raises(ValueError, match=r"lifted_videos: .*nowhere does not exist"):
        stages.stage_prior(ExperimentConfig(**base, lifted_videos=[str(tmp_path / "nowhere")]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"lifted_videos: .*empty holds no \.hoi\.npz"):
        stages.stage_prior(ExperimentConfig(**base, lifted_videos=[str(tmp_path / "empty")]))
    assert not (tmp_path / "work").exists()
    rows = [{"source": "synth/0/0001", "accepted": 3, "attempts": 4}, {"source": "synth-real/1/0000", "accepted": 4, "attempts": 4},
            {"source": "cups/seg0", "accepted": 1, "attempts": 4}, {"source": "blocks/seg1", "accepted": 2, "attempts": 4}]  # fmt: skip
    parts = stages._acceptance_by_corpus({"per_video": rows})
    assert {k: (v["videos"], v["accepted"], v["attempts"]) for k, v in parts.items()} == {
        "synthetic": (1, 3, 4), "real_hands": (1, 4, 4), "lifted": (2, 3, 8)}
