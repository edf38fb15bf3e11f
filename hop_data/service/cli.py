"""``hop-data generate`` (and ``python -m hop_data.service``): the data-generation service.

Registered by ``hop_data.cli`` through ``add_commands``; the options are
``GenerateConfig``'s fields (``hop_data.options``). Nothing heavy is imported
here (Ray, zarr, MuJoCo load when the command runs).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

HELP = "videos and HOI files -> (lifting) -> retargeting on a pool of Ray actors -> store"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from hop_data.options import add_options, add_output_switches
    from hop_data.service.config import GenerateConfig

    add_options(p, GenerateConfig)
    add_output_switches(p, quiet_help="no progress bar")


def cmd_generate(args: argparse.Namespace) -> int:
    from hop_data.options import OptionError, from_args
    from hop_data.service.config import GenerateConfig

    if not args.inputs and not args.manifest:
        print("hop-data generate: error: give inputs or --manifest", file=sys.stderr)
        return 2
    try:
        config = from_args(GenerateConfig, args, progress=not (args.json or args.quiet), messages=not args.quiet)
    except OptionError as exc:
        print(f"hop-data generate: error: {exc}", file=sys.stderr)
        return 2
    embedded = not (config.address or os.environ.get("RAY_ADDRESS"))
    if embedded and "ray" not in sys.modules:
        # the embedded Ray: token authentication on, whatever this Ray version's default
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    from hop_data.service import supervisor
    from hop_data.service.run import run_driver

    if embedded and supervisor.supported():  # the embedded Ray's faults are handled from outside it
        return supervisor.supervise(config, args.json)
    return run_driver(config, args.json)


def add_commands(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    add_arguments(subparsers.add_parser("generate", help=HELP, description=HELP))
    return {"generate": cmd_generate}


def main(argv: list[str] | None = None) -> int:
    """``python -m hop_data.service``: the same arguments as ``hop-data generate``."""
    parser = argparse.ArgumentParser(prog="python -m hop_data.service", description=HELP)
    add_arguments(parser)
    return cmd_generate(parser.parse_args(argv))
