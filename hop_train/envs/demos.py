"""Expert demonstrations: run a task's scripted expert (``experts.make_expert``)
on the batched env and keep the successful episodes.

Each episode is ``(proprio, actions, clouds)`` in the retargeted data's
per-step convention: ``proprio[k]`` (T, 23) radians is the joint state
observed before ``actions[k]`` (T, 23) radians (the absolute joint targets
sent at step k), ``clouds[k]`` (T, 100, 3) float32 the object cloud observed
with ``proprio[k]`` (robot base frame). The CLI (``hop-train demos``) is
wired elsewhere; this is the library function it calls.
"""

from __future__ import annotations

import numpy as np

from hop_robot.embodiment import spec

from . import make_vector
from .experts import make_expert

__all__ = ["Episode", "record_demos"]

Episode = tuple[np.ndarray, np.ndarray, np.ndarray]


def record_demos(
    task: str,
    episodes: int,
    seed: int = 0,
    *,
    num_envs: int = 16,
    max_attempts: int | None = None,
    **env_options,
) -> list[Episode]:
    """Up to ``episodes`` successful expert episodes of ``task``, in the order they end.

    Args:
        task: ``GraspLift-v0`` (or ``hop/GraspLift-v0``), ``GraspThrow-v0``, ``OpenCabinet-v0``.
        episodes: successful episodes wanted.
        seed: env seed (env i draws from ``seed + i``; auto-resets continue its stream).
        num_envs: envs stepped together.
        max_attempts: stop after this many finished episodes, successful or not
            (default ``4 * episodes + num_envs``); fewer episodes may then come back.
        env_options: passed to the env (``objects=``, ``cloud=``, ``object_friction=`` ...).
    """
    if episodes < 1:
        return []
    max_attempts = 4 * episodes + num_envs if max_attempts is None else int(max_attempts)
    env = make_vector(task, num_envs, **env_options)
    try:
        expert = make_expert(task)
        obs, _ = env.reset(seed=seed)
        expert.reset(env)
        buffers: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in range(num_envs)]
        kept: list[Episode] = []
        attempts = 0
        while len(kept) < episodes and attempts < max_attempts:
            proprio = env._obs.qpos.astype(np.float32)  # radians, before the action
            clouds = np.asarray(obs["points"], dtype=np.float32)
            action = expert(env, obs)
            targets = spec.SCALER.unscale(np.clip(np.asarray(action, np.float64), -1.0, 1.0)).astype(np.float32)
            for i in range(num_envs):
                buffers[i].append((proprio[i], targets[i], clouds[i]))
            obs, _, terminated, truncated, info = env.step(action)
            for i in np.flatnonzero(terminated | truncated):
                attempts += 1
                if info["final_info"]["episode_success"][i] and len(kept) < episodes:
                    steps = buffers[i]
                    kept.append(tuple(np.stack([s[j] for s in steps]) for j in range(3)))  # type: ignore[misc]
                buffers[i] = []
        return kept
    finally:
        env.close()
