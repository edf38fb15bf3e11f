"""``hop-data import KIND SRC``: data sets -> HOI trajectories, annotations or store episodes.

    hop-data import dexycb      SRC --out DIR [--hands right[,left]]   DexYCB release -> DIR/<subject>/<sequence>.hoi.npz
    hop-data import doh100      SRC --out DIR                          100DOH VOC XML -> DIR/<video>.doh.json (for hop-data lift --annotations DIR)
    hop-data import hop-release SRC --store STORE                      HOP's released robot trajectories -> store episodes
    hop-data import recording   SRC --store STORE                      hop-robot run --record files (or a folder of them) -> store episodes

Registered by ``hop_data.cli`` (``add_commands``); nothing heavy is imported
here. A bad source prints one line naming the file and the problem (exit 2);
items that cannot be imported are listed and skipped (exit 1 if nothing
could be imported, else 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

KINDS = ("dexycb", "doh100", "hop-release", "recording")


def _fail(message: str) -> int:
    print(f"hop-data import: error: {message}", file=sys.stderr)
    return 2


def _print(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    for item in summary.get("skipped", []) + summary.get("failed", []):
        print(f"skipped {item.get('sequence') or item.get('source') or ''}: {item['reason']}")
    print(", ".join(f"{k} {v}" for k, v in summary.items() if not isinstance(v, (list, dict))))


def cmd_import(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.kind in ("dexycb", "doh100") and not args.out:
        return _fail(f"import {args.kind} needs --out DIR")
    if args.kind in ("hop-release", "recording") and not args.store:
        return _fail(f"import {args.kind} needs --store STORE")

    if args.kind == "recording":
        from hop_data.sources.recording import find_recordings, import_recordings
        from hop_data.store import StoreError

        paths = find_recordings([args.src])
        try:
            with tqdm(total=len(paths), desc="recordings", unit="file", disable=args.json or args.quiet) as bar:
                rec = import_recordings(paths, args.store, writer_id=args.writer_id or "recordings", progress=bar.update)
        except StoreError as e:
            return _fail(str(e))
        summary = {
            "episodes": rec.episodes, "steps": rec.steps, "skipped_already_committed": rec.skipped_committed,
            "failed": rec.failed, "store": args.store,
        }  # fmt: skip
        _print(summary, args.json)
        return 0 if rec.episodes or rec.skipped_committed or not rec.failed else 1

    if args.kind == "dexycb":
        from hop_data.sources.dexycb import DexYCBError, find_sequences, import_dexycb
        from pathlib import Path

        hands = tuple(h.strip() for h in args.hands.split(",") if h.strip())
        if not hands or any(h not in ("right", "left") for h in hands):
            return _fail(f"--hands must be right, left or left,right; got {args.hands!r}")
        try:
            total = len(find_sequences(Path(args.src))) if Path(args.src).exists() else 0
            with tqdm(total=total, desc="dexycb", unit="seq", disable=args.json or args.quiet) as bar:
                report = import_dexycb(args.src, args.out, hands=hands, num_points=args.num_points, overwrite=args.overwrite, progress=bar.update)
        except (DexYCBError, FileNotFoundError) as e:
            return _fail(str(e))
        summary = {"written": len(report.written), "kept_existing": len(report.kept), "skipped": report.skipped, "out": args.out}
        _print(summary, args.json)
        return 0 if report.written or report.kept or not report.skipped else 1

    if args.kind == "doh100":
        from hop_data.sources.doh100 import import_doh100

        try:
            written, errors = import_doh100(args.src, args.out)
        except FileNotFoundError as e:
            return _fail(str(e))
        summary = {"videos": len(written), "frames_with_errors": len(errors), "skipped": [{"source": "", "reason": e} for e in errors], "out": args.out}
        _print(summary, args.json)
        return 0 if written or not errors else 1

    from hop_data.sources.hop_release import HopReleaseError, find_episode_dirs, import_hop_release
    from hop_data.store import StoreError

    try:
        total = len(find_episode_dirs(args.src))
        with tqdm(total=total, desc="hop-release", unit="source", disable=args.json or args.quiet) as bar:
            result = import_hop_release(args.src, args.store, writer_id=args.writer_id or "hop-release", joint_order=args.joint_order, progress=bar.update)
    except (HopReleaseError, StoreError, FileNotFoundError) as e:
        return _fail(str(e))
    summary = {
        "sources": result.sources, "episodes": result.episodes, "steps": result.steps,
        "skipped_already_committed": result.skipped_committed, "failed": result.failed or [], "store": args.store,
    }  # fmt: skip
    _print(summary, args.json)
    return 0 if result.sources or result.skipped_committed or not result.failed else 1


def add_commands(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = subparsers.add_parser(
        "import",
        help="import a data set: dexycb / doh100 (-> --out DIR) or hop-release (-> --store STORE)",
        description="Import DexYCB (HOI trajectories), 100 Days of Hands annotations (for lifting) or HOP's released robot trajectories (into a store).",
    )
    p.add_argument("kind", choices=KINDS, help="what SRC holds")
    p.add_argument("src", help="the data set's folder")
    p.add_argument("--out", help="output folder (dexycb, doh100)")
    p.add_argument("--store", help="trajectory store path or URL, created if missing (hop-release, recording)")
    p.add_argument("--hands", default="right", help="dexycb: hands to import, right (default), left or left,right")
    p.add_argument("--num-points", type=int, default=1024, help="dexycb: object surface points per file (default 1024)")
    p.add_argument("--overwrite", action="store_true", help="dexycb: rewrite outputs that exist (default: keep them)")
    p.add_argument("--writer-id", default=None, help="hop-release, recording: the store shard this process writes (default: the kind)")
    p.add_argument("--joint-order", choices=["allegro", "isaacgym"], default="allegro", help="hop-release: column order of the files (default allegro: index, middle, ring, thumb)")
    p.add_argument("--json", action="store_true", help="print one JSON summary")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return {"import": cmd_import}
