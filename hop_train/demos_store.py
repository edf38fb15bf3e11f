"""Expert demonstrations into a trajectory store (DESIGN.md format 2), so BC
finetuning reads demonstrations exactly as pretraining reads retargeted data.

Each demonstration is its own source (``demos/<task>/seed<S>/<k>``): the
window dataset splits train / validation by source, and a rerun with the
same task and seed skips what is already committed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hop_robot.embodiment import spec
from hop_robot.sim import SceneConfig

__all__ = ["write_demos"]


def write_demos(
    task: str,
    episodes: int,
    store_url: str,
    seed: int = 0,
    envs: int = 64,
    objects: str = "train",
    show_progress: bool = True,
) -> dict[str, Any]:
    """Record ``episodes`` successful expert episodes of ``task`` into ``store_url``."""
    from hop_data.store import Episode, TrajectoryStore
    from hop_train.envs import task_id
    from hop_train.envs.demos import record_demos

    name = task_id(task).split("/", 1)[1]
    store = TrajectoryStore.open(store_url, "a", num_points=spec.NUM_POINTS)
    result = record_demos(name, episodes, seed=seed, envs=envs, objects=objects, show_progress=show_progress)
    written = 0
    with store.writer(f"demos-{name}-seed{seed}") as writer:
        for k, demo in enumerate(result.episodes):
            episode = Episode(
                proprio=demo.proprio, action=demo.action, object_pc=demo.object_pc, seed=int(seed),
                table_pose=SceneConfig().default_table_pose(), init_qpos=demo.proprio[0],
                max_error=0.0, mean_error=0.0, extra={"object": demo.object, "expert_return": float(demo.ret)},
            )  # fmt: skip
            commit = writer.append_episodes(f"demos/{name}/seed{seed}/{k:05d}", [episode])
            written += 0 if commit.skipped else 1
    return {
        "task": name,
        "store": str(store_url),
        "episodes": written,
        "attempted": result.attempted,
        "success_rate": result.success_rate,
        "seed": seed,
    }
