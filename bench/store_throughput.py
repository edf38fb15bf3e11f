"""Trajectory store throughput: writes and random training windows vs plain NumPy.

    .venv/bin/python bench/store_throughput.py [--episodes 200] [--steps 100] [--per-source 10]

Prints one JSON object: episodes written per second (one commit per source
video of ``--per-source`` episodes, and the worst case of one episode per
commit) beside copying the same episodes into preallocated NumPy arrays;
random 16-step windows read per second (proprio, action and 100-point clouds)
through ``StoreReader.windows`` (batches of 256 with a cold and a warm chunk
cache; one window per call with no cache, the cost when nothing is reused),
beside fancy-indexing in-memory arrays; bytes on disk, compression ratio, and the
candidate Blosc codecs measured on the same data.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numcodecs import Blosc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hop_data.store import COMPRESSOR, DEFAULT_CHUNK_BYTES, Episode, TrajectoryStore  # noqa: E402
from hop_robot.embodiment.spec import CONTROL_HZ, DEFAULT_POSE, NUM_JOINTS  # noqa: E402


def _quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(T, 4) w, x, y, z -> (T, 3, 3)."""
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def synthetic_episode(rng: np.random.Generator, steps: int, num_points: int) -> Episode:
    """Smooth joint motion; a rigid object cloud that rests, then moves (like a lift)."""
    proprio = DEFAULT_POSE + np.cumsum(rng.normal(0, 0.01, (steps, NUM_JOINTS)), axis=0)
    action = proprio + rng.normal(0, 0.005, proprio.shape)
    points = rng.normal(0, 0.04, (num_points, 3))
    rest = steps // 3
    quat = np.cumsum(rng.normal(0, 0.02, (steps, 4)), axis=0) + [1, 0, 0, 0]
    quat[:rest] = quat[rest]
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    pos = np.cumsum(rng.normal(0, 0.002, (steps, 3)), axis=0) + [0.5, 0.0, 0.2]
    pos[:rest] = pos[rest]
    cloud = np.einsum("tij,pj->tpi", _quat_to_matrix(quat), points) + pos[:, None]
    return Episode(
        proprio=proprio.astype(np.float32),
        action=action.astype(np.float32),
        object_pc=cloud.astype(np.float32),
        seed=int(rng.integers(1 << 31)),
        table_pose=np.array([0.65, 0, 0, 1, 0, 0, 0], np.float32),
        init_qpos=proprio[0],
        max_error=float(rng.uniform(0, 0.03)),
        mean_error=float(rng.uniform(0, 0.01)),
        collision=False,
    )


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1)


