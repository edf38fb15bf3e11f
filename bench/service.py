"""The Ray data-generation service: scaling with actors, and its overhead.

Prints one JSON object. On the same synthetic videos (all cut to the same
length, so that work divides evenly), in one run:
- attempt-frames/s of the service with 1 actor and with 2 actors, 1 simulator
  thread each, and their ratio (aim >= 1.7x on 2 cores: attempts are independent);
- the single-process path (load, ``Retargeter.run``, commit per video: ``hop-data retarget``)
  with 1 and with 2 threads, and the service's overhead against it at the same
  total threads (aim <= 10 %);
- the same per CPU second (the actors' process time), and how many cores each
  configuration actually got: this machine's 2 cores are shared with other
  work, so wall-clock scaling is bounded by ``cores_available`` (measured
  before and after with two busy processes).

Service throughput is measured from the moment its actors are up (as the
single-process figure starts after its Retargeter is built); the end-to-end
figure (actor start included) is beside it. Each configuration runs
``--repeats`` times, in ABBA order; a ratio is the median of the ratios of
runs made next to each other, a throughput the median run (the machine is
shared: its slow phases then hit both sides of a comparison). The embedded
Ray is started once, on loopback.

Beside them, one video at the paper's 700 attempts on 1 thread: the per-core
figure docs/scaling.md sizes clusters with.

    .venv/bin/python bench/service.py [--videos 12] [--seconds 2.5] [--attempts 40] [--repeats 3] [--paper-attempts 700]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from hop_data import hoi, synth
from hop_data.retarget.engine import RetargetConfig, Retargeter
from hop_data.service.driver import GenerateConfig, generate, local_cpus, start_local_ray
from hop_data.store import TrajectoryStore


def corpus(out: Path, videos: int, seconds: float) -> list[str]:
    """``videos`` synthetic trajectories, each cut to ``seconds``."""
    out.mkdir(parents=True)
    paths = []
    for index in range(videos):
        traj = synth.make_trajectory(synth.video_rng(0, index), index, 0)
        n = int(round(seconds * traj.fps)) + 1
        if traj.num_frames < n:
            raise RuntimeError(f"synthetic video {index} is shorter than {seconds} s")
        cut = replace(traj, hand_joints=traj.hand_joints[:n], object_pose=traj.object_pose[:n])
        paths.append(str(hoi.save(out / f"{index:04d}.hoi.npz", cut)))
    return paths


def _spin(seconds: float) -> float:
    t0, c0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        pass
    return time.process_time() - c0


def cores_available(seconds: float = 1.0) -> float:
    """CPU seconds two busy processes get per wall second now: what this shared machine gives us."""
    with ProcessPoolExecutor(2) as pool:
        return sum(pool.map(_spin, [seconds, seconds])) / seconds


def single_process(paths: list[str], attempts: int, threads: int, store: Path) -> dict:
    """What `hop-data retarget` does per video: load, prepare, retarget, commit to its shard.
    The clock starts once the Retargeter is built (first calls, compiled kernels loading,
    are inside it, as they are inside a service actor's first video)."""
    shutil.rmtree(store, ignore_errors=True)
    retargeter = Retargeter(RetargetConfig(attempts=attempts), threads=threads)
    with TrajectoryStore.open(store, "a").writer("retarget") as writer:
        t0, c0 = time.perf_counter(), time.process_time()
        frames = 0
        for path in paths:
            traj = hoi.prepare(hoi.load(path))
            result = retargeter.run(traj, seed=0)
            writer.append_episodes(traj.source, result.episodes)
            frames += result.attempt_frames
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "attempt_frames_per_s": frames / wall,
        "seconds": wall,
        "attempt_frames": frames,
        "attempt_frames_per_cpu_s": frames / cpu,
        "cores_used": cpu / wall,
    }


