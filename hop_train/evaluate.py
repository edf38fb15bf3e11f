"""Evaluate a policy on a task: one episode per env, all envs batched.

The policy is the exported TorchScript file the robot runs
(``hop_robot.policy.ExportedPolicy`` checks its metadata and refuses a file
for another embodiment, action size or point count), a Lightning checkpoint
(exported first, to a temporary file), the task's scripted expert, or
uniform random actions. ``BatchedPolicy`` keeps each env's last ``context``
steps (proprioception and point tokens: a step's cloud is encoded once) and
starts an env's history afresh when its episode restarts; for a
relative-position policy it keeps each env's key/value cache instead and
steps it once per control step (the file's ``step``, reset where an episode
restarts: the same actions as its windows, without recomputing them).

``evaluate(...)`` returns a JSON-ready summary: success rate with its 95 %
Wilson interval, the task's milestone rate, the reached rate (the fingertips
came within ``REACH_RADIUS`` of what the task must take) and the median
closest approach, the stalled rate (the hand still for an unsuccessful
episode's last ``STALL_S``: a policy that stopped acting), the median command
gap over the same last seconds (all episodes, and the stalled ones: ~0 where a
policy commands where its joints already are) and the median palm path, mean
return, episodes, per-object success, wall time.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from hop_robot.embodiment import spec

__all__ = ["BatchedPolicy", "PolicyError", "evaluate", "load_policy", "wilson_interval"]


class PolicyError(ValueError):
    """The policy cannot run on this task (file missing, wrong embodiment, action or point size)."""


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate (sound at 0 and n)."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


class BatchedPolicy:
    """An exported HOP policy acting for N envs at once (module doc).

    ``policy(obs, restarted) -> actions (N, 23) in [-1, 1]``; ``obs`` is the
    env's observation dict, ``restarted (N,)`` marks envs whose episode just
    (re)started: their history is cleared before this step is added.
    """

    def __init__(self, path: str | os.PathLike, num_envs: int, num_points: int = spec.NUM_POINTS, threads: int | None = None):
        from hop_robot.policy import ExportedPolicy, PolicyMismatchError

        try:
            runner = ExportedPolicy(path, num_threads=threads, num_points=num_points)
        except PolicyMismatchError as exc:
            raise PolicyError(str(exc)) from None
        except (RuntimeError, ValueError) as exc:
            raise PolicyError(f"{path}: cannot load as an exported HOP policy: {exc}") from None
        self.module, self.context, self.n = runner.module, runner.context, int(num_envs)
        self.incremental = runner.positions == "relative"
        self.cache = self.module.init_cache(self.n) if self.incremental else None
        self.proprio = torch.zeros(self.n, self.context, spec.NUM_JOINTS)
        self.tokens: torch.Tensor | None = None
        self.valid = torch.zeros(self.n, self.context, dtype=torch.bool)

    def __call__(self, obs: dict[str, np.ndarray], restarted: np.ndarray) -> np.ndarray:
        q = torch.from_numpy(spec.SCALER.unscale(obs["proprio"].astype(np.float64))).float()
        with torch.inference_mode():
            token = self.module.encode_points(torch.from_numpy(obs["points"]).float())  # (N, d), each cloud once
            restart = torch.from_numpy(np.asarray(restarted, dtype=bool))
            if self.incremental:
                targets = self.module.step(self.cache, q, token, restart)
            else:
                targets = self._window_targets(q, token, restart)
        out = targets.numpy().astype(np.float64)
        if not np.all(np.isfinite(out)):
            raise FloatingPointError("policy produced non-finite joint targets")
        return np.clip(spec.SCALER.scale(out), -1.0, 1.0)

    def _window_targets(self, q: torch.Tensor, token: torch.Tensor, restart: torch.Tensor) -> torch.Tensor:
        """Roll each env's window by this step (cleared where it restarted) and act on it."""
        if self.tokens is None:
            self.tokens = torch.zeros(self.n, self.context, token.shape[-1])
        self.valid[restart] = False
        self.proprio = torch.roll(self.proprio, -1, dims=1)
        self.tokens = torch.roll(self.tokens, -1, dims=1)
        self.valid = torch.roll(self.valid, -1, dims=1)
        self.proprio[:, -1], self.tokens[:, -1], self.valid[:, -1] = q, token, True
        return self.module.act_from_tokens(self.proprio, self.tokens, self.valid)


def load_policy(spec_: str, env, threads: int | None = None) -> Callable[[dict, np.ndarray], np.ndarray]:
    """``expert`` | ``random`` | FILE.pt | FILE.ckpt -> ``act(obs, restarted)``."""
    n = env.num_envs
    if spec_ == "random":
        rng = np.random.default_rng(0)
        return lambda obs, restarted: rng.uniform(-1.0, 1.0, (n, spec.NUM_JOINTS))
    if spec_ == "expert":
        from hop_train.envs.experts import make_expert

        expert = make_expert(env.task_name)
        expert.reset(env)
        return lambda obs, restarted: expert(env, obs)
    path = Path(spec_)
    if not path.is_file():
        raise PolicyError(f"policy {spec_!r}: no such file (or use 'expert' / 'random')")
    if path.suffix == ".ckpt":
        from hop_train.checkpoint import export_checkpoint
        from hop_train.export import IncompatibleCheckpointError

        with tempfile.TemporaryDirectory(prefix="hop-eval-") as tmp:  # the loaded module needs no file afterwards
            exported = Path(tmp) / "policy.pt"
            try:
                export_checkpoint(path, exported, check=False)
            except IncompatibleCheckpointError as exc:
                raise PolicyError(str(exc)) from None
            return BatchedPolicy(exported, n, env.num_points, threads)
    return BatchedPolicy(path, n, env.num_points, threads)


