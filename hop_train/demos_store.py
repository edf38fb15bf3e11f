"""Expert demonstrations into a trajectory store (DESIGN.md format 2), so BC
finetuning reads demonstrations exactly as pretraining reads retargeted data.

Each demonstration is its own source (``demos/<task>/seed<S>/<k>``): the
window dataset splits train / validation by source, and a rerun with the
same task and seed skips what is already committed.
"""

from __future__ import annotations

from typing import Any


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
    show_progress: bool = True,  # noqa: ARG001 (record_demos shows none yet)
) -> dict[str, Any]:
    """Record ``episodes`` successful expert episodes of ``task`` into ``store_url``."""
    from hop_data.store import Episode, TrajectoryStore
    from hop_train.envs import task_id
    from hop_train.envs.demos import record_demos

    name = task_id(task).split("/", 1)[1]
    store = TrajectoryStore.open(store_url, "a", num_points=spec.NUM_POINTS)
    objects_opt = objects if objects in ("train", "heldout") else tuple(objects.split(","))
    demos = record_demos(name, episodes, seed=seed, num_envs=envs, objects=objects_opt)
    written = 0
    with store.writer(f"demos-{name}-seed{seed}") as writer:
        for k, (proprio, action, clouds) in enumerate(demos):
            episode = Episode(
                proprio=proprio, action=action, object_pc=clouds, seed=int(seed),
                table_pose=SceneConfig().default_table_pose(), init_qpos=proprio[0],
                max_error=0.0, mean_error=0.0,
            )  # fmt: skip
            commit = writer.append_episodes(f"demos/{name}/seed{seed}/{k:05d}", [episode])
            written += 0 if commit.skipped else 1
    return {
        "task": name,
        "store": str(store_url),
        "episodes": written,
        "requested": episodes,
        "recorded": len(demos),
        "seed": seed,
    }
