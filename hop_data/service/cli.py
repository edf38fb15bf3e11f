"""``hop-data generate`` (and ``python -m hop_data.service``): the data-generation service.

Registered by ``hop_data.cli`` through ``add_commands``; the options are
``GenerateConfig``'s fields (``hop_data.options``). Nothing heavy is imported
here (Ray, zarr, MuJoCo load when the command runs).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import TYPE_CHECKING, Callable, TextIO

if TYPE_CHECKING:
    from hop_data.service.config import GenerateConfig

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

    if embedded and supervisor.supported():  # the embedded Ray's faults are handled from outside it
        return supervisor.supervise(config, args.json)
    return run_driver(config, args.json)


def run_driver(config: GenerateConfig, as_json: bool, on_ray_up: Callable[[], object] | None = None) -> int:
    """Run the service in this process: the summary on stdout, errors as one
    line on stderr, an exit status (``hop_data.service.errors``). ``on_ray_up``
    is called once Ray runs (the supervisor's cue)."""
    from hop_data.report import exit_status, print_summary
    from hop_data.service.driver import ServiceError, generate
    from hop_data.service.errors import EXIT_INTERRUPTED, lost_message
    from hop_data.store import StoreError

    out = json_stdout(as_json)
    try:
        summary = generate(config, on_ray_up=on_ray_up)
    except ServiceError as exc:  # RayLostError included: what died and how to resume
        print(f"hop-data generate: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except (StoreError, FileNotFoundError) as exc:
        print(f"hop-data generate: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hop-data generate: {lost_message('interrupted', config.store)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    with contextlib.redirect_stdout(out):
        print_summary(summary, as_json)
    out.flush()
    return exit_status(summary)


def json_stdout(as_json: bool) -> TextIO:
    """Where the summary goes. With ``--json``, stdout holds the summary alone:
    file descriptor 1 then points to stderr for the rest of this process (Ray's
    forwarded worker lines, C++ logs, a stray print, of this process and every
    process it starts, during the run and after it, when Ray's threads still
    print), and the summary goes to a copy of the original stdout."""
    if not as_json:
        return sys.stdout
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return out


def add_commands(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    add_arguments(subparsers.add_parser("generate", help=HELP, description=HELP))
    return {"generate": cmd_generate}


def main(argv: list[str] | None = None) -> int:
    """``python -m hop_data.service``: the same arguments as ``hop-data generate``."""
    parser = argparse.ArgumentParser(prog="python -m hop_data.service", description=HELP)
    add_arguments(parser)
    return cmd_generate(parser.parse_args(argv))