@dataclass
class Episodes:
    """Per-env results of the first episode of each env."""

    done: np.ndarray
    success: np.ndarray
    milestone: np.ndarray
    returns: np.ndarray
    lengths: np.ndarray
    closest: np.ndarray  # m, the fingertips' closest mean approach to what the task must take
    palm_path: np.ndarray  # m the palm travelled
    stalled: np.ndarray  # the hand stood still for the episode's last STALL_S without success
    command_gap: np.ndarray  # rad, mean |target - joints| over the episode's last STALL_S (envs/base.py)


def run_episodes(env, act: Callable, seed: int, progress: Any = None, frames: Callable | None = None) -> Episodes:
    """Run every env of ``env`` through one episode with ``act``; collect outcomes."""
    n = env.num_envs
    obs, _ = env.reset(seed=seed)
    res = Episodes(np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool), np.zeros(n), np.zeros(n, np.int64),
                   np.full(n, np.inf), np.zeros(n), np.zeros(n, bool), np.full(n, np.nan))  # fmt: skip
    restarted = np.ones(n, dtype=bool)
    for _ in range(env.config.episode_steps):
        actions = act(obs, restarted)
        obs, reward, terminated, truncated, info = env.step(actions)
        if frames is not None:
            frames(res.done)
        ended = terminated | truncated
        if np.any(ended):
            final = info["final_info"]
            new = ended & ~res.done
            res.success[new] = final["episode_success"][new]
            res.milestone[new] = final["episode_milestone"][new]
            res.returns[new] = final["episode_return"][new]
            res.lengths[new] = final["episode_length"][new]
            res.closest[new] = final["episode_closest"][new]
            res.palm_path[new] = final["episode_palm_path"][new]
            res.stalled[new] = final["episode_stalled"][new]
            res.command_gap[new] = final["episode_command_gap"][new]
            res.done |= ended
        restarted = ended
        if progress is not None:
            progress.update(1)
            progress.set_postfix(done=int(res.done.sum()), success=int(res.success.sum()))
        if res.done.all():
            break
    return res


def evaluate(
    task: str,
    policy: str,
    envs: int = 256,
    seed: int = 0,
    objects: str = "train",
    perturb: bool = False,
    cloud: str = "surface",
    render: str | None = None,
    render_envs: int = 4,
    show_progress: bool = True,
    threads: int = 0,
    episode_steps: int | None = None,
) -> dict[str, Any]:
    """Evaluate ``policy`` on ``task`` (module doc); write an mp4 of a few envs when ``render``."""
    from tqdm import tqdm

    from hop_train.envs import make_vector
    from hop_train.envs.base import REACH_RADIUS, STALL_S

    t0 = time.perf_counter()
    options = {} if episode_steps is None else {"episode_steps": int(episode_steps)}
    env = make_vector(task, envs, objects=objects, perturb=perturb, cloud=cloud, nthread=threads, **options)
    try:
        act = load_policy(policy, env)
        images: list[np.ndarray] = []

        def frames(done: np.ndarray) -> None:
            shown = list(range(min(render_envs, env.num_envs)))
            images.append(np.concatenate(env.render_envs(shown), axis=1))

        with tqdm(total=env.config.episode_steps, desc=f"evaluate {task}", unit="step", disable=not show_progress,
                  leave=False) as bar:  # fmt: skip
            res = run_episodes(env, act, seed, bar, frames if render else None)
        names = (np.array([env.objects[k].name for k in env.assignment]) if env.uses_objects
                 else np.full(env.num_envs, "cabinet_handle"))  # fmt: skip
    finally:
        env.close()
    if render:
        import imageio.v2 as imageio

        Path(render).parent.mkdir(parents=True, exist_ok=True)
        with imageio.get_writer(render, fps=spec.CONTROL_HZ) as video:
            for image in images:
                video.append_data(image)
    wall = time.perf_counter() - t0
    k, m = int(res.success.sum()), len(res.success)
    lo, hi = wilson_interval(k, m)
    return {
        "task": task,
        "policy": policy,
        "objects": objects if env.uses_objects else "n/a (the task's own object)",
        "perturb": perturb,
        "cloud": cloud,
        "seed": seed,
        "episode_steps": env.config.episode_steps,
        "episodes": m,
        "success_rate": k / m,
        "success_ci95": [lo, hi],
        "milestone": env.milestone,
        "milestone_rate": float(res.milestone.mean()),
        "reached_rate": float((res.closest < REACH_RADIUS).mean()),
        "reach_radius_m": REACH_RADIUS,
        "closest_median_m": float(np.median(res.closest)),
        "stalled_rate": float(res.stalled.mean()),
        "stall_s": STALL_S,
        "palm_path_median_m": float(np.median(res.palm_path)),
        "command_gap_median_rad": float(np.median(res.command_gap)),
        "stalled_command_gap_median_rad": float(np.median(res.command_gap[res.stalled])) if res.stalled.any() else None,
        "mean_return": float(res.returns.mean()),
        "mean_length": float(res.lengths.mean()),
        "per_object": {
            name: {"episodes": int((names == name).sum()), "success_rate": float(res.success[names == name].mean())}
            for name in dict.fromkeys(names.tolist())
        },
        "wall_s": wall,
        "render": render,
    }
