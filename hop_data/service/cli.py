"""``hop-data generate`` (and ``python -m hop_data.service``): the data-generation service.

Registered by ``hop_data.cli`` through ``add_commands``; nothing heavy is
imported here (Ray, zarr, MuJoCo load when the command runs).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

HELP = "videos and HOI files -> (lifting) -> retargeting on a pool of Ray actors -> store"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from hop_data.cli import add_attempt_options  # light: argparse and the spec only

    p.add_argument("inputs", nargs="*", help="*.hoi.npz files, videos, directories or glob patterns")
    p.add_argument("--manifest", help="text file with one input per line (relative to the file; '#' comments)")
    p.add_argument("--store", required=True, help="store path or fsspec URL (a shared path or object storage on a cluster)")
    add_attempt_options(p)
    p.add_argument("--actors", type=int, default=0, help="simulator actors (0: as many as the cluster's CPUs hold)")
    p.add_argument("--threads", type=int, default=1, help="simulator threads per actor (its num_cpus)")
    p.add_argument("--gpus-per-actor", type=float, default=0.0, help="GPU fraction per actor (a GPU backend)")
    p.add_argument("--max-in-flight", type=int, default=0, help="videos handed out at once (0: one per actor)")
    p.add_argument("--max-failures", type=int, default=3, help="give a video up after this many worker failures")
    p.add_argument("--writer-prefix", default="svc", help="actor shards are named <prefix>-<actor id>")
    p.add_argument("--storage-options", type=json.loads, help="fsspec options of the store, as JSON")
    p.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS; unset: an embedded local Ray)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the embedded Ray (default: this machine's cores)")
    p.add_argument(
        "--lift-python",
        help="python of the lifting environment (default: $HOP_LIFT_PYTHON, else .venv-lift beside the sources: make lift-env)",
    )
    p.add_argument("--lift-runtime-env", help="Ray runtime env of the lifting tasks: a YAML/JSON file or a JSON string")
    p.add_argument("--lift-dir", help="directory for lifted .hoi.npz (default: <store>-lifted for a local store)")
    p.add_argument("--lift-cpus", type=float, default=1.0, help="CPUs of one lifting task")
    p.add_argument("--json", action="store_true", help="print one JSON summary")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _runtime_env(text: str | None) -> dict | None:
    """A runtime env from a YAML/JSON file or a JSON string."""
    if not text:
        return None
    from pathlib import Path

    if Path(text).is_file():
        import yaml

        return yaml.safe_load(Path(text).read_text())
    return json.loads(text)


def cmd_generate(args: argparse.Namespace) -> int:
    import os

    if not args.inputs and not args.manifest:
        print("hop-data generate: error: give inputs or --manifest", file=sys.stderr)
        return 2
    if not (args.address or os.environ.get("RAY_ADDRESS")) and "ray" not in sys.modules:
        # the embedded Ray: token authentication on, whatever this Ray version's default
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    from hop_data.cli import _print_json_or_table
    from hop_data.service.driver import GenerateConfig, ServiceError, generate

    config = GenerateConfig(
        inputs=args.inputs, store=args.store, manifest=args.manifest, attempts=args.attempts, solver=args.solver,
        seed=args.seed, actors=args.actors, threads=args.threads, gpus_per_actor=args.gpus_per_actor,
        max_in_flight=args.max_in_flight, max_failures=args.max_failures, writer_prefix=args.writer_prefix,
        storage_options=args.storage_options, address=args.address, num_cpus=args.num_cpus,
        lift_python=args.lift_python, lift_runtime_env=_runtime_env(args.lift_runtime_env), lift_dir=args.lift_dir,
        lift_cpus=args.lift_cpus, progress=not (args.json or args.quiet), messages=not args.quiet,
        log_to_driver=not args.json,
    )  # fmt: skip
    try:
        summary = generate(config)
    except ServiceError as exc:
        print(f"hop-data generate: error: {exc}", file=sys.stderr)
        return 2
    _print_json_or_table(summary, args.json)
    return 0 if summary["videos"] or summary["skipped_already_committed"] or not summary["failed"] else 1


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
