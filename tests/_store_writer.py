"""A deterministic store writer for the store tests (run as a subprocess to be killed).

    python tests/_store_writer.py STORE WRITER_ID FIRST COUNT [--wrap N] [--sleep S]

commits sources ``video-FIRST`` .. ``video-(FIRST+COUNT-1)`` (COUNT < 0: forever;
numbers taken modulo N with ``--wrap``), printing ``committed <k>`` after each
(already committed sources are skipped by the store). Episode contents depend only on the source
number, so a test can rebuild what any visible episode must contain.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from hop_data.store import Episode, TrajectoryStore
from hop_robot.embodiment.spec import NUM_JOINTS

NUM_POINTS = 8


def source_name(k: int) -> str:
    return f"video-{k:05d}"


def source_episodes(k: int) -> list[Episode]:
    """0, 1, 2 or 3 episodes of 3..40 steps, all derived from ``k``."""
    rng = np.random.default_rng(k)
    episodes = []
    for j in range(k % 4):
        steps = int(rng.integers(3, 41))
        quat = rng.normal(size=4)
        episodes.append(
            Episode(
                proprio=rng.normal(size=(steps, NUM_JOINTS)).astype(np.float32),
                action=rng.normal(size=(steps, NUM_JOINTS)).astype(np.float32),
                object_pc=rng.normal(size=(steps, NUM_POINTS, 3)).astype(np.float32),
                seed=k * 1000 + j,
                table_pose=np.concatenate([rng.normal(size=3), quat / np.linalg.norm(quat)]),
                init_qpos=rng.normal(size=NUM_JOINTS),
                max_error=float(rng.uniform(0.01, 0.03)),
                mean_error=float(rng.uniform(0.0, 0.01)),
                collision=bool(j % 2),
            )
        )
    return episodes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("writer_id")
    parser.add_argument("first", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--wrap", type=int, default=0)
    parser.add_argument("--sleep", type=float, default=0.0)
    args = parser.parse_args(argv)
    store = TrajectoryStore.open(args.store, mode="a", num_points=NUM_POINTS)
    with store.writer(args.writer_id) as writer:
        print("ready", flush=True)
        j = args.first
        while args.count < 0 or j < args.first + args.count:
            k = j % args.wrap if args.wrap else j
            writer.append_episodes(source_name(k), source_episodes(k))
            print(f"committed {k}", flush=True)
            j += 1
            time.sleep(args.sleep)


if __name__ == "__main__":
    sys.exit(main())
