"""Lift a batch of videos in this interpreter (the lifting environment): what
``hop-data lift`` runs where MediaPipe is importable, and what the lifting
worker runs otherwise.

Progress bars over videos and, per video, over frames; one line per video
at the end (or one JSON summary); ``--results FILE`` gets one JSON line per
video (``api.LiftReport``: its segments, the pieces dropped and why, the
provenance fractions). A video that cannot be decoded, shows no hand or has
no piece retargeting would accept is reported and skipped; the batch goes
on. Exit status: 0 when every video was lifted or skipped for a reason of
its own (unreadable, no hand, no segment), 1 when
some failed unexpectedly or none was given, 2 for a backend that is not
installed.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from .api import LiftError, LiftReport, _lift_here, expand_videos
from .contact import lift_flags
from .hands import HandBackendUnavailable
from .options import LiftJob


def lift_batch(job: LiftJob, quiet: bool = False, as_json: bool = False) -> int:
    """Lift ``job`` (its options validated) and print the outcome; returns the exit status."""
    videos = expand_videos(job.videos)
    quiet = quiet or as_json
    reports: list[LiftReport] = []
    t0 = time.perf_counter()
    vbar = tqdm(total=len(videos), desc="lift", unit="video", disable=quiet or len(videos) < 2, position=0)
    fbar = tqdm(total=0, desc="frames", unit="frame", disable=quiet, leave=False, position=1)
    if job.results:
        Path(job.results).parent.mkdir(parents=True, exist_ok=True)
    results = open(job.results, "a") if job.results else None
    status = 0
    try:
        for video in videos:
            fbar.reset(total=None)
            fbar.set_description(video[-40:])
            try:
                report = _lift_here(
                    video, job.out, job.options, progress=fbar.update, on_start=lambda n: fbar.reset(total=n or None)
                )
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
    lifted = sum(r.status == "ok" for r in reports)
    if as_json:
        print(json.dumps({
            "videos": len(videos),
            "lifted": lifted,
            "skipped": [{"video": r.video, "status": r.status, "reason": r.reason} for r in reports if r.status != "ok"],
            "frames": frames,
            "frames_per_s": frames / wall if wall > 0 else 0.0,
            "outputs": [o for r in reports if r.status == "ok" for o in r.outputs],
            "lifted_videos": [
                {"video": r.video, "outputs": r.outputs, "covered_fraction": r.covered_fraction, "provenance": r.provenance,
                 "dropped": r.dropped}
                for r in reports if r.status == "ok"
            ],  # fmt: skip
            # lifted, but a person should know: no hand-object interaction (retargeting refuses it), gravity assumed
            "flagged": [
                {"video": r.video, "interaction": (r.extra.get("interaction") or {}).get("interaction"),
                 "gravity_source": (r.extra.get("gravity") or {}).get("source"), "flags": lift_flags(r.extra)}
                for r in reports if r.status == "ok" and lift_flags(r.extra)
            ],
        }, indent=2))  # fmt: skip
    elif not quiet:
        for r in reports:
            print(r.line())
        rate = frames / wall if wall > 0 else 0
        print(f"lifted {lifted} of {len(videos)} videos, {frames} frames in {wall:.1f} s ({rate:.1f} frames/s)")
    if status == 2:
        print(f"hop-data lift: error: {reports[-1].reason}", file=sys.stderr)
        return 2
    if not videos:
        return 1
    return status
