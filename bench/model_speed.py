"""Training speed of ``HopPolicy`` vs the paper's reference architecture.

The reference is what the HOP code builds: a Hugging Face ``GPT2Model``
(4 layers, 4 heads, width 192, n_positions 32, dropout 0) with its positional
embeddings zeroed and frozen, fed ``inputs_embeds`` from the same tokenizers as
the paper's code (proprio Linear, PointNet as Linear/ELU/Linear/ELU/Linear +
MaxPool2d, timestep embedding, embedding LayerNorm) and an action Linear on each
step's point-cloud token (built by ``hop_train.baselines.gpt2_reference``).
Both run forward + L1 loss + backward + grad clip (0.25) + AdamW (lr 1e-4,
weight decay 1e-2) on the same batches, interleaved round by round so that
machine load hits both alike.

Prints one JSON object. ``transformers`` is optional: without it the reference
is null with the reason.

    python bench/model_speed.py [--batch 64] [--rounds 5] [--steps 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from torch import nn

from hop_robot.embodiment.spec import NUM_JOINTS
from hop_train.baselines.gpt2_reference import build_reference
from hop_train.model import HopPolicy, masked_l1


def same_function_diff(ours: HopPolicy, context: int, num_points: int) -> float:
    """Copy our weights into a reference built with our GELU form and compare
    actions on unpadded windows: 0 up to float error means the two are the same
    architecture (ours right-aligns timesteps, identical at T = context)."""
    ref = build_reference(context=context, num_points=num_points, activation="gelu").eval()
    own = ours.state_dict()
    mapped = {
        "embed_proprio": "embed_proprio",
        "point_encoder.fc1": "embed_pc.0",
        "point_encoder.fc2": "embed_pc.2",
        "point_encoder.fc3": "embed_pc.4",
        "embed_timestep": "embed_timestep",
        "embed_ln": "embed_ln",
        "ln_f": "transformer.ln_f",
        "action_head": "predict_action",
    }
    for i in range(len(ours.blocks)):
        for a, b in (("ln_1", "ln_1"), ("attn.qkv", "attn.c_attn"), ("attn.proj", "attn.c_proj"),
                     ("ln_2", "ln_2"), ("fc", "mlp.c_fc"), ("proj", "mlp.c_proj")):  # fmt: skip
            mapped[f"blocks.{i}.{a}"] = f"transformer.h.{i}.{b}"
    new_state = ref.state_dict()
    for a, b in mapped.items():
        for leaf in ("weight", "bias"):
            if f"{a}.{leaf}" in own:
                value = own[f"{a}.{leaf}"]
                conv1d = b.startswith("transformer.h.") and leaf == "weight" and not b.endswith(("ln_1", "ln_2"))
                new_state[f"{b}.{leaf}"] = value.t() if conv1d else value  # HF Conv1D stores (in, out)
    ref.load_state_dict(new_state)
    proprio, points, _, _ = make_batches(1, 8, context, num_points, seed=1)[0]
    mask = torch.ones(8, context, dtype=torch.bool)
    with torch.no_grad():
        return float((ours.eval()(proprio, points, mask) - ref(proprio, points, mask)).abs().max())


def make_batches(n: int, batch: int, context: int, num_points: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        proprio = torch.rand(batch, context, NUM_JOINTS, generator=g) * 2 - 1
        points = torch.rand(batch, context, num_points, 3, generator=g) * 0.3 + torch.tensor([0.5, -0.15, 0.0])
        target = torch.rand(batch, context, NUM_JOINTS, generator=g) * 2 - 1
        mask = torch.ones(batch, context, dtype=torch.bool)
        # A quarter of the windows start inside an episode's first steps (left padding).
        for i in range(batch // 4):
            mask[i, : 1 + i % (context - 1)] = False
        batches.append((proprio, points, mask, target))
    return batches


def train_step_fn(model: nn.Module, params):
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-2)  # paper's optimiser
    trainable = [p for p in model.parameters() if p.requires_grad]

    def step(batch):
        proprio, points, mask, target = batch
        loss = masked_l1(model(proprio, points, mask), target, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 0.25)  # paper
        opt.step()
        return float(loss.detach())

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="steps per model per round")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    context, num_points = 16, 100

    ours = HopPolicy(context=context, num_points=num_points)
    runners = {"ours": train_step_fn(ours, ours.param_groups(1e-2))}
    reference_note = None
    try:
        reference = build_reference(context=context, num_points=num_points)
        runners["reference"] = train_step_fn(reference, [p for p in reference.parameters() if p.requires_grad])
        attn_impl = reference.transformer.config._attn_implementation
        import transformers

        reference_note = f"transformers {transformers.__version__} GPT2Model, attn_implementation={attn_impl}"
        same_diff = same_function_diff(ours, context, num_points)
        ours.train()
    except ImportError as exc:
        reference = None
        reference_note = f"transformers not importable: {exc}"
        same_diff = None

    batches = make_batches(2, args.batch, context, num_points)
    for run in runners.values():  # warm-up
        for b in batches:
            run(b)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(args.rounds):
        order = list(runners.items()) if r % 2 == 0 else list(runners.items())[::-1]
        for name, run in order:
            for s in range(args.steps):
                t0 = time.perf_counter()
                run(batches[s % len(batches)])
                times[name].append(time.perf_counter() - t0)

    def summary(ts: list[float]) -> dict:
        med = statistics.median(ts)
        return {
            "step_ms_median": round(med * 1e3, 1),
            "step_ms_min": round(min(ts) * 1e3, 1),
            "samples_per_s": round(args.batch / med, 1),
        }

    out = {
        "bench": "model_speed",
        "what": "train step = forward + masked L1 + backward + clip 0.25 + AdamW, fp32, CPU",
        "batch_windows": args.batch,
        "T": context,
        "P": num_points,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "steps_timed_per_model": args.rounds * args.steps,
        "ours": summary(times["ours"]),
        "ours_params": sum(p.numel() for p in ours.parameters()),
        "reference": summary(times["reference"]) if "reference" in times else None,
        "reference_note": reference_note,
    }
    if "reference" in times:
        out["reference_params_trainable"] = sum(p.numel() for p in reference.parameters() if p.requires_grad)
        out["same_function_max_abs_diff"] = same_diff
        out["speedup_ours_vs_reference"] = round(
            statistics.median(times["reference"]) / statistics.median(times["ours"]), 2
        )
        # Min-based ratio: less sensitive to other processes sharing the CPU.
        out["speedup_ours_vs_reference_best_step"] = round(min(times["reference"]) / min(times["ours"]), 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
