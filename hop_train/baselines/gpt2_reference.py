"""The paper's policy as its public code builds it, on Hugging Face ``GPT2Model``.

A ``GPT2Model`` (4 layers, 4 heads, width 192, n_positions 2 * context,
dropout 0) with its positional embeddings zeroed and frozen (the paper's code
has none), fed ``inputs_embeds`` from the paper's tokenizers: proprio Linear,
PointNet as Linear/ELU/Linear/ELU/Linear + MaxPool2d, a timestep embedding and
an embedding LayerNorm; an action Linear on each step's point-cloud token.

Used as the speed baseline by ``bench/train.py``, which also checks with
``same_function_diff`` that ``HopPolicy`` computes the same function. Needs
the optional ``transformers`` package, imported on call.
"""

from __future__ import annotations

import torch
from torch import nn

from hop_robot.embodiment.spec import NUM_JOINTS

__all__ = ["build_reference", "same_function_diff"]


def build_reference(
    context: int = 16, width: int = 192, num_points: int = 100, activation: str = "gelu_new"
) -> nn.Module:
    """The paper's RobotTransformerAR (no action input, no tanh) on transformers' GPT2Model.

    ``forward(proprio (B, T, 23), points (B, T, P, 3), mask (B, T) bool) -> (B, T, 23)``.
    ``activation``: GPT-2's tanh GELU ("gelu_new", the paper's) or "gelu" (exact,
    ours; used only for the same-function check)."""
    import transformers  # optional: only the benchmarks need it

    class Reference(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            config = transformers.GPT2Config(
                vocab_size=1,
                bos_token_id=0,
                eos_token_id=0,
                n_embd=width,
                n_layer=4,
                n_head=4,
                n_positions=2 * context,
                resid_pdrop=0.0,
                embd_pdrop=0.0,
                attn_pdrop=0.0,
                activation_function=activation,
            )
            self.transformer = transformers.GPT2Model(config)
            # The paper's GPT2Model has no positional embedding: zero and freeze it.
            self.transformer.wpe.weight.data.zero_()
            self.transformer.wpe.weight.requires_grad_(False)
            self.embed_timestep = nn.Embedding(context, width)
            self.embed_proprio = nn.Linear(NUM_JOINTS, width)
            self.embed_pc = nn.Sequential(
                nn.Linear(3, width),
                nn.ELU(inplace=True),
                nn.Linear(width, width),
                nn.ELU(inplace=True),
                nn.Linear(width, width),
                nn.MaxPool2d((num_points, 1)),
            )
            self.embed_ln = nn.LayerNorm(width)
            self.predict_action = nn.Linear(width, NUM_JOINTS)
            self.width = width

        def forward(self, proprio, points, mask):
            b, t = proprio.shape[:2]
            timesteps = torch.arange(t, device=proprio.device).unsqueeze(0).expand(b, t)
            time_emb = self.embed_timestep(timesteps)
            p = self.embed_proprio(proprio) + time_emb
            x = self.embed_pc(points).squeeze(-2) + time_emb
            tokens = torch.stack((p, x), dim=1).permute(0, 2, 1, 3).reshape(b, 2 * t, self.width)
            tokens = self.embed_ln(tokens)
            attn = torch.stack((mask, mask), dim=1).permute(0, 2, 1).reshape(b, 2 * t).long()
            h = self.transformer(inputs_embeds=tokens, attention_mask=attn)["last_hidden_state"]
            h = h.reshape(b, t, 2, self.width).permute(0, 2, 1, 3)
            return self.predict_action(h[:, 1])

    return Reference()


def same_function_diff(ours: nn.Module, proprio: torch.Tensor, points: torch.Tensor) -> float:
    """Copy ``HopPolicy`` weights into a reference built with its GELU form and
    compare actions on full, unpadded windows ``proprio (B, context, 23)``,
    ``points (B, context, P, 3)``: 0 up to float error means the two are the
    same architecture (HopPolicy right-aligns timesteps, identical at T = context)."""
    context, num_points = proprio.shape[1], points.shape[2]
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
    mask = torch.ones(proprio.shape[:2], dtype=torch.bool)
    was_training = ours.training
    with torch.no_grad():
        diff = float((ours.eval()(proprio, points, mask) - ref(proprio, points, mask)).abs().max())
    ours.train(was_training)
    return diff
