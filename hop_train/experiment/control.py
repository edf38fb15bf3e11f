"""The control prior: the same corpus with its behaviour taken out.

What could make "BC from π_b beats BC from scratch" circular here: the prior's
corpus and the tasks were built by the same hands — the synthetic human
videos place the same object shape families (``hop_robot.shapes``) on the
same table in front of the same robot the tasks use, and a prior that has
merely *seen* those clouds and the robot's usual postures could help BC
without having learned anything about handling objects. The control prior
keeps all of that and removes the behaviour: every episode keeps its
proprioception and clouds, but its actions are another episode's (a seeded
derangement; the donor's actions resampled to the episode's length). It is
pretrained exactly as π_b (same corpus size, steps, batch, seed), and BC
starts from it at the largest demonstration count. If BC from π_b is no
better than BC from the control, the prior's benefit is exposure, not the
retargeted human behaviour.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

__all__ = ["derangement", "resample", "write_action_shuffled_store"]


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of ``range(n)`` with no fixed point (n >= 2): a random
    cyclic shift of a random order, so every episode gets another's actions."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 episodes, got {n}")
    order = rng.permutation(n)
    shift = int(rng.integers(1, n))
    out = np.empty(n, dtype=np.int64)
    out[order] = order[(np.arange(n) + shift) % n]
    return out


def resample(values: np.ndarray, length: int) -> np.ndarray:
    """``values (T, D)`` linearly resampled in normalised time to ``(length, D)``."""
    src = np.linspace(0.0, 1.0, len(values))
    dst = np.linspace(0.0, 1.0, int(length))
    return np.stack([np.interp(dst, src, values[:, j]) for j in range(values.shape[1])], axis=1).astype(values.dtype)


def write_action_shuffled_store(source_url: str | Path, out_url: str | Path, seed: int = 0) -> dict:
    """Copy the store at ``source_url`` to ``out_url`` with every episode's
    actions replaced by another episode's (module doc). Sources keep their
    names, so the train/validation split is the prior's. Returns counts."""
    from hop_data.store import Episode, TrajectoryStore
    from hop_data.store.reader import StoreReader

    reader = StoreReader(TrajectoryStore.open(str(source_url), "r"))
    n = reader.num_episodes
    donors = derangement(n, np.random.default_rng(seed))
    episodes = [reader.episode(i) for i in range(n)]
    by_source: dict[str, list] = defaultdict(list)
    for i, ep in enumerate(episodes):
        donor = episodes[donors[i]]["action"]
        by_source[str(ep["source"])].append(Episode(
            proprio=ep["proprio"], action=resample(np.asarray(donor), len(ep["proprio"])), object_pc=ep["object_pc"],
            seed=int(ep["seed"]), table_pose=ep["table_pose"], init_qpos=ep["init_qpos"],
            max_error=float(ep["max_error"]), mean_error=float(ep["mean_error"]), collision=bool(ep["collision"]),
        ))  # fmt: skip
    out = TrajectoryStore.open(str(out_url), "a", num_points=int(np.shape(episodes[0]["object_pc"])[1]))
    with out.writer("control-action-shuffled") as writer:
        for source, eps in by_source.items():
            writer.append_episodes(source, eps)
    return {"episodes": n, "sources": len(by_source), "seed": seed}
