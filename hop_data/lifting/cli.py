"""``hop-data lift``: videos -> HOI trajectories (format 1), one command.

Registered by ``hop_data.cli`` (plugin: ``add_commands``). Nothing heavy is
imported here. Where this interpreter cannot lift (the main environment has
numpy >= 2; MediaPipe needs numpy < 2) the work runs in the lifting
environment's interpreter (``.venv-lift``, or ``$HOP_LIFT_PYTHON``) as
``python -m hop_data.lifting.worker``, which gets the terminal (progress bars,
one line per video); only files cross between the two environments.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable


def cmd_lift(args: argparse.Namespace) -> int:
    from . import api, worker

    try:
        options = worker.options_from_args(args)
    except ValueError as e:
        print(f"hop-data lift: error: {e}", file=sys.stderr)
        return 2
    if api.lifting_available():
        return worker.run(args)
    import subprocess

    try:
        cmd = api.worker_command(args.videos, args.out, options, results=args.results, quiet=args.quiet)
    except FileNotFoundError as e:
        print(f"hop-data lift: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        cmd.insert(cmd.index("--"), "--json")
    return subprocess.call(cmd, env=api.worker_env())


def add_lift_options(p: argparse.ArgumentParser) -> None:
    """The options ``hop-data lift`` and the worker share (``api.LiftOptions``
    fields; an option left out keeps LiftOptions' default)."""
    p.add_argument("videos", nargs="+", help="video files, directories of videos, or glob patterns")
    p.add_argument("--out", required=True, help="output directory for <stem>.hoi.npz (and <stem>.lift.json)")
    p.add_argument("--hands", choices=["mediapipe", "hamer"], help="hand backend (default mediapipe)")
    p.add_argument("--objects", choices=["anchored", "mcc-ho"], help="object backend (default anchored: a proxy held in the hand)")
    p.add_argument("--intrinsics", help="fx,fy,cx,cy in pixels (default: estimated from the image size)")
    p.add_argument("--fov-deg", type=float, help="long-side field of view (deg) used when estimating intrinsics (default 60)")
    p.add_argument("--annotations", help="directory of 100 Days of Hands annotations (hop-data import doh100 output, or XML)")
    p.add_argument("--side", choices=["auto", "right", "left"], help="hand to follow (default auto: the right hand, else the left)")
    p.add_argument("--hand-size", type=float, help="wrist to middle knuckle in metres (default: the video's median)")
    p.add_argument("--smooth-window-s", type=float, help="smoothing window in seconds (default 0.3)")
    p.add_argument("--max-gap-s", type=float, help="detection dropouts up to this long are bridged (default 0.1)")
    p.add_argument("--outlier-m", type=float, help="drop frames this far (m) from their neighbours' median (default 0.15)")
    p.add_argument("--fps", type=float, help="frame rate when the file's is missing or wrong")
    p.add_argument("--max-frames", type=int, help="lift at most this many frames per video")
    p.add_argument("--object-shape", choices=["cylinder", "box"], help="proxy primitive (default cylinder)")
    p.add_argument("--source-prefix", help="source id = <prefix>/<video stem> (default video)")


def add_commands(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = subparsers.add_parser(
        "lift",
        help="lift videos of hands handling objects to HOI trajectories (MediaPipe by default)",
        description=(
            "Lift videos to 3D hand-object trajectories (.hoi.npz, camera frame). Runs in the lifting "
            "environment (make lift-env); unreadable or hand-less videos are reported and skipped."
        ),
    )
    add_lift_options(p)
    p.add_argument("--results", help="append one JSON line per video to this file")
    p.add_argument("--quiet", action="store_true", help="no progress bars and no per-video lines")
    p.add_argument("--json", action="store_true", help="print one JSON summary instead of lines")
    return {"lift": cmd_lift}