def bench_codecs(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Ratio and MB/s of candidate Blosc codecs on one ~2 MiB chunk of each array."""
    out = {}
    for cname, clevel in (("lz4", 5), ("zstd", 3)):
        for shuffle_name, shuffle in (("shuffle", Blosc.SHUFFLE), ("bitshuffle", Blosc.BITSHUFFLE)):
            codec = Blosc(cname=cname, clevel=clevel, shuffle=shuffle)
            for name, arr in arrays.items():
                rows = max(1, DEFAULT_CHUNK_BYTES // (arr[0].nbytes))
                raw = np.ascontiguousarray(arr[:rows]).tobytes()
                t0 = time.perf_counter()
                for _ in range(5):
                    enc = codec.encode(raw)
                t1 = time.perf_counter()
                for _ in range(5):
                    codec.decode(enc)
                t2 = time.perf_counter()
                out[f"{cname}{clevel}-{shuffle_name}/{name}"] = {
                    "ratio": round(len(raw) / len(enc), 3),
                    "encode_MBps": round(5 * len(raw) / (t1 - t0) / 1e6),
                    "decode_MBps": round(5 * len(raw) / (t2 - t1) / 1e6),
                }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--steps", type=int, default=100, help="mean steps per episode (+-20 %%)")
    parser.add_argument("--per-source", type=int, default=10, help="episodes per commit (one source video)")
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    lengths = rng.integers(int(args.steps * 0.8), int(args.steps * 1.2) + 1, args.episodes)
    episodes = [synthetic_episode(rng, int(t), args.points) for t in lengths]
    total = int(lengths.sum())

    # ---- NumPy baseline write: copy into preallocated arrays
    t0 = time.perf_counter()
    names = ("proprio", "action", "object_pc")
    mem = {n: np.empty((total, *getattr(episodes[0], n).shape[1:]), np.float32) for n in names}
    row = 0
    for ep in episodes:
        for name, arr in mem.items():
            arr[row : row + ep.num_steps] = getattr(ep, name)
        row += ep.num_steps
    numpy_write = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        store = TrajectoryStore.create(Path(tmp) / "bench.zarr", num_points=args.points)
        with store.writer("bench") as writer:
            t0 = time.perf_counter()
            for i in range(0, args.episodes, args.per_source):
                writer.append_episodes(f"video-{i}", episodes[i : i + args.per_source])
            store_write = time.perf_counter() - t0
            single = episodes[: min(50, args.episodes)]
            t0 = time.perf_counter()
            for i, ep in enumerate(single):
                writer.append_episodes(f"single-{i}", [ep])
            single_write = time.perf_counter() - t0

        # ---- random windows inside episodes, same starts for store and NumPy
        reader = store.reader()
        n_store_eps = reader.num_episodes
        ends, starts_of = reader.episode_ends, reader.episode_starts
        usable = np.flatnonzero(ends - starts_of >= args.window)
        batches = []
        for _ in range(args.batches):
            ep = rng.choice(usable, args.batch)
            off = rng.integers(0, ends[ep] - starts_of[ep] - args.window + 1)
            batches.append(starts_of[ep] + off)
        in_memory = {n: reader.read(n, 0, reader.num_steps) for n in ("proprio", "action", "object_pc")}
        idx = np.arange(args.window)

        def numpy_windows() -> float:
            t0 = time.perf_counter()
            for starts in batches:
                rows = starts[:, None] + idx
                for arr in in_memory.values():
                    arr[rows]
            return time.perf_counter() - t0

        def store_windows(r) -> float:  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            for starts in batches:
                for name in ("proprio", "action", "object_pc"):
                    r.windows(name, starts, args.window)
            return time.perf_counter() - t0

        numpy_read = numpy_windows()
        cold = store_windows(store.reader(cache_bytes=0))
        single_reader, singles = store.reader(cache_bytes=0), batches[0]
        t0 = time.perf_counter()
        for start in singles:  # no chunk reuse at all: a store far larger than the cache
            for name in ("proprio", "action", "object_pc"):
                single_reader.windows(name, [start], args.window)
        uncached = time.perf_counter() - t0
        warm_reader = store.reader(cache_bytes=1 << 30)
        store_windows(warm_reader)
        warm = store_windows(warm_reader)
        t0 = time.perf_counter()
        store.reader().proprio
        load_low_dim = time.perf_counter() - t0
        info = store.info()
        raw = sum(a.nbytes for a in in_memory.values())
        on_disk = info["bytes"]
        windows = args.batch * args.batches
        result = {
            "benchmark": "store_throughput",
            "config": {
                "episodes": args.episodes,
                "mean_steps": round(total / args.episodes, 1),
                "num_points": args.points,
                "episodes_per_commit": args.per_source,
                "window": args.window,
                "batch": args.batch,
                "control_hz": CONTROL_HZ,
                "codec": COMPRESSOR.to_dict(),
                "chunk_bytes_target": DEFAULT_CHUNK_BYTES,
            },
            "write_episodes_per_s": {
                "store": _rate(args.episodes, store_write),
                "store_one_episode_per_commit": _rate(len(single), single_write),
                "numpy_preallocated": _rate(args.episodes, numpy_write),
            },
            "write_steps_per_s_store": _rate(total, store_write),
            "read_windows_per_s": {
                "store_cold_cache_batch": _rate(windows, cold),
                "store_uncached_one_window_per_call": _rate(len(singles), uncached),
                "store_warm_cache": _rate(windows, warm),
                "numpy_in_memory": _rate(windows, numpy_read),
            },
            "load_all_proprio_s": round(load_low_dim, 4),
            "store_episodes": n_store_eps,
            "store_steps": reader.num_steps,
            "bytes_uncompressed_steps": raw,
            "bytes_on_disk": on_disk,
            "compression_ratio": round(raw / on_disk, 3),
            "codecs_on_this_data": bench_codecs({"proprio": mem["proprio"], "object_pc": mem["object_pc"]}),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