def service(paths: list[str], attempts: int, actors: int, store: Path) -> dict:
    shutil.rmtree(store, ignore_errors=True)
    t0 = time.perf_counter()
    config = GenerateConfig(paths, str(store), RetargetConfig(attempts=attempts), actors=actors, threads=1, progress=False)
    s = generate(config)
    end_to_end = time.perf_counter() - t0
    frames = s["attempt_frames_per_s"] * s["seconds"]
    assert not s["failed"] and s["videos"] == len(paths), s["failed"]
    return {
        "attempt_frames_per_s": s["attempt_frames_per_s"],
        "seconds": s["seconds"],
        "attempt_frames_per_s_end_to_end": frames / end_to_end,
        "seconds_end_to_end": end_to_end,
        "seconds_actor_startup": s["seconds_startup"],
        "attempt_frames": round(frames),
        "attempt_frames_per_cpu_s": frames / s["seconds_cpu"],
        "cores_used": s["seconds_cpu"] / s["seconds"],
        "acceptance": s["acceptance"],
    }


def median_run(runs: list[dict]) -> dict:
    """The run of median throughput, with every run's figure beside it."""
    ordered = sorted(runs, key=lambda r: r["attempt_frames_per_s"])
    return ordered[(len(ordered) - 1) // 2] | {"runs_attempt_frames_per_s": [r["attempt_frames_per_s"] for r in runs]}


def ratio(runs: dict[str, list[dict]], a: str, b: str, key: str = "attempt_frames_per_s") -> float:
    """Median over repeats of a/b, each from the same repeat (runs next to each other)."""
    return float(np.median([x[key] / y[key] for x, y in zip(runs[a], runs[b])]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=2.5, help="length of each video")
    parser.add_argument("--attempts", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--paper-attempts", type=int, default=RetargetConfig.attempts, help="one video at the paper's batch size, 1 thread (0: skip)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hop-bench-service-"))
    try:
        paths = corpus(work / "hoi", args.videos, args.seconds)
        load_before = os.getloadavg()
        cores_before = cores_available()
        t_ray = time.perf_counter()
        start_local_ray(num_cpus=2)
        ray_start = time.perf_counter() - t_ray
        configs = {
            "single_1": lambda: single_process(paths, args.attempts, 1, work / "store0.zarr"),
            "service_1": lambda: service(paths, args.attempts, 1, work / "store1.zarr"),
            "service_2": lambda: service(paths, args.attempts, 2, work / "store2.zarr"),
            "single_2": lambda: single_process(paths, args.attempts, 2, work / "store0.zarr"),
        }
        runs: dict[str, list[dict]] = {k: [] for k in configs}
        # Compared configurations run next to each other, in ABBA order over repeats, and the
        # ratios are medians of per-repeat ratios: the shared machine's slow phases hit both sides.
        for rep in range(args.repeats):
            for name in configs if rep % 2 == 0 else reversed(configs):
                runs[name].append(configs[name]())
        import ray

        ray.shutdown()
        r = {k: median_run(v) for k, v in runs.items()}
        # the per-core figure at the paper's 700 attempts a video (a bigger batch than above)
        paper = single_process(paths[:1], args.paper_attempts, 1, work / "store0.zarr") if args.paper_attempts else None
        if paper:  # peak memory of this process: one simulator at the paper's batch (and the bench itself)
            paper["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out = {
            "benchmark": "service",
            "videos": args.videos,
            "video_seconds": args.seconds,
            "steps_per_video": round(args.seconds * 20) + 1 + 20,  # 20 Hz rows + 1 s lead-in
            "attempts_per_video": args.attempts,
            "repeats": args.repeats,
            "service_1_actor": r["service_1"],
            "service_2_actors": r["service_2"],
            "scaling_2_actors_vs_1": ratio(runs, "service_2", "service_1"),
            "single_process_1_thread": r["single_1"],
            "single_process_2_threads": r["single_2"],
            "overhead_1_thread": 1 - ratio(runs, "service_1", "single_1"),
            "overhead_2_threads": 1 - ratio(runs, "service_2", "single_2"),
            # the same comparisons per CPU second: what the service costs, whatever else runs on the machine
            "scaling_2_actors_vs_1_per_cpu_s": ratio(runs, "service_2", "service_1", "attempt_frames_per_cpu_s"),
            "overhead_1_thread_per_cpu_s": 1 - ratio(runs, "service_1", "single_1", "attempt_frames_per_cpu_s"),
            "single_process_1_thread_paper_attempts": paper and {"attempts_per_video": args.paper_attempts, **paper},
            "embedded_ray_start_s": ray_start,
            "cpus": local_cpus(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "cores_available_before": cores_before,
            "cores_available_after": cores_available(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        }
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
