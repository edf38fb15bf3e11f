"""``hop-data lift``: videos -> HOI trajectories (format 1), one command.

Registered by ``hop_data.cli`` (plugin: ``add_commands``); its arguments are
``options.LiftJob``'s. Nothing heavy is imported at module level. Where this
interpreter cannot lift (the main environment has numpy >= 2; MediaPipe needs
numpy < 2) the work runs in the lifting environment's interpreter
(``.venv-lift``, or ``$HOP_LIFT_PYTHON``) as ``python -m
hop_data.lifting.worker``, which gets the terminal (progress bars, one line
per video); only files cross between the two environments.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable


def cmd_lift(args: argparse.Namespace) -> int:
    from hop_data.options import from_args

    from . import api
    from .options import LiftJob

    job = from_args(LiftJob, args)  # OptionError: hop-data's usage error (status 2)
    if api.lifting_available():
        from .batch import lift_batch

        return lift_batch(job, quiet=args.quiet, as_json=args.json)
    import subprocess

    try:
        cmd = api.worker_command(job.videos, job.out, job.options, results=job.results, quiet=args.quiet)
    except FileNotFoundError as e:
        print(f"hop-data lift: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        cmd.insert(cmd.index("--"), "--json")
    return subprocess.call(cmd, env=api.worker_env())


def add_commands(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    from .options import add_lift_arguments

    p = subparsers.add_parser(
        "lift",
        help="lift videos of hands handling objects to HOI trajectories (MediaPipe by default)",
        description=(
            "Lift videos to 3D hand-object trajectories (.hoi.npz, camera frame). Runs in the lifting "
            "environment (make lift-env); unreadable or hand-less videos are reported and skipped."
        ),
    )
    add_lift_arguments(p)
    return {"lift": cmd_lift}
