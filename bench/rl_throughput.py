"""PPO throughput on this machine: how far can PPO go on a CPU?

For 64 and 512 envs of hop/GraspLift-v0 with the paper-size policy (width
192, 4 layers, context 16, 100 points), measured in one run:

- collection: env-steps/s of ``RolloutCollector`` (policy share vs physics
  share), with each step's cloud encoded once and its token reused by the
  next 15 windows (ours), against re-encoding every window's 16 clouds at
  every step (the naive full-window recompute);
- update: samples/s of one PPO epoch where a minibatch encodes each
  distinct step's cloud once and gathers the tokens into windows (ours),
  against encoding each sample's 16 clouds (naive);
- end to end: samples/s of collect + update.

and, for 64 and 512 envs (``--inference-envs``), the relative-position
policy's incremental inference (``HopPolicy(positions="relative").step``:
per-env key/value caches, 2 new tokens per env per step) against the
full-window recompute (today's path: each env's 16-step window through the
transformer at every step), both with the step's clouds encoded once:

- ``incremental_inference``: per control step, on the same inputs with
  episodes restarting at random steps, for the paper-size policy (width
  192, 4 layers, 4 heads, context 16) and the CPU experiment's (width 96,
  2 layers); the window and incremental steps are timed interleaved, so a
  loaded machine slows both alike;
- ``incremental_collection``: ``RolloutCollector`` env-steps/s on the task
  (paper size) with the window policy, and with the relative policy whose
  caches are rebuilt from a storage of ``receptive_field`` steps (exact
  with the update), of ``context`` steps (what the PPO module builds), or
  carried across rollouts.

Prints one JSON object.

    python bench/rl_throughput.py [--envs 64 512] [--rollouts 2] [--inference-envs 64 512] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from hop_train.envs import make_vector
from hop_train.model import HopPolicy
from hop_train.rl.actor_critic import ActorCritic
from hop_train.rl.ppo import PPO, PPOConfig
from hop_train.rl.rollout import RolloutCollector
from hop_train.rl.storage import RolloutStorage, gather_windows

TASK = "GraspLift-v0"
SIZES = {  # HopPolicy arguments
    "paper": {"width": 192, "num_layers": 4, "num_heads": 4, "context": 16},
    "cpu_experiment": {"width": 96, "num_layers": 2, "num_heads": 4, "context": 16},  # experiments/cpu.yaml
}


def setup(n: int):
    torch.manual_seed(0)
    env = make_vector(TASK, n)
    policy = HopPolicy()
    d = env.single_observation_space["state"].shape[0]
    cfg = PPOConfig(num_envs=n, horizon=10, minibatch_size=min(512, n * 10), critic_warmup_steps=0)
    ac = ActorCritic(policy, d, cfg.init_std, cfg.detach_critic_tokens)
    storage = RolloutStorage(n, cfg.horizon, policy.context, env.num_points, d, 23)
    return env, ac, storage, RolloutCollector(env, ac, storage, cfg), PPO(ac, cfg)


@torch.no_grad()
def naive_step_seconds(ac: ActorCritic, storage: RolloutStorage, repeats: int = 2) -> float:
    """One rollout step's policy inference re-encoding all 16 clouds of every window."""
    proprio, points, mask = storage.window(0)
    t0 = time.perf_counter()
    for _ in range(repeats):
        tokens = ac.encode(torch.from_numpy(points))
        ac.mean(torch.from_numpy(proprio), tokens, torch.from_numpy(mask))
    return (time.perf_counter() - t0) / repeats


