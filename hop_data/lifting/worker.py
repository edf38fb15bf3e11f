"""The lifting worker: ``python -m hop_data.lifting.worker --out DIR [options] -- VIDEO...``.

Runs inside the lifting environment (numpy < 2, mediapipe, OpenCV); ``hop-data
lift`` in the main environment starts it with this source tree on PYTHONPATH
and hands it the terminal, so its progress bars (over videos and, per video,
over frames) and its one line per video are what the user sees. Only files
cross the boundary: the ``.hoi.npz`` outputs, their ``.lift.json`` sidecars
and, with ``--results FILE``, one JSON line per video (``api.LiftReport``).
Its arguments are ``hop-data lift``'s (``options.add_lift_arguments``); the
batch is ``batch.lift_batch``, which also gives the exit status (2 for a bad
option or a backend that is not installed).
"""

from __future__ import annotations

import argparse
import sys

from hop_data.options import OptionError, from_args

from .options import LiftJob, add_lift_arguments


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hop_data.lifting.worker", description="Lift videos to HOI trajectories (lifting environment).")
    add_lift_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    from .batch import lift_batch

    args = build_parser().parse_args(argv)
    try:
        job = from_args(LiftJob, args)
    except OptionError as e:
        print(f"hop-data lift: error: {e}", file=sys.stderr)
        return 2
    return lift_batch(job, quiet=args.quiet, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
