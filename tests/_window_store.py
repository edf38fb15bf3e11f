"""Tiny trajectory stores for the training tests (hop_train.dataset, hop_train.pretrain).

Every value is a function of (episode number, step), so a test can rebuild what
any window must contain: ``proprio[k] = limits midpoint + 0.01 * (episode + 1)
+ 0.001 * k`` (per joint offset j * 1e-4), ``action = proprio + 0.05``, and the
object cloud of step k is a fixed cloud shifted by (episode, k) centimetres.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hop_data.store import Episode, TrajectoryStore
from hop_robot.embodiment.spec import JOINT_LOWER, JOINT_UPPER, NUM_JOINTS

NUM_POINTS = 8


def episode_arrays(number: int, steps: int, num_points: int = NUM_POINTS) -> Episode:
    mid = (JOINT_LOWER + JOINT_UPPER) / 2
    k = np.arange(steps)[:, None]
    proprio = mid + 0.01 * (number + 1) + 0.001 * k + 1e-4 * np.arange(NUM_JOINTS)
    cloud = np.random.default_rng(number).uniform(-0.05, 0.05, size=(num_points, 3))
    shift = np.stack([np.full(steps, 0.4 + 0.01 * number), 0.01 * np.arange(steps), np.full(steps, 0.1)], axis=1)
    return Episode(
        proprio=proprio.astype(np.float32),
        action=(proprio + 0.05).astype(np.float32),
        object_pc=(cloud[None] + shift[:, None]).astype(np.float32),
        seed=number,
        table_pose=np.array([0.65, 0, 0, 1, 0, 0, 0], np.float32),
        init_qpos=proprio[0].astype(np.float32),
        max_error=0.01,
        mean_error=0.005,
    )


def build_store(path: Path, lengths_by_source: dict[str, list[int]], num_points: int = NUM_POINTS) -> list[Episode]:
    """Write one commit per source; returns the episodes in reader order
    (one shard, so commit order)."""
    store = TrajectoryStore.create(path, num_points=num_points)
    episodes: list[Episode] = []
    with store.writer("w") as writer:
        for source, lengths in lengths_by_source.items():
            batch = [episode_arrays(len(episodes) + i, n, num_points) for i, n in enumerate(lengths)]
            writer.append_episodes(source, batch)
            episodes.extend(batch)
    return episodes
