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

The transformer itself is still recomputed over the whole window at every
step (a key/value cache needs a model defined with fixed positions and
sliding-window attention: docs/training.md). Prints one JSON object.

    python bench/rl_throughput.py [--envs 64 512] [--rollouts 2]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--rollouts", type=int, default=2)
    args = parser.parse_args()
    rows = [measure(n, args.rollouts) for n in args.envs]
    print(json.dumps({
        "benchmark": "rl_throughput",
        "task": TASK,
        "policy": "HopPolicy width 192, 4 layers, context 16, 100 points",
        "torch_threads": torch.get_num_threads(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "aim": "incremental inference >= 4x full-window recompute at 512 envs",
        "results": rows,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
