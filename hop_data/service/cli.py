"""``hop-data generate`` (and ``python -m hop_data.service``): the data-generation service.

Registered by ``hop_data.cli`` through ``add_commands``; the options are
``GenerateConfig``'s fields (``hop_data.options``). Nothing heavy is imported
here (Ray, zarr, MuJoCo load when the command runs).
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

HELP = "videos and HOI files -> (lifting) -> retargeting on a pool of Ray actors -> store"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from hop_data.options import add_options, add_output_switches
    from hop_data.service.config import GenerateConfig

    add_options(p, GenerateConfig)
    add_output_switches(p, quiet_help="no progress bar")


def cmd_generate(args: argparse.Namespace) -> int:
    import os

    from hop_data.options import OptionError, from_args
    from hop_data.report import exit_status, print_summary
    from hop_data.service.config import GenerateConfig

    if not args.inputs and not args.manifest:
        print("hop-data generate: error: give inputs or --manifest", file=sys.stderr)
        return 2
    try:
        config = from_args(
            GenerateConfig, args, progress=not (args.json or args.quiet), messages=not args.quiet,
            log_to_driver=not args.json,
        )  # fmt: skip
    except OptionError as exc:
        print(f"hop-data generate: error: {exc}", file=sys.stderr)
        return 2
    if not (config.address or os.environ.get("RAY_ADDRESS")) and "ray" not in sys.modules:
        # the embedded Ray: token authentication on, whatever this Ray version's default
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    from hop_data.service.driver import ServiceError, generate

    try:
        summary = generate(config)
    except ServiceError as exc:
        print(f"hop-data generate: error: {exc}", file=sys.stderr)
        return 2
    print_summary(summary, args.json)
    return exit_status(summary)


def add_commands(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    add_arguments(subparsers.add_parser("generate", help=HELP, description=HELP))
    return {"generate": cmd_generate}


def main(argv: list[str] | None = None) -> int:
    """``python -m hop_data.service``: the same arguments as ``hop-data generate``."""
    parser = argparse.ArgumentParser(prog="python -m hop_data.service", description=HELP)
    add_arguments(parser)
    args = parser.parse_args(argv)
    from hop_data.store import StoreError

    try:
        return cmd_generate(args)
    except (StoreError, FileNotFoundError) as exc:
        print(f"hop-data generate: error: {exc}", file=sys.stderr)
        return 2
