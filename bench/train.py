"""Pretraining throughput: the model's training speed against the paper's
reference architecture, and the data pipeline's delivery against what
training consumes. Prints one JSON object.

1. Data pipeline (``hop_train.pretrain.HopDataModule`` -> ``train_dataloader``,
   as ``configs/pretrain.yaml`` configures it: batch, workers, noise): windows/s
   over a store of realistic size: ``out/demo/store.zarr`` (``make demo``) when
   present, else a generated one of the same size. Also: the full recipe's
   batch of 256, and clouds streamed through the chunk cache instead of RAM
   (large cache; small cache with chunk-local vs uniform shuffling).
2. Training step (forward + masked L1 + backward + clip 0.25 + AdamW), fp32 on
   the CPU, on the SAME batches from that pipeline: ``HopPolicy`` vs the
   paper's architecture on transformers' ``GPT2Model``
   (``hop_train.baselines.gpt2_reference``), interleaved round by round so
   that machine load hits both alike.

``pipeline_over_training`` = pipeline windows/s / our training samples/s
(aim >= 5); ``speedup_ours_vs_reference`` (aim >= 1.5 on CPU): ratio of median
steps; ``..._best_step``: of the fastest steps; ``..._paired_rounds``: median
over rounds of the ratio within a round (the least sensitive to other jobs).

    python bench/train.py [--store PATH] [--rounds 5] [--steps 2] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hop_data.store import Episode, TrajectoryStore  # noqa: E402
from hop_robot.embodiment.spec import DEFAULT_POSE, NUM_JOINTS  # noqa: E402
from hop_train.model import HopPolicy, masked_l1  # noqa: E402
from hop_train.pretrain import HopDataModule  # noqa: E402


def generated_store(path: Path, episodes: int = 200, steps: int = 145, num_points: int = 100) -> str:
    """A store shaped like the demo's (~29k steps): smooth joints, a moving cloud."""
    rng = np.random.default_rng(0)
    store = TrajectoryStore.create(path, num_points=num_points)
    with store.writer("bench") as writer:
        for source in range(4):
            batch = []
            for _ in range(episodes // 4):
                t = np.linspace(0, 1, steps)[:, None]
                q = DEFAULT_POSE + 0.3 * np.sin(2 * np.pi * t + rng.uniform(0, 6, NUM_JOINTS))
                cloud = rng.uniform(-0.04, 0.04, (num_points, 3)) + [0.5, 0.0, 0.1]
                pc = cloud[None] + np.concatenate([t * 0.2, t * 0, t * 0.3], axis=1)[:, None]
                quat = np.array([1.0, 0, 0, 0])
                batch.append(Episode(q.astype(np.float32), (q + 0.01).astype(np.float32), pc.astype(np.float32),
                                     seed=len(batch), table_pose=np.r_[0.65, 0, 0, quat], init_qpos=q[0],
                                     max_error=0.01, mean_error=0.005))  # fmt: skip
            writer.append_episodes(f"bench/{source}", batch)
    return str(path)


def pipeline_rate(data: dict, batches: int, **overrides) -> dict:
    """windows/s of ``HopDataModule(**data, **overrides).train_dataloader()``,
    setup (store opening, loading) excluded, loader start-up included."""
    dm = HopDataModule(**{**data, **overrides})
    t0 = time.perf_counter()
    dm.setup("fit")
    setup_s = time.perf_counter() - t0
    loader = dm.train_dataloader()
    n = 0
    t0 = time.perf_counter()
    for i, batch in enumerate(loader):
        n += len(batch["index"])
        if i + 1 >= batches:
            break
    elapsed = time.perf_counter() - t0
    return {
        "windows_per_s": round(n / elapsed),
        "batch": dm.batch_size,
        "batches": i + 1,
        "num_workers": dm.hparams.num_workers,
        "clouds": "ram" if dm.arrays.in_ram else "streamed",
        "setup_s": round(setup_s, 2),
    }


def train_step_fn(model: torch.nn.Module, params):
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-2)  # paper
    trainable = [p for p in model.parameters() if p.requires_grad]

    def step(batch: dict) -> None:
        pred = model(batch["proprio"], batch["points"], batch["mask"])
        loss = masked_l1(pred, batch["action"], batch["mask"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 0.25)  # paper
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(REPO / "out" / "demo" / "store.zarr"))
    parser.add_argument("--config", default=str(REPO / "configs" / "pretrain.yaml"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="training steps per model per round")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    tmp = tempfile.TemporaryDirectory()
    store = args.store
    store_kind = "demo store (make demo)"
    if not (Path(store) / "zarr.json").is_file():
        store = generated_store(Path(tmp.name) / "bench.zarr")
        store_kind = "generated (out/demo/store.zarr absent)"
    data = dict(yaml.safe_load(Path(args.config).read_text())["data"])
    data.update(store=store, seed=0)
    info = TrajectoryStore.open(store).info()

    # ---------------------------------------------------------------- data pipeline
    pipeline = {
        "as_configured": pipeline_rate(data, 150),
        "batch_256": pipeline_rate(data, 40, batch_size=256),
        "streamed_cache_512MiB": pipeline_rate(data, 40, batch_size=256, pc_ram_bytes=0),
        "streamed_cache_16MiB_chunk_local": pipeline_rate(
            data, 40, batch_size=256, pc_ram_bytes=0, cache_bytes=16 * 2**20, shuffle="chunk_local"
        ),
        "streamed_cache_16MiB_uniform": pipeline_rate(
            data, 15, batch_size=256, pc_ram_bytes=0, cache_bytes=16 * 2**20, shuffle="uniform"
        ),
    }

    # ---------------------------------------------------------------- training speed, same batches
    dm = HopDataModule(**data)
    dm.setup("fit")
    iterator = iter(dm.train_dataloader())
    batches = [next(iterator) for _ in range(2)]
    context, num_points = dm.context, dm.num_points
    ours = HopPolicy(context=context, num_points=num_points)
    runners = {"ours": train_step_fn(ours, ours.param_groups(1e-2))}
    reference_note = None
    try:
        from hop_train.baselines.gpt2_reference import build_reference, same_function_diff

        reference = build_reference(context=context, num_points=num_points)
        full = batches[0]["mask"].all(dim=1)  # windows with no padding
        same_diff = same_function_diff(ours, batches[0]["proprio"][full][:8], batches[0]["points"][full][:8])
        runners["reference"] = train_step_fn(reference, [p for p in reference.parameters() if p.requires_grad])
        import transformers

        reference_note = f"transformers {transformers.__version__} GPT2Model, positional embeddings zeroed and frozen"
    except ImportError as exc:
        reference_note = f"transformers not importable: {exc}"
        same_diff = None

    for run in runners.values():  # warm-up
        for b in batches:
            run(b)
    times: dict[str, list[float]] = {name: [] for name in runners}
    round_ratios = []  # reference / ours within one round: the two ran seconds apart, under the same load
    for r in range(args.rounds):
        order = list(runners.items()) if r % 2 == 0 else list(runners.items())[::-1]
        spent = {}
        for name, run in order:
            t_round = time.perf_counter()
            for s in range(args.steps):
                t0 = time.perf_counter()
                run(batches[s % len(batches)])
                times[name].append(time.perf_counter() - t0)
            spent[name] = time.perf_counter() - t_round
        if "reference" in spent:
            round_ratios.append(spent["reference"] / spent["ours"])

    batch = dm.batch_size

    def summary(ts: list[float]) -> dict:
        return {
            "step_ms_median": round(statistics.median(ts) * 1e3, 1),
            "step_ms_min": round(min(ts) * 1e3, 1),
            "samples_per_s": round(batch / statistics.median(ts), 1),
        }

    ours_rate = batch / statistics.median(times["ours"])
    out = {
        "bench": "train",
        "store": {"kind": store_kind, "episodes": info["episodes"], "steps": info["steps"],
                  "num_points": info["num_points"], "bytes_on_disk": info["bytes"]},  # fmt: skip
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "pipeline": pipeline,
        "train_step": {
            "what": "forward + masked L1 + backward + clip 0.25 + AdamW, fp32, CPU, same batches from the pipeline",
            "batch_windows": batch,
            "T": context,
            "P": num_points,
            "steps_timed_per_model": args.rounds * args.steps,
            "ours": summary(times["ours"]),
            "reference": summary(times["reference"]) if "reference" in times else None,
            "reference_note": reference_note,
        },
        "pipeline_over_training": round(pipeline["as_configured"]["windows_per_s"] / ours_rate, 1),
    }
    if "reference" in times:
        out["speedup_ours_vs_reference"] = round(
            statistics.median(times["reference"]) / statistics.median(times["ours"]), 2
        )
        out["speedup_ours_vs_reference_best_step"] = round(min(times["reference"]) / min(times["ours"]), 2)
        out["speedup_ours_vs_reference_paired_rounds"] = round(statistics.median(round_ratios), 2)
        out["same_function_max_abs_diff"] = same_diff  # weights copied into the reference: same actions
    print(json.dumps(out))
    tmp.cleanup()


if __name__ == "__main__":
    main()
