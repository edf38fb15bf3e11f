"""Retargeting throughput and quality: the batched solver against the NLopt reference.

Prints one JSON object. On the same synthetic video and the same attempts, in
one run:
- attempt-frames per second of the NLopt L-BFGS reference (one attempt after
  another, as the paper) and of the batched solver, and their ratio
  (aim >= 30x at equal or lower error);
- median / p95 keypoint error of each on the same attempts;
- the share of frames where the batched cost <= reference cost + 1e-6, both
  solving exactly the same problems (the batched run's recorded inputs);
- the share of wall time in physics vs solving (aim: solving <= physics);
- a 100-frame video at 700 attempts, end to end (aim < 60 s on 2 cores).

    .venv/bin/python bench/retarget.py [--attempts 700] [--reference-attempts 8]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace

import numpy as np

from hop_data import hoi, synth
from hop_data.retarget.attempts import attempt_seeds
from hop_data.retarget.engine import RetargetConfig, Retargeter
from hop_data.retarget.nlopt_solver import NloptSolver
from hop_robot.sim.mujoco_batch import default_threads


class Recorder:
    """Wraps a solver and keeps every problem it was given and the cost it reached."""

    def __init__(self, solver):
        self.solver, self.problems = solver, []

    def solve(self, targets, prev, init=None):
        a, cost = self.solver.solve(targets, prev, init)
        self.problems.append((targets.copy(), prev.copy(), None if init is None else init.copy(), cost.copy()))
        return a, cost


def video_of(frames: int, seed: int = 0) -> hoi.HOITrajectory:
    """A prepared synthetic video cut to exactly ``frames`` 20 Hz frames."""
    for index in range(50):
        traj = hoi.prepare(synth.make_trajectory(synth.video_rng(seed, index), index, seed))
        if traj.num_frames >= frames:
            return replace(traj, hand_joints=traj.hand_joints[:frames], object_pose=traj.object_pose[:frames])
    raise RuntimeError(f"no synthetic video of {frames} frames")


def stats(result) -> dict:
    err = result.frame_errors[result.simulated]  # placements refused before simulating have no frames
    return {
        "attempts": result.attempts,
        "simulated": int(result.simulated.sum()),
        "placement_redraws": result.placement_redraws,
        "attempt_frames": result.attempt_frames,
        "seconds": result.seconds_total,
        "attempt_frames_per_s": result.attempt_frames / result.seconds_total,
        "median_error_m": float(np.median(err)),
        "p95_error_m": float(np.percentile(err, 95)),
        "acceptance": float(result.accepted.mean()),
        "physics_share": result.seconds_physics / result.seconds_total,
        "solving_share": result.seconds_solving / result.seconds_total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attempts", type=int, default=RetargetConfig.attempts, help="default: the paper's")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--reference-attempts", type=int, default=8, help="NLopt is slow: measured on the first K attempts")
    args = parser.parse_args()
    threads = default_threads()
    video = video_of(args.frames)
    seeds = attempt_seeds(0, video.source, args.attempts)
    few = seeds[: args.reference_attempts]

    batched = Retargeter(RetargetConfig(solver="batched"), threads=threads)
    batched.run(video, seeds=seeds[:2])  # warm up (Numba cache, model compile)
    full = batched.run(video, seeds=seeds)

    recorder = Recorder(batched.solver)
    batched.solver = recorder
    batched_few = batched.run(video, seeds=few)
    batched.solver = recorder.solver

    reference = Retargeter(RetargetConfig(solver="nlopt"), threads=threads)
    reference_few = reference.run(video, seeds=few)

    # cost parity on exactly the same problems: the batched run's inputs, solved by NLopt
    nlopt = NloptSolver(batched.solver.objective)
    t0 = time.perf_counter()
    wins = []
    for targets, prev, init, cost in recorder.problems:
        _, ref_cost = nlopt.solve(targets, prev, init)
        wins.append(cost <= ref_cost + 1e-6)
    parity_seconds = time.perf_counter() - t0
    wins = np.concatenate(wins)

    result = {
        "bench": "retarget",
        "machine": {"cpus": threads, "python": platform.python_version()},
        "video": {"source": video.source, "frames": video.num_frames, "steps_with_lead_in": full.steps},
        "batched_full": stats(full),
        "same_attempts": {
            "attempts": len(few),
            "reference_nlopt": stats(reference_few),
            "batched": stats(batched_few),
        },
        # production path (all attempts batched) against the reference (one attempt after another)
        "speedup_attempt_frames_per_s": stats(full)["attempt_frames_per_s"] / stats(reference_few)["attempt_frames_per_s"],
        "cost_parity": {
            "frames": int(wins.size),
            "share_batched_le_reference_plus_1e-6": float(wins.mean()),
            "reference_solve_ms_per_frame": 1000 * parity_seconds / wins.size,
            "reference_evaluations_per_frame": nlopt.evaluations / wins.size,
            "reference_failures": nlopt.failures,
        },
        # solving alone: the reference's time per frame on the identical problems vs the batched
        # solver's time per attempt-frame in the 700-attempt run (physics excluded from both)
        "solver_only_speedup": (parity_seconds / wins.size) / (full.seconds_solving / full.attempt_frames),
        "video_700_attempts_seconds": full.seconds_total if args.attempts == 700 else None,
        "aims": {
            "speedup": ">= 30 at equal or lower error",
            "solving_share <= physics_share": True,
            "video_700_attempts_seconds": "< 60",
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
