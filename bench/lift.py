"""Benchmark of video lifting (MediaPipe on CPU, in the lifting environment).

Videos are made from a real photo (../shared/data, the bartender pouring from
a bottle) with a known answer (hop_data.lifting.testclips): crops sliding
across the photo by a known number of pixels per frame (the real hand moves
by a known amount; at the lifted depth Z and focal f that is px * Z / f
metres) and a zoom (depth must fall as 1 / magnification). All are lifted in
one ``hop-data lift`` run (the worker in .venv-lift), as a user would.

Prints ONE JSON object: lifting frames per second on CPU (per-video time:
decode + detection + fit + smoothing + object, and wall time including the
worker's start-up), fraction of frames with a hand, the sliding-crop motion
error against the known motion, the zoom's depth law, and the lifted hand
sizes (wrist -> middle knuckle, human: 7-11 cm).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hop_data import hoi  # noqa: E402
from hop_data.lifting import api, testclips  # noqa: E402

FOCAL = 800.0
# name -> (pixels per frame the crop moves, frames, size, crop origin at frame 0);
# the pouring hand (photo x 453-548, y 420-540) stays inside every crop
SLIDES = {
    "slide_x": ((3.0, 0.0), 90, (640, 480), (0, 200)),
    "slide_diag": ((2.5, 1.5), 90, (640, 480), (150, 200)),
    "slide_hd": ((4.0, 0.0), 60, (1280, 720), (-240, 0)),
}


def main() -> dict:
    if not (testclips.SHARED_DATA / testclips.DRINK).is_file():
        return {"skipped": f"shared photos not found at {testclips.SHARED_DATA}"}
    try:
        api.lift_python()
    except FileNotFoundError as e:
        return {"skipped": str(e)}
    with tempfile.TemporaryDirectory(prefix="hop-bench-lift-") as tmp:
        d = Path(tmp)
        clips = {}
        for name, (step, frames, size, start) in SLIDES.items():
            clips[name] = testclips.sliding_clip(d / f"{name}.mp4", frames=frames, size=size, start=start, step_px=step, focal=FOCAL)
        clips["zoom"] = testclips.zoom_clip(d / "zoom.mp4", frames=60, zoom_end=1.4, focal=FOCAL)
        results = d / "results.jsonl"
        out = d / "out"
        t0 = time.perf_counter()
        runs = []
        for name, clip in clips.items():  # one run per intrinsics (clips of one size share one)
            runs.append((name, clip))
        by_intr: dict[str, list[str]] = {}
        for name, clip in runs:
            by_intr.setdefault(clip.intrinsics, []).append(str(clip.path))
        for intr, paths in by_intr.items():
            proc = subprocess.run(
                [sys.executable, "-m", "hop_data.cli", "lift", *paths, "--out", str(out), "--intrinsics", intr, "--results", str(results), "--quiet"],
                capture_output=True, text=True,
            )  # fmt: skip
            if proc.returncode != 0:
                return {"error": proc.stderr[-2000:]}
        wall = time.perf_counter() - t0
        reports = {Path(r["video"]).stem: r for r in map(json.loads, results.read_text().splitlines())}

        frames = sum(r["frames"] for r in reports.values())
        seconds = sum(r["seconds"] for r in reports.values())
        sliding = {}
        for name, (step, n, size, _) in SLIDES.items():
            traj = hoi.load(out / f"{name}.hoi.npz")
            c = traj.hand_joints.astype(np.float64).mean(axis=1)
            ok = np.isfinite(c).all(axis=1)
            t = np.arange(len(c))[ok]
            depth = float(np.median(c[ok, 2]))
            expected = -np.array(step) * depth / FOCAL  # m per frame
            got = np.array([np.polyfit(t, c[ok, k], 1)[0] for k in (0, 1)])
            span = n - 1
            sliding[name] = {
                "px_per_frame": list(step),
                "frames": n,
                "depth_m": round(depth, 4),
                "expected_displacement_m": [round(v, 4) for v in expected * span],
                "recovered_displacement_m": [round(v, 4) for v in got * span],
                "displacement_error_m": round(float(np.linalg.norm((got - expected) * span)), 4),
                "relative_error": round(float(np.linalg.norm(got - expected) / np.linalg.norm(expected)), 4),
                "depth_std_m": round(float(np.std(c[ok, 2])), 4),
            }
        z = hoi.load(out / "zoom.hoi.npz").hand_joints.astype(np.float64).mean(axis=1)[:, 2]
        s = clips["zoom"].zoom
        ok = np.isfinite(z)  # frames dropped as outliers are NaN (unseen)
        z, s = z[ok], s[ok]
        zoom = {
            "magnification_end": float(s[-1]),
            "log_depth_vs_log_zoom_slope": round(float(np.polyfit(np.log(s), np.log(z), 1)[0]), 3),
            "expected_slope": -1.0,
            "depth_ratio_end": round(float(np.mean(z[-5:]) / np.mean(z[:5])), 3),
            "expected_depth_ratio_end": round(float(np.mean(1 / s[-5:]) / np.mean(1 / s[:5])), 3),
        }
        sizes = {k: round(float(r["hand_size_m"]), 4) for k, r in reports.items()}
        return {
            "benchmark": "lift",
            "device": f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} threads visible)",
            "backend": "mediapipe==0.10.21 (model_complexity 1, tracking mode)",
            "videos": len(reports),
            "frames": frames,
            "lift_frames_per_s": round(frames / seconds, 2),
            "wall_frames_per_s_including_startup": round(frames / wall, 2),
            "detected_fraction": {k: round(r["detected_fraction"], 3) for k, r in reports.items()},
            "mean_detected_fraction": round(float(np.mean([r["detected_fraction"] for r in reports.values()])), 3),
            "sliding_crop": sliding,
            "mean_sliding_relative_error": round(float(np.mean([v["relative_error"] for v in sliding.values()])), 4),
            "zoom": zoom,
            "hand_size_m": sizes,
            "hand_sizes_human_like_7_11cm": all(0.07 <= v <= 0.11 for v in sizes.values()),
            "median_reprojection_px": {k: round(r["median_reprojection_px"], 2) for k, r in reports.items()},
        }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
