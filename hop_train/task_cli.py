"""``hop-train evaluate`` and ``hop-train demos``: the task side of ``hop-train``.

    hop-train evaluate --task GraspLift-v0 --policy {expert|random|FILE.pt|FILE.ckpt} --envs 256 --seed 0 \\
        [--objects train|heldout] [--perturb] [--cloud surface|camera] [--render FILE.mp4] [--json]
    hop-train demos --task GraspLift-v0 --episodes 50 --store demos.zarr --seed 0 [--envs 64]

Exit status: 0 done, 2 bad input (unknown task, policy file missing or for
another robot, action or point size); the message names what is wrong.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from typing import Sequence

__all__ = ["demos_main", "evaluate_main"]


def _defaults(function) -> dict:
    """A library function's keyword defaults: the CLI shows them, it does not repeat them."""
    return {k: p.default for k, p in inspect.signature(function).parameters.items() if p.default is not p.empty}


def _task_arg(parser: argparse.ArgumentParser, defaults: dict) -> None:
    from hop_train.envs import TASKS

    parser.add_argument("--task", required=True, help=f"one of {sorted(TASKS)} (or hop/<name>)")
    parser.add_argument("--seed", type=int, default=defaults["seed"], help="env seed (env i gets seed + i)")
    parser.add_argument("--objects", default=defaults["objects"], help="train | heldout | comma-separated object names")


def evaluate_main(argv: Sequence[str]) -> int:
    from hop_train.evaluate import evaluate

    d = _defaults(evaluate)
    parser = argparse.ArgumentParser(prog="hop-train evaluate", description="Run one episode per env and report the success rate.")
    _task_arg(parser, d)
    parser.add_argument("--policy", required=True, help="expert | random | exported policy (.pt) | checkpoint (.ckpt)")
    parser.add_argument("--envs", type=int, default=d["envs"], help="envs (= episodes), stepped together")
    parser.add_argument("--threads", type=int, default=d["threads"], help="simulator threads (0: all CPUs)")
    parser.add_argument("--perturb", action="store_true", help="a random force of the object's weight while it is held")
    parser.add_argument("--cloud", default=d["cloud"], choices=["surface", "camera"], help="the cloud the policy sees")
    parser.add_argument("--render", default=d["render"], help="write an mp4 of the first envs side by side")
    parser.add_argument("--episode-steps", type=int, default=d["episode_steps"], help="episode length (default: the task's, 600)")
    parser.add_argument("--json", action="store_true", help="print only the JSON summary on stdout")
    args = parser.parse_args(list(argv))
    from hop_train.envs import task_id
    from hop_train.evaluate import PolicyError

    objects = args.objects if args.objects in ("train", "heldout") else tuple(args.objects.split(","))
    try:
        task_id(args.task)
        if args.envs < 1:
            raise ValueError(f"--envs must be >= 1, got {args.envs}")
        summary = evaluate(
            args.task, args.policy, envs=args.envs, seed=args.seed, objects=objects, perturb=args.perturb,
            cloud=args.cloud, render=args.render, show_progress=not args.json, threads=args.threads,
            episode_steps=args.episode_steps,
        )  # fmt: skip
    except (PolicyError, ValueError) as exc:
        print(f"hop-train evaluate: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary))
    else:
        lo, hi = summary["success_ci95"]
        print(f"{summary['task']} · {summary['policy']} · {summary['episodes']} episodes ({summary['objects']} objects)")
        print(f"  success {summary['success_rate']:.1%} (95 % CI {lo:.1%}–{hi:.1%}), "
              f"{summary['milestone']} {summary['milestone_rate']:.1%}, mean return {summary['mean_return']:.1f}, "
              f"{summary['wall_s']:.1f} s")  # fmt: skip
        for name, row in summary["per_object"].items():
            print(f"  {name:24s} {row['success_rate']:.1%} of {row['episodes']}")
    return 0


def demos_main(argv: Sequence[str]) -> int:
    from hop_train.demos_store import write_demos

    d = _defaults(write_demos)
    parser = argparse.ArgumentParser(prog="hop-train demos", description="Record successful expert episodes into a trajectory store.")
    _task_arg(parser, d)
    parser.add_argument("--episodes", type=int, required=True, help="successful episodes to record")
    parser.add_argument("--store", required=True, help="trajectory store (created if missing)")
    parser.add_argument("--envs", type=int, default=d["envs"], help="envs run together while recording")
    parser.add_argument("--json", action="store_true", help="print only the JSON summary on stdout")
    args = parser.parse_args(list(argv))
    from hop_data.store import StoreError
    from hop_train.envs import task_id

    try:
        task_id(args.task)
        if args.episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
        summary = write_demos(args.task, args.episodes, args.store, seed=args.seed, envs=args.envs,
                              objects=args.objects, show_progress=not args.json)  # fmt: skip
    except (StoreError, ValueError) as exc:
        print(f"hop-train demos: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary) if args.json else
          f"{summary['recorded']} of {summary['requested']} demonstrations of {summary['task']} recorded, "
          f"{summary['episodes']} newly committed to {summary['store']}")  # fmt: skip
    return 0