def naive_update_samples_per_s(ac: ActorCritic, storage: RolloutStorage, size: int) -> float:
    """Forward + backward of ``size`` samples, each encoding its own 16 clouds."""
    mb = next(storage.minibatches(max(1, storage.n * storage.t // size), torch.Generator().manual_seed(0)))
    e, c, t = mb["proprio"].shape[0], storage.c, storage.t
    points = gather_windows(mb["points"], c, t).reshape(e * t, c, *mb["points"].shape[2:])
    proprio = gather_windows(mb["proprio"], c, t).reshape(e * t, c, -1)
    t0 = time.perf_counter()
    mean = ac.mean(proprio, ac.encode(points), mb["mask"].reshape(e * t, c))
    mean.square().mean().backward()
    ac.zero_grad(set_to_none=True)
    return e * t / (time.perf_counter() - t0)


def measure(n: int, rollouts: int) -> dict:
    env, ac, storage, collector, ppo = setup(n)
    collector.collect()  # warm-up rollout (also fills the window history)
    ppo.update(storage)
    storage.next_rollout()
    t_collect = t_update = 0.0
    physics0 = env.sim.physics_seconds
    for _ in range(rollouts):
        t0 = time.perf_counter()
        collector.collect()
        t1 = time.perf_counter()
        ppo.update(storage)
        t_update += time.perf_counter() - t1
        t_collect += t1 - t0
        storage.next_rollout()
    samples = rollouts * n * storage.t
    physics = env.sim.physics_seconds - physics0
    ac.eval()
    collector.collect()
    naive_inference = naive_step_seconds(ac, storage)
    ac.train()
    naive_update = naive_update_samples_per_s(ac, storage, ppo.cfg.minibatch_size)
    env.close()
    ours_step = t_collect / (rollouts * storage.t)
    return {
        "envs": n,
        "collect_env_steps_per_s": samples / t_collect,
        "collect_share_physics": physics / t_collect,
        "collect_share_policy_and_python": 1 - physics / t_collect,
        "naive_full_window_env_steps_per_s": n / (naive_inference + physics / (rollouts * storage.t)),
        "inference_speedup_vs_full_window": (naive_inference + physics / (rollouts * storage.t)) / ours_step,
        "update_samples_per_s": samples / t_update,
        "naive_update_samples_per_s": naive_update,
        "update_speedup_vs_naive": (samples / t_update) / naive_update,
        "end_to_end_samples_per_s": samples / (t_collect + t_update),
    }


# ------------------------------------------------------------ incremental vs full window
@torch.no_grad()
def inference_row(size: str, n: int, steps: int = 8, reset_rate: float = 0.05) -> dict:
    """Per-step inference of ``n`` envs: the window policy recomputing each env's
    window against the relative policy stepping its caches (module doc)."""
    torch.manual_seed(0)
    window = HopPolicy(**SIZES[size]).eval()
    relative = HopPolicy(**SIZES[size], positions="relative").eval()
    c, g = window.context, torch.Generator().manual_seed(0)
    proprio = torch.rand(steps, n, 23, generator=g) * 2 - 1
    points = torch.rand(steps, n, 100, 3, generator=g) * 0.3 + torch.tensor([0.5, -0.15, 0.0])
    reset = torch.rand(steps, n, generator=g) < reset_rate
    reset[0] = True
    roll = _WindowRoll(n, c, window.width)
    cache = relative.init_cache(n)
    times = {"encode": 0.0, "window": 0.0, "incremental": 0.0}
    actions = []
    for k in range(steps):
        t0 = time.perf_counter()
        token = window.encode_points(points[k])
        t1 = time.perf_counter()
        window.forward_tokens(*roll.push(proprio[k], token, reset[k]), last_step_only=True)
        t2 = time.perf_counter()
        actions.append(relative.step(cache, proprio[k], token, reset[k]))
        t3 = time.perf_counter()
        if k >= 2:  # the first steps warm the allocator
            for key, dt in (("encode", t1 - t0), ("window", t2 - t1), ("incremental", t3 - t2)):
                times[key] += dt / (steps - 2)
    last_reset = steps - 1 - reset.flip(0).int().argmax(0)  # (n,) where each env's episode began
    i = int(last_reset.argmin())  # the env with the longest episode, through the banded forward
    first = int(last_reset[i])
    banded = relative.forward_tokens(proprio[None, first:, i], window.encode_points(points[first:, i])[None])[0]
    err = (torch.stack(actions)[first:, i] - banded).abs().max().item()
    return {
        "policy": size, **SIZES[size], "envs": n,
        "encode_ms": 1e3 * times["encode"],
        "window_transformer_ms": 1e3 * times["window"],
        "incremental_transformer_ms": 1e3 * times["incremental"],
        "speedup_transformer": times["window"] / times["incremental"],
        "speedup_with_encoding": (times["encode"] + times["window"]) / (times["encode"] + times["incremental"]),
        "incremental_env_steps_per_s": n / (times["encode"] + times["incremental"]),
        "window_env_steps_per_s": n / (times["encode"] + times["window"]),
        "max_abs_diff_vs_banded_forward": err,
    }  # fmt: skip


class _WindowRoll:
    """Each env's last ``context`` steps, as ``hop_train.evaluate.BatchedPolicy``
    and the collector keep them: rolled by one step, cleared at restarts."""

    def __init__(self, n: int, context: int, width: int) -> None:
        self.proprio = torch.zeros(n, context, 23)
        self.tokens = torch.zeros(n, context, width)
        self.valid = torch.zeros(n, context, dtype=torch.bool)

    def push(self, proprio: torch.Tensor, token: torch.Tensor, reset: torch.Tensor):
        self.valid[reset] = False
        self.proprio, self.tokens, self.valid = (torch.roll(a, -1, dims=1) for a in (self.proprio, self.tokens, self.valid))
        self.proprio[:, -1], self.tokens[:, -1], self.valid[:, -1] = proprio, token, True
        return self.proprio, self.tokens, self.valid


def collection_row(n: int) -> dict:
    """``RolloutCollector`` env-steps/s (one rollout after a warm-up one) with the
    window policy and the relative policy's three cache modes (module doc)."""
    env = make_vector(TASK, n)
    d = env.single_observation_space["state"].shape[0]
    cfg = PPOConfig(num_envs=n, horizon=10)
    out: dict = {"envs": n}
    modes = {"window": ("window", None, True), "incremental_exact": ("relative", "receptive_field", True),
             "incremental_context_storage": ("relative", "context", True),
             "incremental_carried": ("relative", "receptive_field", False)}  # fmt: skip
    for name, (positions, storage_steps, refresh) in modes.items():
        torch.manual_seed(0)
        policy = HopPolicy(positions=positions)
        ac = ActorCritic(policy, d, cfg.init_std, cfg.detach_critic_tokens).eval()
        steps = policy.context if storage_steps in (None, "context") else policy.receptive_field
        storage = RolloutStorage(n, cfg.horizon, steps, env.num_points, d, 23)
        collector = RolloutCollector(env, ac, storage, cfg, refresh_cache=refresh)
        collector.collect()  # warm-up: fills the history
        storage.next_rollout()
        physics0, t0 = env.sim.physics_seconds, time.perf_counter()
        collector.collect()
        seconds = time.perf_counter() - t0
        out[name] = {"storage_steps": steps, "env_steps_per_s": n * cfg.horizon / seconds,
                     "policy_seconds_per_rollout": seconds - (env.sim.physics_seconds - physics0)}  # fmt: skip
    for name in modes:
        out[name]["speedup_vs_window"] = out[name]["env_steps_per_s"] / out["window"]["env_steps_per_s"]
    env.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="*", default=[64, 512], help="PPO collect/update measurements (none: skip)")
    parser.add_argument("--rollouts", type=int, default=2)
    parser.add_argument("--inference-envs", type=int, nargs="+", default=[64, 512],
                        help="incremental vs full-window inference and collection")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's; 1 is steadier on a machine shared with other work)")  # fmt: skip
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    inference = [inference_row(size, n) for size in SIZES for n in args.inference_envs]
    collection = [collection_row(n) for n in args.inference_envs]
    rows = [measure(n, args.rollouts) for n in args.envs]
    print(json.dumps({
        "benchmark": "rl_throughput",
        "task": TASK,
        "policy": "HopPolicy width 192, 4 layers, context 16, 100 points",
        "torch_threads": torch.get_num_threads(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "aim": "incremental inference >= 4x full-window recompute at 512 envs",
        "incremental_inference": inference,
        "incremental_collection": collection,
        "results": rows,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
