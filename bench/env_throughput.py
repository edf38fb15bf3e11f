"""Task-environment throughput: env-steps/s of the batched Gymnasium env.

For 64 / 256 / 512 envs of hop/GraspLift-v0 (six training objects, so six
scene variants): env-steps/s with a random policy and with an exported
policy (the pretrained one when ``--policy`` is given, else a freshly
initialised HopPolicy exported the same way: same compute), the share of
wall time spent inside MuJoCo's step calls, and, in the same run, the same
worlds stepped serially in one thread (``mujoco.mj_step`` per world, the
same control law and substeps) as the baseline.

Aims (issue 12): batched ≥ 1.8× the serial loop on 2 cores; time outside
MuJoCo ≤ 15 % with the random policy.

    python bench/env_throughput.py [--envs 64 256 512] [--steps 60] [--policy policy.pt]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import mujoco
import numpy as np

from hop_robot.embodiment import spec
from hop_robot.sim.control import RateLimitedTargets
from hop_train.envs import make_vector

TASK = "GraspLift-v0"


def batched(num_envs: int, steps: int, act=None) -> dict:
    env = make_vector(TASK, num_envs)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    restarted = np.ones(num_envs, dtype=bool)
    for _ in range(3):  # warm-up (thread pools, caches, TorchScript's profiling runs)
        actions = rng.uniform(-1, 1, (num_envs, spec.NUM_JOINTS)) if act is None else act(obs, restarted)
        obs, _, terminated, truncated, _ = env.step(actions)
        restarted = terminated | truncated
    env.sim.physics_seconds = 0.0
    t_policy = 0.0
    t0 = time.perf_counter()
    for _ in range(steps):
        t1 = time.perf_counter()
        actions = rng.uniform(-1, 1, (num_envs, spec.NUM_JOINTS)) if act is None else act(obs, restarted)
        t_policy += time.perf_counter() - t1
        obs, _, terminated, truncated, _ = env.step(actions)
        restarted = terminated | truncated
    wall = time.perf_counter() - t0
    physics = env.sim.physics_seconds
    env.close()
    return {
        "env_steps_per_s": num_envs * steps / wall,
        "share_mujoco": physics / wall,
        "share_policy": t_policy / wall,
        "share_other_python": 1.0 - (physics + t_policy) / wall,
    }


def serial(num_envs: int, steps: int) -> dict:
    """The same worlds (same variants, same start) stepped one after another in one thread."""
    env = make_vector(TASK, num_envs)
    env.reset(seed=0)
    ix = env.index
    worlds = []
    for i in range(num_envs):
        model = env.scenes[int(env.assignment[i])].model
        worlds.append((model, env.sim.full_state(i)))
    env.close()
    rng = np.random.default_rng(0)
    targets = RateLimitedTargets(1)
    t0 = time.perf_counter()
    for _ in range(steps):
        goals = spec.SCALER.unscale(rng.uniform(-1, 1, (num_envs, spec.NUM_JOINTS)))
        for i, (model, data) in enumerate(worlds):
            targets.reset(data.qpos[ix.qpos][None])
            for _ in range(spec.SUBSTEPS):
                data.ctrl[ix.actuator] = targets.substep(goals[i : i + 1])[0]
                mujoco.mj_step(model, data)
    wall = time.perf_counter() - t0
    return {"env_steps_per_s": num_envs * steps / wall}


def exported_policy(path: str | None, num_envs: int):
    from hop_train.evaluate import BatchedPolicy

    if path is None:
        import torch

        from hop_train.export import export_policy
        from hop_train.model import HopPolicy

        torch.manual_seed(0)
        path = os.path.join(tempfile.mkdtemp(prefix="hop-bench-"), "policy.pt")
        export_policy(HopPolicy(), path)
    return BatchedPolicy(path, num_envs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[64, 256, 512])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--serial-steps", type=int, default=10)
    parser.add_argument("--policy", default=None, help="exported policy (.pt); default: a fresh HopPolicy")
    args = parser.parse_args()
    rows = []
    for n in args.envs:
        rnd = batched(n, args.steps)
        pol = batched(n, max(5, args.steps // 4), exported_policy(args.policy, n))
        ser = serial(n, args.serial_steps)
        rows.append({
            "envs": n,
            "random": rnd,
            "policy": pol,
            "serial_one_thread": ser,
            "speedup_vs_serial": rnd["env_steps_per_s"] / ser["env_steps_per_s"],
        })  # fmt: skip
    print(json.dumps({
        "benchmark": "env_throughput",
        "task": TASK,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "aims": {"speedup_vs_serial": ">= 1.8", "share_outside_mujoco_random": "<= 0.15"},
        "results": rows,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
