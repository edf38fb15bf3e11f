"""``hop-robot``: the robot-side command line.

Subcommands are registered in ``SUBCOMMANDS`` (name -> (help, add_arguments, run)); a new
one (e.g. ``run``, the 20 Hz policy loop) adds an entry there.

    hop-robot describe [--json] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from hop_robot.embodiment import spec as S


# ---------------------------------------------------------------- describe
def _describe_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--model",
        metavar="PATH",
        default=None,
        help=f"MJCF model to describe (default: ${S.MODEL_ENV_VAR}, else the built-in model)",
    )


def _describe_table(info: dict) -> str:
    lines = [
        f"embodiment  {info['name']}",
        f"model       {info['model_path']}",
        f"control     {info['control_hz']} Hz policy, {info['sim_hz']} Hz PD "
        f"({info['substeps']} substeps), arm target step <= "
        f"{info['arm_max_step_per_substep']:.5f} rad/substep",
    ]
    for part in ("arm", "hand"):
        g = info["gains"][part]
        lines.append(f"gains {part:<5} kp {g['kp']:g}  kd {g['kd']:g}  effort {g['effort']:g} N·m")
    lines.append("")
    lines.append(f"{'#':>2}  {'joint':<16} {'lower':>9} {'upper':>9} {'default':>9}")
    for i, name in enumerate(info["joint_names"]):
        lines.append(
            f"{i:>2}  {name:<16} {info['joint_lower'][i]:>9.4f} {info['joint_upper'][i]:>9.4f} "
            f"{info['default_pose'][i]:>9.4f}"
        )
    lines.append("")
    lines.append(f"{'#':>2}  {'keypoint site':<16} human joint")
    for i, (site, human) in enumerate(zip(info["keypoint_sites"], info["human_keypoint_index"])):
        lines.append(f"{i:>2}  {site:<16} {human}")
    return "\n".join(lines)


def _describe(args: argparse.Namespace) -> int:
    try:
        info = S.EMBODIMENT.to_dict(args.model)
        from hop_robot.embodiment.model import load_spec

        load_spec(args.model)  # refuse a model that lacks the spec's joints or sites
    except (FileNotFoundError, ValueError) as exc:
        print(f"hop-robot describe: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(_describe_table(info))
    return 0


# ---------------------------------------------------------------- registry
Subcommand = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
SUBCOMMANDS: dict[str, Subcommand] = {
    "describe": ("print the embodiment: joints, limits, default pose, gains, keypoints, model path",
                 _describe_args, _describe),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hop-robot", description="HOP robot side (xArm7 + Allegro).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add_args, run) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
