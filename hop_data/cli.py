"""``hop-data``: the data engine's commands.

Each subcommand is a function taking parsed arguments and returning an exit
code; heavy imports happen inside them so that ``hop-data --help`` is instant.
User errors (bad files, incompatible stores) print one line naming the file
and the problem and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

from hop_data.options import OptionError, add_options, add_output_switches, from_args
from hop_data.report import exit_status, print_summary
from hop_data.retarget.config import RetargetRunConfig
from hop_robot.embodiment import spec


# ---------------------------------------------------------------- info
def cmd_info(args: argparse.Namespace) -> int:
    from hop_data.store import store_info

    info = store_info(args.store)
    print_summary(info, args.json)
    if not args.json and info.get("retargeting"):
        _print_videos(info["retargeting"]["per_video"])
    return 0


def _print_videos(videos: list[dict]) -> None:
    """Per video: kept of attempts, rejections by cause, kept errors (the table view)."""
    from hop_data.report import video_line

    if videos:
        print("per video:")
    for v in videos:
        print("  " + video_line(v))


# ---------------------------------------------------------------- simulate
def cmd_simulate(args: argparse.Namespace) -> int:
    """Step N randomised scenes through smooth joint motions and store them:
    a check of the simulator, the scene randomisation and the store."""
    import numpy as np
    from tqdm import tqdm

    from hop_robot.sim.mujoco_batch import MujocoSimulator
    from hop_robot.sim import SceneConfig, SceneParams
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
    with MujocoSimulator.from_points(pts, n, config=config, nthread=args.threads) as sim:
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
    print_summary(summary, args.json)
    return 0


# ---------------------------------------------------------------- synth
def cmd_synth(args: argparse.Namespace) -> int:
    if args.real_hands:
        from hop_data.synth.real_hands import photo_hand_poses, real_hand_corpus

        try:
            poses = photo_hand_poses(args.real_hands)
            if not poses:
                raise ValueError(f"MediaPipe found no usable hand in {', '.join(args.real_hands)}")
        except (ValueError, RuntimeError) as exc:
            print(f"hop-data synth: error: --real-hands: {exc}", file=sys.stderr)
            return 2
        paths = real_hand_corpus(args.out, args.videos, args.seed, poses)
        photos = sorted({p.photo for p in poses})
        print(f"wrote {len(paths)} HOI trajectories with real hand poses ({len(poses)} hands from {len(photos)} "
              f"photos: {', '.join(photos)}) to {args.out}")  # fmt: skip
        return 0
    from hop_data.synth import synthesize

    paths = synthesize(args.out, args.videos, args.seed)
    print(f"wrote {len(paths)} synthetic HOI trajectories to {args.out}")
    return 0


# ---------------------------------------------------------------- retarget
def cmd_retarget(args: argparse.Namespace) -> int:
    from hop_data.retarget.run import retarget_files

    summary = retarget_files(from_args(RetargetRunConfig, args), progress=not (args.json or args.quiet))
    print_summary(summary, args.json)
    if not args.json:
        _print_videos(summary["per_video"])
        for f in summary["failed"]:
            print(f"  refused ({f.get('cause', 'bad_input')}): {f['reason']}")
    return exit_status(summary)


# ---------------------------------------------------------------- render
def cmd_render(args: argparse.Namespace) -> int:
    from hop_data.render import render_episode

    summary = render_episode(args.store, args.episode, args.out, hoi_path=args.hoi, width=args.width, height=args.height)
    print_summary(summary, args.json)
    return 0


# ---------------------------------------------------------------- report
def cmd_report(args: argparse.Namespace) -> int:
    from hop_data.report_html import write_report

    print_summary(write_report(args.store, args.out, hoi_path=args.hoi, episodes=args.episodes), args.json)
    return 0


# ---------------------------------------------------------------- parser
COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "info": (cmd_info, "what a trajectory store holds"),
    "simulate": (cmd_simulate, "step N randomised scenes on the batched simulator and store them"),
    "synth": (cmd_synth, "write a synthetic corpus of human hand-object trajectories (format 1)"),
    "retarget": (cmd_retarget, "retarget HOI trajectories to the robot in simulation, into a store"),
    "render": (cmd_render, "render a stored episode to a video (robot, object cloud, human keypoints)"),
    "report": (cmd_report, "an HTML report of a store: acceptance and rejection causes per video, errors, rendered episodes"),
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

    p = sub.add_parser("synth", help=COMMANDS["synth"][1])
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--real-hands", nargs="+", metavar="PHOTO", help="photos (files or folders) whose hands "
                   "(MediaPipe, no download) replace the synthetic hand's shape: the videos keep the synthetic "
                   "paths, objects and cameras (hop_data/synth/real_hands.py)")  # fmt: skip

    p = sub.add_parser("retarget", help=COMMANDS["retarget"][1])
    add_options(p, RetargetRunConfig)
    add_output_switches(p)

    p = sub.add_parser("render", help=COMMANDS["render"][1])
    p.add_argument("store", help="store path or fsspec URL")
    p.add_argument("--episode", type=int, required=True, help="episode index (0 .. episodes-1)")
    p.add_argument("--out", required=True, help="output video (.mp4 or .gif)")
    p.add_argument("--hoi", help="the source *.hoi.npz (or a directory of them) to draw the human keypoints")
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=384)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("report", help=COMMANDS["report"][1])
    p.add_argument("store", help="store path or fsspec URL")
    p.add_argument("--out", required=True, help="the HTML file to write (self-contained)")
    p.add_argument("--hoi", help="the source *.hoi.npz files (a directory) to draw the human hands beside the robot")
    p.add_argument("--episodes", type=int, default=3, help="episodes rendered (0: none)")
    p.add_argument("--json", action="store_true")
    return parser


# Commands owned by other stages register themselves: each module has
# ``add_commands(subparsers) -> {name: function}`` and imports nothing heavy at
# module level. A stage that is not installed is simply absent.
PLUGINS = ("hop_data.sources.cli", "hop_data.lifting.cli", "hop_data.service.cli")


def _build() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    import importlib

    parser = build_parser()
    handlers = {name: entry[0] for name, entry in COMMANDS.items()}
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in PLUGINS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        handlers.update(module.add_commands(sub))
    return parser, handlers


def main(argv: list[str] | None = None) -> int:
    parser, handlers = _build()
    args = parser.parse_args(argv)
    from hop_data.store import StoreError

    try:
        return handlers[args.command](args)
    except (OptionError, StoreError, FileNotFoundError, IndexError) as exc:
        print(f"hop-data {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
