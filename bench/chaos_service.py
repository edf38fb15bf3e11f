"""Chaos soak of the Ray data-generation service: exactly once under SIGKILLs.

Prints one JSON object. In one run, on the same synthetic videos and one
embedded Ray (loopback):

1. a fault-free run of the service: the episodes every video must give
   (seeded: a retried video gives the very same episodes) and the baseline
   throughput;
2. the chaos run, into a new store: every ``--kill-every`` seconds a random
   simulator actor process is SIGKILLed (as the OOM killer would), and once an
   actor is SIGKILLed in the middle of a commit (its episodes' arrays written,
   its commit record not: the one moment a writer can leave rows behind).

Then it reports episodes expected / written / duplicated / lost (exact: a
source's episodes are compared with the fault-free run's, by seed and
content), the throughput of the chaos run relative to the fault-free one, and
the driver's memory (this process's RSS) over the chaos run; aim: 0 lost,
0 duplicated, growth < 10 %. Exit status 1 when a video was lost, duplicated
or changed.

    .venv/bin/python bench/chaos_service.py [--quick] [--videos 300] [--attempts 8] [--kill-every 8]

``--quick`` (8 videos, a kill every 3 s) takes well under a minute; the
default, a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import ray

from hop_data.retarget.config import RetargetConfig
from hop_data.service import processes
from hop_data.service.actors import SimulatorActor
from hop_data.service.run import json_stdout
from hop_data.service.driver import GenerateConfig, generate, start_local_ray
from hop_data.store import STEP_FIELDS, TrajectoryStore
from service import corpus  # bench/service.py: the same synthetic videos

# ChaosActor travels to Ray's workers by value (bench/ is not importable there).
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

KILL_IN_COMMIT = "kill-in-commit"  # a token file: the actor that takes it dies in its next commit


class ChaosActor(SimulatorActor):
    """The simulator actor, able to die in the middle of a commit.

    ``TOKEN`` names a file; the first actor process to rename it away at a
    commit is SIGKILLed just before the commit record is written (after the
    episodes' arrays and the report were), so its shard holds rows past the
    commit that the restarted actor must cut back. ``chaos_actor`` makes the
    class with its token (the driver builds actors with the service's arguments)."""

    TOKEN = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.TOKEN:
            _die_in_a_commit(self.TOKEN)


def chaos_actor(token: Path) -> type:
    return type("ChaosActor", (ChaosActor,), {"TOKEN": str(token)})


def _die_in_a_commit(token: str) -> None:
    """In this (actor) process: the commit record of a shard (the one
    ``update_attributes`` that writes ``committed_sources``) kills the process
    instead, once, for whichever process claims ``token`` first."""
    import zarr

    commit = zarr.Group.update_attributes

    def commit_or_die(group, new_attributes):
        if "committed_sources" in new_attributes and _claim(token):
            os.kill(os.getpid(), signal.SIGKILL)
        return commit(group, new_attributes)

    zarr.Group.update_attributes = commit_or_die


def _claim(token: str) -> bool:
    try:
        os.rename(token, f"{token}.taken")  # atomic: one process wins
        return True
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------------- the chaos


def rss_mib() -> float:
    """This process's resident memory now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Chaos(threading.Thread):
    """During a run: arms the kill-in-commit token, SIGKILLs a random actor process
    every ``every`` seconds, and samples this process's memory."""

    def __init__(self, token: Path, every: float, seed: int):
        super().__init__(daemon=True)
        self.token, self.every = token, every
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.killed: list[int] = []
        self.rss: list[float] = [rss_mib()]
        token.touch()

    def run(self) -> None:
        next_kill = time.monotonic() + self.every
        while not self.stop.wait(0.5):
            self.rss.append(rss_mib())
            if time.monotonic() >= next_kill:
                next_kill += self.every
                self._kill_one()

    def _kill_one(self) -> None:
        below = processes.descendants(os.getpid())
        actors = [p for p in below if processes.command_line(p).startswith("ray::ChaosActor")]
        if actors:
            victim = self.rng.choice(actors)
            os.kill(victim, signal.SIGKILL)
            self.killed.append(victim)

    @property
    def writer_killed(self) -> bool:
        return Path(f"{self.token}.taken").exists()


def run(paths: list[str], store: Path, args: argparse.Namespace, **kwargs) -> tuple[dict, float]:
    """One service run; its summary and its end-to-end seconds."""
    config = GenerateConfig(
        paths, str(store), RetargetConfig(attempts=args.attempts), seed=0, actors=args.actors,
        max_failures=args.max_failures, progress=False, messages=False,
    )  # fmt: skip
    t0 = time.perf_counter()
    summary = generate(config, **kwargs)
    return summary, time.perf_counter() - t0


# ---------------------------------------------------------------------- the count


def episodes_by_source(store: Path) -> dict[str, list[tuple[int, str]]]:
    """source -> its visible episodes as (seed, digest of proprio, action, object_pc), sorted."""
    reader = TrajectoryStore.open(store).reader(cache_bytes=0)
    out: dict[str, list[tuple[int, str]]] = {s: [] for s in reader.sources}
    for i in range(reader.num_episodes):
        ep = reader.episode(i)
        digest = hashlib.blake2b(b"".join(np.ascontiguousarray(ep[k]).tobytes() for k in STEP_FIELDS))
        out[str(ep["source"])].append((int(ep["seed"]), digest.hexdigest()))
    return {s: sorted(eps) for s, eps in out.items()}


def count(expected: dict[str, list], store: Path) -> dict:
    """Episodes expected / written / duplicated / lost / differing, against the fault-free run."""
    got = episodes_by_source(store)
    lost = duplicated = differing = 0
    for source in set(expected) | set(got):
        want, have = expected.get(source, []), got.get(source, [])
        lost += max(0, len(want) - len(have))
        duplicated += max(0, len(have) - len(want))
        missing = sum((Counter(want) - Counter(have)).values())  # expected episodes not there as they were
        differing += missing - max(0, len(want) - len(have))
    return {
        "episodes_expected": sum(len(e) for e in expected.values()),
        "episodes_written": sum(len(e) for e in got.values()),
        # a source committed by two shards is shown once by readers: its second commit counts here too
        "episodes_duplicated": duplicated + TrajectoryStore.open(store).info()["duplicate_episodes_ignored"],
        "episodes_lost": lost,
        "episodes_differing": differing,
        "sources_lost": sorted(set(expected) - set(got)),
    }


# ---------------------------------------------------------------------- main


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 videos, 4 attempts, a kill every 3 s (< 1 min)")
    parser.add_argument("--videos", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=2.5, help="length of each video")
    parser.add_argument("--attempts", type=int, default=8)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--kill-every", type=float, default=8.0, help="seconds between random actor kills")
    parser.add_argument("--max-failures", type=int, default=20, help="a video survives this many kills of its actor")
    parser.add_argument("--seed", type=int, default=0, help="which actor each kill picks")
    args = parser.parse_args(argv)
    if args.quick:
        args.videos, args.attempts, args.kill_every = 8, 4, 3.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    stdout = json_stdout(True)  # the JSON alone on stdout: Ray's forwarded lines go to stderr
    work = Path(tempfile.mkdtemp(prefix="hop-bench-chaos-"))
    try:
        paths = corpus(work / "hoi", args.videos, args.seconds)
        load_before = os.getloadavg()
        start_local_ray(num_cpus=args.actors)
        clean, clean_s = run(paths, work / "clean.zarr", args)
        expected = episodes_by_source(work / "clean.zarr")
        chaos = Chaos(work / KILL_IN_COMMIT, args.kill_every, args.seed)
        chaos.start()
        try:
            summary, chaos_s = run(paths, work / "chaos.zarr", args, actor_cls=chaos_actor(chaos.token))
        finally:
            chaos.stop.set()
            chaos.join()
        rss_end = rss_mib()
        ray.shutdown()
        counts = count(expected, work / "chaos.zarr")
        out = {
            "benchmark": "chaos_service",
            "quick": args.quick,
            "videos": args.videos,
            "video_seconds": args.seconds,
            "attempts_per_video": args.attempts,
            "actors": args.actors,
            "kill_every_s": args.kill_every,
            **counts,
            "exactly_once": not any(counts[k] for k in ("episodes_lost", "episodes_duplicated", "episodes_differing")),
            "videos_failed": summary["failed"],
            "kills": {"random_actors": len(chaos.killed), "writer_in_commit": int(chaos.writer_killed)},
            "actor_restarts": summary["actor_restarts"],
            "actors_replaced": summary["actors_replaced"],
            "retries": summary["retries"],
            "committed_without_report": len(summary["committed_without_report"]),
            "fault_free": {"seconds": clean_s, "videos_per_s": args.videos / clean_s},
            "chaos": {"seconds": chaos_s, "videos_per_s": args.videos / chaos_s},
            "throughput_vs_fault_free": clean_s / chaos_s,
            "driver_rss_mib": {"start": chaos.rss[0], "end": rss_end, "max": max(chaos.rss + [rss_end])},
            "driver_memory_growth": rss_end / chaos.rss[0] - 1,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        }
        print(json.dumps(out, indent=2), file=stdout, flush=True)
        return 0 if out["exactly_once"] and not summary["failed"] else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
