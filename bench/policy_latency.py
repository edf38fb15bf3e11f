"""Latency of one policy call on the robot computer: batch 1, T = 16, P = 100,
CPU, ``torch.set_num_threads(1)``.

Variants, timed interleaved call by call (so machine load hits all alike), each
on a rolling history where every call brings a new cloud and joint state, as
in the 20 Hz loop:

- ``runner``: ``hop_robot.policy.ExportedPolicy`` as the robot uses it
  (numpy in/out, checks, cached point tokens, frozen + optimize_for_inference).
- ``runner_no_cache``: the same, encoding all 16 clouds every call.
- ``runner_plain``: no cache, no freezing/optimisation (the file as saved).
- ``eager``: the in-run baseline: the eager ``HopPolicy`` in Python, full
  window forward, last step taken, scaling done in torch.

Prints one JSON object (milliseconds).

    python bench/policy_latency.py [--calls 1000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hop_robot.embodiment.spec import JOINT_LOWER, JOINT_UPPER, NUM_JOINTS
from hop_robot.policy import ExportedPolicy
from hop_train.export import export_policy
from hop_train.model import HopPolicy


def stats(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"p50": round(p50, 3), "p90": round(p90, 3), "p99": round(p99, 3), "max": round(ms.max(), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    context, num_points = 16, 100

    model = HopPolicy(context=context, num_points=num_points).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_policy(model, Path(tmp) / "policy.pt")
        t0 = time.perf_counter()
        runner = ExportedPolicy(path)
        load_ms = (time.perf_counter() - t0) * 1e3
        no_cache = ExportedPolicy(path, cache_point_tokens=False)
        plain = ExportedPolicy(path, cache_point_tokens=False, optimize=False)

    mid = torch.tensor((JOINT_UPPER + JOINT_LOWER) / 2, dtype=torch.float32)
    half = torch.tensor((JOINT_UPPER - JOINT_LOWER) / 2, dtype=torch.float32)
    mask = torch.ones(1, context, dtype=torch.bool)

    def eager(q: np.ndarray, pc: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            scaled = (torch.from_numpy(q) - mid) / half
            action = model(scaled[None], torch.from_numpy(pc)[None], mask)[0, -1]
            return (action * half + mid).numpy()

    variants = {"runner": runner, "runner_no_cache": no_cache, "runner_plain": plain, "eager": eager}

    rng = np.random.default_rng(0)
    n = args.warmup + args.calls + context
    q_stream = (rng.uniform(JOINT_LOWER, JOINT_UPPER, (n, NUM_JOINTS)) * 0.5).astype(np.float32)
    pc_stream = (rng.random((n, num_points, 3)) * 0.3 + [0.5, -0.15, 0.0]).astype(np.float32)

    times: dict[str, list[float]] = {name: [] for name in variants}
    worst_diff = 0.0
    for k in range(args.warmup + args.calls):
        q, pc = q_stream[k : k + context], pc_stream[k : k + context]  # fresh arrays each step, as a loop has
        outs = {}
        for name, fn in variants.items():
            t0 = time.perf_counter()
            outs[name] = fn(q, pc)
            dt = time.perf_counter() - t0
            if k >= args.warmup:
                times[name].append(dt)
        worst_diff = max(worst_diff, max(float(np.abs(o - outs["eager"]).max()) for o in outs.values()))

    result = {
        "bench": "policy_latency",
        "what": "one call, batch 1, T=16, P=100, CPU, torch.set_num_threads(1), rolling history",
        "calls": args.calls,
        "torch": torch.__version__,
        "ms": {name: stats(ts) for name, ts in times.items()},
        "runner_load_ms": round(load_ms, 1),
        "max_abs_diff_vs_eager_rad": worst_diff,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
