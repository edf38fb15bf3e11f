"""The lifting worker: ``python -m hop_data.lifting.worker --out DIR [options] -- VIDEO...``.

Runs inside the lifting environment (numpy < 2, mediapipe, OpenCV); ``hop-data
lift`` in the main environment starts it with this source tree on PYTHONPATH
and hands it the terminal, so its progress bars (over videos and, per video,
over frames) and its one line per video are what the user sees. Only files
cross the boundary: the ``.hoi.npz`` outputs, their ``.lift.json`` sidecars
and, with ``--results FILE``, one JSON line per video (``api.LiftReport``).

A video that cannot be decoded or shows no hand is reported and skipped; the
batch goes on. Exit status: 0 when every video was lifted or skipped for a
reason of its own (unreadable, no hand), 1 when some failed unexpectedly or
none was given, 2 for a bad option or a backend that is not installed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, fields

from .cli import add_lift_options
from .api import LiftError, LiftOptions, LiftReport, _lift_here, expand_videos
from .hands import HandBackendUnavailable


class _NullBar:
    def __init__(self, *a: object, **k: object):
        self.total = k.get("total")
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, *a: object, **k: object) -> None: ...

    def reset(self, total: int | None = None) -> None:
        self.total, self.n = total, 0

    def close(self) -> None: ...


def _bar(**kwargs: object):
    if kwargs.pop("disable", False):
        return _NullBar(**kwargs)
    try:
        from tqdm import tqdm
    except ImportError:  # the recipe installs tqdm; without it, no bars
        return _NullBar(**kwargs)
    return tqdm(**kwargs)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hop_data.lifting.worker", description="Lift videos to HOI trajectories (lifting environment).")
    add_lift_options(p)
    p.add_argument("--results", help="append one JSON line per video to this file")
    p.add_argument("--quiet", action="store_true", help="no progress bars and no per-video lines")
    p.add_argument("--json", action="store_true", help="print one JSON summary at the end instead of lines")
    return p


def options_from_args(args: argparse.Namespace) -> LiftOptions:
    """LiftOptions from parsed arguments; options not given keep LiftOptions' defaults."""
    names = {f.name for f in fields(LiftOptions)}
    return LiftOptions(**{k: v for k, v in vars(args).items() if k in names and v is not None}).validated()


def run(args: argparse.Namespace) -> int:
    try:
        options = options_from_args(args)
    except ValueError as e:
        print(f"hop-data lift: error: {e}", file=sys.stderr)
        return 2
    videos = expand_videos(args.videos)
    quiet = args.quiet or args.json
    reports: list[LiftReport] = []
    t0 = time.perf_counter()
    vbar = _bar(total=len(videos), desc="lift", unit="video", disable=quiet or len(videos) < 2, position=0)
    fbar = _bar(total=0, desc="frames", unit="frame", disable=quiet, leave=False, position=1)
    results = open(args.results, "a") if args.results else None
    status = 0
    try:
        for video in videos:
            fbar.reset(total=None)
            if hasattr(fbar, "set_description"):
                fbar.set_description(video[-40:])
            try:
                report = _lift_here(video, args.out, options, progress=fbar.update, on_start=lambda n: fbar.reset(total=n or None))
            except LiftError as e:
                report = LiftReport(video=video, status=e.kind, reason=e.reason)
            except HandBackendUnavailable as e:
                report = LiftReport(video=video, status="backend_unavailable", reason=str(e))
                status = 2
            except Exception as e:  # one broken video never ends the batch
                report = LiftReport(video=video, status="error", reason=f"{type(e).__name__}: {e}")
                status = max(status, 1)
            reports.append(report)
            if results is not None:
                results.write(json.dumps(asdict(report)) + "\n")
                results.flush()
            vbar.update(1)
            if status == 2:  # the backend is missing: every further video would fail the same way
                break
    finally:
        fbar.close()
        vbar.close()
        if results is not None:
            results.close()
    wall = time.perf_counter() - t0
    frames = sum(r.frames for r in reports if r.status == "ok")
    if args.json:
        print(json.dumps({
            "videos": len(videos),
            "lifted": sum(r.status == "ok" for r in reports),
            "skipped": [{"video": r.video, "status": r.status, "reason": r.reason} for r in reports if r.status != "ok"],
            "frames": frames,
            "frames_per_s": frames / wall if wall > 0 else 0.0,
            "outputs": [r.output for r in reports if r.status == "ok"],
        }, indent=2))  # fmt: skip
    elif not args.quiet:
        for r in reports:
            print(r.line())
        lifted = sum(r.status == "ok" for r in reports)
        print(f"lifted {lifted} of {len(videos)} videos, {frames} frames in {wall:.1f} s ({frames / wall if wall > 0 else 0:.1f} frames/s)")
    if status == 2:
        print(f"hop-data lift: error: {reports[-1].reason}", file=sys.stderr)
        return 2
    if not videos:
        return 1
    return status


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
