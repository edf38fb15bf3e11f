"""``hop-data``: the data engine's commands.

Each subcommand is a function taking parsed arguments and returning an exit
code; heavy imports happen inside them so that ``hop-data --help`` is instant.
User errors (bad files, incompatible stores) print one line naming the file
and the problem and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable

from hop_robot.embodiment import spec


def _print_json_or_table(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2, sort_keys=False))
        return
    width = max(len(k) for k in result)
    for key, value in result.items():
        if isinstance(value, (list, dict)) and len(json.dumps(value)) > 100:
            value = f"{type(value).__name__} of {len(value)}"
        print(f"{key:<{width}}  {value}")


# ---------------------------------------------------------------- info
def cmd_info(args: argparse.Namespace) -> int:
    from hop_data.store import store_info

    _print_json_or_table(store_info(args.store), args.json)
    return 0


# ---------------------------------------------------------------- simulate
def cmd_simulate(args: argparse.Namespace) -> int:
    """Step N randomised scenes through smooth joint motions and store them:
    a check of the simulator, the scene randomisation and the store."""
    import numpy as np
    from tqdm import tqdm

    from hop_data.sim.mujoco_backend import MujocoSimulator
    from hop_data.sim.protocol import SceneConfig, SceneParams
    from hop_data.store import Episode, TrajectoryStore
    from hop_robot.geometry import yaw_quat

    rng = np.random.default_rng(args.seed)
    n, steps = args.scenes, args.steps
    config = SceneConfig()
    # a box-shaped object's surface points, in its own frame
    pts = rng.uniform(-1, 1, size=(600, 3))
    axis = np.argmax(np.abs(pts), axis=1)
    pts[np.arange(len(pts)), axis] = np.sign(pts[np.arange(len(pts)), axis])
    pts *= [0.03, 0.04, 0.06]

    params = SceneParams.default(n, config)
    params.table_pose[:, :3] += rng.uniform([-0.05, -0.05, -0.03], [0.05, 0.05, 0.03], size=(n, 3))
    params.table_pose[:, 3:] = yaw_quat(rng.uniform(-0.1, 0.1, n))
    params.joint_friction[:, spec.ARM] = rng.uniform(0.0, 1.0, (n, spec.NUM_ARM_JOINTS))
    params.joint_friction[:, spec.HAND] = rng.uniform(0.0, 0.01, (n, spec.NUM_HAND_JOINTS))
    start = spec.clip_to_limits(spec.DEFAULT_POSE + rng.normal(0, 0.05, (n, spec.NUM_JOINTS)))
    goal = spec.clip_to_limits(spec.DEFAULT_POSE + rng.normal(0, 0.3, (n, spec.NUM_JOINTS)))
    obj = np.zeros((n, 7))
    obj[:, 0:3] = params.table_pose[:, 0:3] + [-0.2, 0.0, 0.06]
    obj[:, 3:] = yaw_quat(rng.uniform(-np.pi, np.pi, n))

    proprio = np.empty((steps, n, spec.NUM_JOINTS), np.float32)
    action = np.empty_like(proprio)
    clouds = np.empty((steps, n, config.num_points, 3), np.float32)
    t0 = time.perf_counter()
    with MujocoSimulator(pts, n, config=config, nthread=args.threads) as sim:
        obs = sim.reset(start, obj, params)
        for k in tqdm(range(steps), desc=f"simulate {n} scenes", unit="step", disable=args.json):
            u = 0.5 - 0.5 * np.cos(np.pi * min(1.0, k / max(1, steps - 1)))  # smooth start to goal
            target = start + u * (goal - start)
            proprio[k], action[k], clouds[k] = obs.qpos, target, obs.object_pc
            obs = sim.step(target, obj)
    wall = time.perf_counter() - t0

    store = TrajectoryStore.open(args.store, "a", num_points=config.num_points)
    episodes = [
        Episode(
            proprio=proprio[:, i], action=action[:, i], object_pc=clouds[:, i], seed=args.seed * 100003 + i,
            table_pose=params.table_pose[i], init_qpos=start[i], max_error=0.0, mean_error=0.0,
            collision=bool(obs.arm_contact[i]),
        )
        for i in range(n)
    ]
    with store.writer(args.writer_id) as writer:
        result = writer.append_episodes(f"simulate/seed{args.seed}", episodes)
    summary = {
        "scenes": n,
        "steps": steps,
        "physics_steps_per_s": n * steps * spec.SUBSTEPS / wall,
        "arm_contact_fraction": float(obs.arm_contact.mean()),
        "hand_contact_fraction": float(obs.hand_contact.mean()),
        "store": str(args.store),
        "episodes_written": result.episodes,
        "skipped_already_committed": result.skipped,
    }
    _print_json_or_table(summary, args.json)
    return 0


# ---------------------------------------------------------------- parser
COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "info": (cmd_info, "what a trajectory store holds"),
    "simulate": (cmd_simulate, "step N randomised scenes on the batched simulator and store them"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hop-data", description="HOP data engine: videos -> robot trajectories.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help=COMMANDS["info"][1])
    p.add_argument("store", help="store path or fsspec URL")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("simulate", help=COMMANDS["simulate"][1])
    p.add_argument("--scenes", type=int, default=64)
    p.add_argument("--steps", type=int, default=60, help="control steps at 20 Hz")
    p.add_argument("--store", required=True, help="store path or fsspec URL (created if missing)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="simulator threads (0: all cores)")
    p.add_argument("--writer-id", default="simulate", help="the store shard this process writes")
    p.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from hop_data.store import StoreError

    try:
        return COMMANDS[args.command][0](args)
    except (StoreError, FileNotFoundError) as exc:
        print(f"hop-data {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
