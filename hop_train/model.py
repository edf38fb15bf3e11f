"""The HOP policy: a small causal GPT-2-style transformer over proprioception and
object point-cloud tokens (paper Sec. 3.3; architecture facts in DESIGN.md).

Per step ``t`` of a window there are two tokens, in this order::

    [proprio_t, points_t]      proprio_t = Linear(23 -> d)(scaled joints)
                               points_t  = PointNet(object cloud, P points)
    both + timestep_embedding[t];  sequence length L = 2 T

The action for step ``t`` (23 absolute joint targets, scaled to [-1, 1] by the
joint limits) is read from ``points_t``, the second token of the step, so it has
seen that step's proprioception and everything before it.

Shapes: ``proprio (B, T, 23)`` scaled joints, ``points (B, T, P, 3)`` metres in the
robot base frame (used as they are: no centring or scaling), ``mask (B, T)`` bool,
True on valid steps. Windows that start before an episode's first step are
LEFT-padded: their first steps have ``mask`` False. A padded step's keys are
never attended to by any other token, so padded inputs cannot change a valid
step's output. Timestep embeddings are right-aligned: the last step of a window
always gets index ``context - 1``, so a short unpadded window (T < context) and
the same steps left-padded to ``context`` give the same actions.

Two position schemes, chosen by ``HopPolicy(positions=...)``:

- ``"window"`` (default, the paper's): the learned, right-aligned timestep
  embedding above and full causal attention inside a window of at most
  ``context`` steps. A step's tokens change as it slides through the window,
  so keys and values cannot be cached: every action recomputes its window.
- ``"relative"``: no timestep embedding; attention carries ALiBi biases
  ``-m_h * (t_q - t_k)`` by step distance (Press et al. 2022, "Train Short,
  Test Long") and a query at step ``t`` sees only the keys of steps
  ``t - context + 1 .. t`` (a band of ``2 context`` tokens; causal inside the
  step pair as above). Nothing depends on a token's absolute position, so a
  step's keys and values never change once computed: ``init_cache`` /
  ``step`` act one step at a time from a per-env ring buffer of the last
  ``context`` steps' keys and values per layer and equal the banded forward
  over the whole episode (``forward_tokens`` takes windows of any length for
  this variant). Layers compose, so an action depends on up to
  ``receptive_field = num_layers * (context - 1) + 1`` steps: a window of
  ``context`` steps is the banded forward cut short, equal to the
  incremental form only within an episode's first ``context`` steps; a window
  of ``receptive_field`` steps equals it always.

The module is plain ``torch.nn.Module`` and scriptable (``hop_train.export``).
"""

from __future__ import annotations

import math
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hop_robot.embodiment.spec import CONTEXT, NUM_JOINTS, NUM_POINTS

__all__ = ["POSITIONS", "HopPolicy", "PointNet", "alibi_slopes", "masked_l1"]

POSITIONS = ("window", "relative")  # HopPolicy(positions=...): module doc


class PointNet(nn.Module):
    """Per-point MLP ``3 -> d -> d -> d`` with ELU between layers, then a max over
    points (the paper's code: Linear/ELU/Linear/ELU/Linear/MaxPool).

    ``points (..., P, 3) -> (..., d)``; any P >= 1.

    Speed (CPU training is dominated by this module): clouds are processed in
    chunks of about ``chunk_points`` points so that the (points, d) activations
    stay in cache, and when the weights need gradients the backward pass runs
    through ``_SparseMaxPoolMLP``: only each cloud's critical points (the argmax
    of at least one channel, typically ~25 % of them) receive gradient, so the
    backward recomputes and differentiates the MLP on those rows only and
    nothing of size (points, d) is kept between forward and backward.
    Gradients equal autograd's (ties in the max go to one point, as
    ``torch.max`` does; ``test_model`` checks this).
    """

    def __init__(self, width: int = 192, chunk_points: int = 2048) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, width)
        self.fc2 = nn.Linear(width, width)
        self.fc3 = nn.Linear(width, width)
        self.chunk_points = chunk_points

    def forward(self, points: Tensor) -> Tensor:
        num_points = points.shape[-2]
        flat = points.reshape(-1, num_points, 3)
        if not torch.jit.is_scripting():
            if torch.is_grad_enabled() and self.fc1.weight.requires_grad and not points.requires_grad:
                out = self._sparse_grad(flat)
                return out.view(points.shape[:-2] + (out.shape[-1],))
        step = max(1, self.chunk_points // num_points)
        out = torch.cat([self._pooled(flat[i : i + step]) for i in range(0, flat.shape[0], step)])
        return out.view(points.shape[:-2] + (out.shape[-1],))

    def _pooled(self, x: Tensor) -> Tensor:
        h = F.elu(self.fc1(x))
        h = F.elu(self.fc2(h))
        return self.fc3(h).amax(dim=-2)

    @torch.jit.unused
    def _sparse_grad(self, flat: Tensor) -> Tensor:
        return _SparseMaxPoolMLP.apply(
            flat.contiguous(),
            self.chunk_points,
            self.fc1.weight,
            self.fc1.bias,
            self.fc2.weight,
            self.fc2.bias,
            self.fc3.weight,
            self.fc3.bias,
        )


class _SparseMaxPoolMLP(torch.autograd.Function):
    """``max_p fc3(elu(fc2(elu(fc1(x[n, p])))))`` with a backward pass that only
    touches each cloud's critical points. ``x (N, P, 3)`` -> ``(N, d)``."""

    @staticmethod
    def forward(ctx, x, chunk_points, w1, b1, w2, b2, w3, b3):  # type: ignore[override]
        num_clouds, num_points, _ = x.shape
        step = max(1, chunk_points // num_points)
        values, index = [], []
        for i in range(0, num_clouds, step):
            h = F.elu_(F.linear(x[i : i + step], w1, b1))
            h = F.elu_(F.linear(h, w2, b2))
            v, j = F.linear(h, w3, b3).max(dim=1)
            values.append(v)
            index.append(j)
        ctx.save_for_backward(x, torch.cat(index), w1, b1, w2, b2, w3)
        return torch.cat(values)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        x, index, w1, b1, w2, b2, w3 = ctx.saved_tensors
        grad = grad.to(w3.dtype)  # under autocast the forward ran in low precision; recompute in the weights' dtype
        x = x.to(w3.dtype)
        num_clouds, num_points, _ = x.shape
        width = w3.shape[0]
        # Row (in the N*P flattening) of the point that won each (cloud, channel).
        winner = index + torch.arange(num_clouds, device=x.device).unsqueeze(1) * num_points
        critical = torch.zeros(num_clouds * num_points, dtype=torch.bool, device=x.device)
        critical[winner.reshape(-1)] = True
        rows = critical.nonzero().squeeze(1)
        position = torch.cumsum(critical, 0) - 1  # row -> index among critical rows
        # d loss / d fc3-output on critical rows: one nonzero per (cloud, channel).
        grad_out = grad.new_zeros(rows.numel(), width)
        channel = torch.arange(width, device=x.device).expand(num_clouds, width)
        grad_out[position[winner].reshape(-1), channel.reshape(-1)] = grad.reshape(-1)
        # Recompute the MLP on the critical rows only.
        xr = x.reshape(-1, 3).index_select(0, rows)
        z1 = F.linear(xr, w1, b1)
        h1 = F.elu(z1)
        z2 = F.linear(h1, w2, b2)
        h2 = F.elu(z2)
        grad_w3 = grad_out.t() @ h2
        grad_b3 = grad.reshape(-1, width).sum(0)
        d2 = (grad_out @ w3) * torch.where(z2 > 0, 1.0, h2 + 1.0)  # elu'(z) = elu(z) + 1 for z <= 0
        grad_w2 = d2.t() @ h1
        d1 = (d2 @ w2) * torch.where(z1 > 0, 1.0, h1 + 1.0)
        grad_w1 = d1.t() @ xr
        return None, None, grad_w1, d1.sum(0), grad_w2, d2.sum(0), grad_w3, grad_b3


def alibi_slopes(num_heads: int) -> Tensor:
    """ALiBi's head slopes (Press et al. 2022): the geometric sequence
    ``2^(-8 (h + 1) / H)``, so heads range from sharply local to nearly flat."""
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / num_heads) for h in range(num_heads)])


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        if width % num_heads:
            raise ValueError(f"width {width} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: Tensor, attn_mask: Optional[Tensor], last_only: bool = False) -> Tensor:
        """``x (B, L, d)``; ``attn_mask (B, 1, L, L)`` bool (True = may attend), a
        float bias ``(B or 1, H, L, L)`` (the relative variant: ALiBi, ``-inf``
        off the band) or None for plain causal attention. ``last_only``: the
        output of the last token only, ``(B, 1, d)`` (it attends to every token anyway)."""
        b, n, d = x.shape
        h = self.num_heads
        if not last_only:
            q, k, v = self.qkv(x).view(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
            if attn_mask is None:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=_like(attn_mask, q))
            return self.proj(y.transpose(1, 2).reshape(b, n, d))
        weight, bias = self.qkv.weight, self.qkv.bias
        q = F.linear(x[:, n - 1 :], weight[:d], bias[:d]).view(b, 1, h, d // h).transpose(1, 2)
        k, v = F.linear(x, weight[d:], bias[d:]).view(b, n, 2, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
        last_mask = None if attn_mask is None else _like(attn_mask[:, :, n - 1 :], q)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=last_mask)
        return self.proj(y.transpose(1, 2).reshape(b, 1, d))

    def step(self, x: Tensor, keys: Tensor, values: Tensor, slot: Tensor, bias: Tensor, last_only: bool) -> Tensor:
        """One step of N envs from their key/value ring buffers (the relative variant).

        ``x (N, 2, d)``: the step's [proprio, points] tokens. Their keys and
        values are written into ``slot (N,)`` of ``keys, values (N, C, 2, H,
        d/H)`` (in place: the slot held the step that just left the band),
        then both tokens attend to all ``2 C`` cached tokens with ``bias (N,
        H, 2, 2C)`` (ALiBi, ``-inf`` on stale slots and on the step's own
        points key for its proprio query). ``last_only``: the points token's
        output only, ``(N, 1, d)`` (the last layer: nothing reads the other)."""
        n, _, d = x.shape
        h = self.num_heads
        q, k, v = self.qkv(x).view(n, 2, 3, h, d // h).unbind(2)  # (N, 2, H, d/H) each
        env = torch.arange(n, device=x.device)
        keys.index_put_((env, slot), k)
        values.index_put_((env, slot), v)
        c = keys.shape[1]
        if last_only:
            q, bias = q[:, 1:], bias[:, :, 1:]
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            keys.view(n, 2 * c, h, d // h).transpose(1, 2),
            values.view(n, 2 * c, h, d // h).transpose(1, 2),
            attn_mask=_like(bias, q),
        )
        return self.proj(y.transpose(1, 2).reshape(n, q.shape[1], d))


def _like(mask: Tensor, query: Tensor) -> Tensor:
    """A float attention bias in the query's dtype (SDPA requires it; under
    autocast the bias is float32 and the query low precision); bool masks as they are."""
    return mask if mask.dtype == torch.bool else mask.to(query.dtype)


class Block(nn.Module):
    """Pre-LN transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, num_heads)
        self.ln_2 = nn.LayerNorm(width)
        self.fc = nn.Linear(width, 4 * width)
        self.proj = nn.Linear(4 * width, width)

    def forward(self, x: Tensor, attn_mask: Optional[Tensor], last_only: bool = False) -> Tensor:
        """``(B, L, d) -> (B, L, d)``, or ``(B, 1, d)`` for the last token with ``last_only``."""
        y = self.attn(self.ln_1(x), attn_mask, last_only)
        return self._feed_forward((x[:, x.shape[1] - 1 :] if last_only else x) + y)

    def step(self, x: Tensor, keys: Tensor, values: Tensor, slot: Tensor, bias: Tensor, last_only: bool) -> Tensor:
        """``forward`` for one step of N envs from their caches (``CausalSelfAttention.step``):
        ``(N, 2, d) -> (N, 2, d)``, or ``(N, 1, d)`` (the points token) with ``last_only``."""
        y = self.attn.step(self.ln_1(x), keys, values, slot, bias, last_only)
        return self._feed_forward((x[:, 1:] if last_only else x) + y)

    def _feed_forward(self, x: Tensor) -> Tensor:
        # Exact (erf) GELU: ~3x cheaper than the tanh form on CPU; the paper's
        # GPT-2 uses the tanh approximation (|difference| < 1e-3).
        return x + self.proj(F.gelu(self.fc(self.ln_2(x))))


class HopPolicy(nn.Module):
    """Causal transformer policy ``(proprio, points, mask) -> actions``, all scaled.

    Defaults are the paper's (HOP public code, ``cfg/pretrain``): 4 layers,
    4 heads, width 192, context 16, 100 points, no tanh on the actions.
    Dropout is 0 in the paper and is not implemented.

    Args:
        num_joints: proprioception and action size (23: xArm7 + Allegro).
        width: token width ``d``.
        num_layers: transformer blocks.
        num_heads: attention heads.
        context: steps per window (2 tokens each); also the timestep table
            size (``window``) or the attention band (``relative``).
        num_points: object points per step the policy is trained with. The
            PointNet accepts any P; this number is recorded for export.
        action_tanh: squash actions with tanh into (-1, 1). The paper trains
            without it (targets can sit exactly on a limit).
        positions: ``"window"`` (the paper's right-aligned timestep embedding;
            checkpoints and exports from before this option are this) or
            ``"relative"`` (ALiBi biases and banded attention, so rollouts can
            cache keys and values: ``init_cache`` / ``step``). Module doc.
    """

    def __init__(
        self,
        num_joints: int = NUM_JOINTS,
        width: int = 192,  # paper
        num_layers: int = 4,  # paper
        num_heads: int = 4,  # paper
        context: int = CONTEXT,  # paper: 16 steps of history
        num_points: int = NUM_POINTS,  # paper: 100-point object clouds
        action_tanh: bool = False,  # paper: off
        positions: str = "window",  # paper: a learned timestep embedding
    ) -> None:
        super().__init__()
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {positions!r}")
        self.num_joints = num_joints
        self.width = width
        self.context = context
        self.num_points = num_points
        self.action_tanh = action_tanh
        self.positions = positions
        self.relative = positions == "relative"
        # Steps an action depends on: the window, or the band composed over the layers.
        self.receptive_field = num_layers * (context - 1) + 1 if self.relative else context

        self.embed_proprio = nn.Linear(num_joints, width)
        self.point_encoder = PointNet(width)
        self.embed_timestep = None if self.relative else nn.Embedding(context, width)
        self.embed_ln = nn.LayerNorm(width)  # as the paper's code, before the blocks
        self.blocks = nn.ModuleList([Block(width, num_heads) for _ in range(num_layers)])
        self.ln_f = nn.LayerNorm(width)
        self.action_head = nn.Linear(width, num_joints)
        self.register_buffer("_causal", torch.ones(2 * context, 2 * context).tril().bool(), persistent=False)
        self.register_buffer("_slopes", alibi_slopes(num_heads), persistent=False)
        self._init_weights(num_layers)

    # ------------------------------------------------------------------ init
    def _init_weights(self, num_layers: int) -> None:
        """GPT-2 init: N(0, 0.02) for Linear and Embedding weights, zero biases,
        LayerNorm (1, 0); the projections that write into the residual stream
        get std 0.02 / sqrt(2 * num_layers). The PointNet keeps PyTorch's
        fan-in init (as in the paper's code, where only the GPT-2 body is
        GPT-2-initialised): N(0, 0.02) on 3-d inputs in metres would shrink
        point features ~100x per layer."""
        pointnet = set(self.point_encoder.modules())
        for module in self.modules():
            if module in pointnet:
                continue
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            for residual_out in (block.attn.proj, block.proj):
                nn.init.normal_(residual_out.weight, mean=0.0, std=0.02 / math.sqrt(2 * num_layers))

    def param_groups(self, weight_decay: float = 1e-2) -> list[dict]:
        """AdamW groups: decay on Linear/conv weights; none on biases, LayerNorm
        and embeddings. Every trainable parameter is in exactly one group."""
        decay: list[Tensor] = []
        no_decay: list[Tensor] = []
        for module in self.modules():
            for name, param in module.named_parameters(recurse=False):
                if not param.requires_grad:
                    continue
                is_matrix_weight = name == "weight" and isinstance(module, (nn.Linear, nn.modules.conv._ConvNd))
                (decay if is_matrix_weight else no_decay).append(param)
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    # --------------------------------------------------------------- forward
    def forward(self, proprio: Tensor, points: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """``proprio (B, T, 23)`` scaled, ``points (B, T, P, 3)`` metres, ``mask
        (B, T)`` bool (None = all valid) -> ``actions (B, T, 23)`` scaled.

        T <= context. Outputs at padded steps are finite but meaningless."""
        return self.forward_tokens(proprio, self.encode_points(points), mask)

    def encode_points(self, points: Tensor) -> Tensor:
        """PointNet tokens, before the timestep embedding: ``points (..., P, 3)
        -> (..., d)``. Steps are independent, so a caller may cache them (the
        robot runner does; a PPO critic may reuse them detached)."""
        return self.point_encoder(points)

    def forward_tokens(
        self, proprio: Tensor, point_tokens: Tensor, mask: Optional[Tensor] = None, last_step_only: bool = False
    ) -> Tensor:
        """``forward`` with the point clouds already encoded: ``point_tokens (B, T, d)``.

        ``last_step_only``: return ``(B, 1, 23)``, the last step's action only;
        the final block then computes just that token (what deployment needs).
        The relative variant takes any T (attention stays within the band)."""
        b, t, _ = proprio.shape
        if t > self.context and not self.relative:
            raise ValueError(f"window of {t} steps is longer than the context ({self.context})")
        x = self._embed(proprio, point_tokens)  # [p_0, x_0, p_1, x_1, ...]

        attn_mask: Optional[Tensor] = None
        if self.relative:
            attn_mask = self._band_bias(mask, t, proprio.device)
        elif mask is not None and not bool(mask.all()):
            attn_mask = self._attention_mask(mask)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, attn_mask, last_step_only and i == last)

        if last_step_only:
            return self._act(x)  # the last token is step T-1's point token
        return self._act(x.view(b, t, 2, self.width)[:, :, 1])

    def _embed(self, proprio: Tensor, point_tokens: Tensor) -> Tensor:
        """``(B, T, 23), (B, T, d)`` -> the token sequence ``(B, 2T, d)``, with the
        right-aligned timestep embedding for the window variant."""
        b, t, _ = proprio.shape
        p = self.embed_proprio(proprio)
        if self.embed_timestep is not None:
            time = self.embed_timestep.weight[self.context - t :]  # right-aligned, (T, d)
            p, point_tokens = p + time, point_tokens + time
        tokens = torch.stack((p, point_tokens), dim=2)
        return self.embed_ln(tokens.view(b, 2 * t, self.width))

    def _act(self, x: Tensor) -> Tensor:
        """Point-token outputs ``(..., d)`` -> actions ``(..., 23)``."""
        actions = self.action_head(self.ln_f(x))
        if self.action_tanh:
            actions = torch.tanh(actions)
        return actions

    def _attention_mask(self, mask: Tensor) -> Tensor:
        """``mask (B, T)`` -> ``(B, 1, 2T, 2T)`` bool: causal, never onto padded
        keys, but always onto itself (a padded query with no key would give NaN)."""
        n = 2 * mask.shape[1]
        key_valid = mask.repeat_interleave(2, dim=1)[:, None, None, :]
        causal = self._causal[:n, :n]
        eye = torch.eye(n, dtype=torch.bool, device=mask.device)
        return (causal & key_valid) | eye

    def _band_bias(self, mask: Optional[Tensor], t: int, device: torch.device) -> Tensor:
        """The relative variant's attention over a window of ``t`` steps: ``(B or 1,
        H, 2T, 2T)`` float, ALiBi's ``-m_h * (step_q - step_k)`` where a query may
        attend (causal on tokens, keys within ``context`` steps, not padded;
        always itself, as ``_attention_mask``), ``-inf`` elsewhere."""
        step = torch.arange(t, device=device).repeat_interleave(2)
        distance = step[:, None] - step[None, :]  # (2T, 2T), in steps
        n = 2 * t
        token = torch.arange(n, device=device)
        allowed = ((token[:, None] >= token[None, :]) & (distance < self.context)).unsqueeze(0)  # (1, 2T, 2T)
        if mask is not None:
            eye = torch.eye(n, dtype=torch.bool, device=device)
            allowed = (allowed & mask.repeat_interleave(2, dim=1)[:, None, :]) | eye  # (B, 2T, 2T)
        return self._alibi(distance.unsqueeze(0), allowed.unsqueeze(1))

    def _alibi(self, distance: Tensor, allowed: Tensor) -> Tensor:
        """ALiBi bias (Press et al. 2022) ``-m_h * distance`` per head, ``-inf``
        where not ``allowed``: ``distance (..., Lq, Lk)`` steps, ``allowed``
        broadcastable with a head axis at -3 -> ``(..., H, Lq, Lk)``."""
        bias = -self._slopes[:, None, None] * distance.unsqueeze(-3).to(self._slopes.dtype)
        return torch.where(allowed, bias, torch.full_like(bias[..., :1, :1, :1], float("-inf")))

    # ------------------------------------------------------- incremental (relative)
    @torch.jit.export
    def init_cache(self, num_envs: int) -> List[Tensor]:
        """Empty per-env state for ``step``: ``[steps (N,) int64, then per layer
        keys, values (N, context, 2, H, d/H)]``; ``steps`` counts each env's steps
        since its episode started (every env starts a fresh episode)."""
        if not self.relative:
            raise RuntimeError("init_cache/step need HopPolicy(positions='relative'); the window variant cannot cache")
        device = self.embed_proprio.weight.device
        dtype = self.embed_proprio.weight.dtype
        cache = [torch.zeros(num_envs, dtype=torch.long, device=device)]
        for block in self.blocks:
            h = block.attn.num_heads
            shape = [num_envs, self.context, 2, h, self.width // h]
            cache += [torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device)]
        return cache

    @torch.jit.export
    def step(self, cache: List[Tensor], proprio: Tensor, point_tokens: Tensor, reset: Tensor) -> Tensor:
        """The next actions ``(N, 23)`` (scaled) of N envs, one step each, from
        their caches (updated in place): ``proprio (N, 23)`` scaled,
        ``point_tokens (N, d)``, ``reset (N,)`` bool: the env's episode starts
        at this step (its cached steps are forgotten). Equals the last step of
        ``forward_tokens`` over each env's episode so far (relative variant only)."""
        if not self.relative:
            raise RuntimeError("init_cache/step need HopPolicy(positions='relative'); the window variant cannot cache")
        steps = cache[0]
        steps.masked_fill_(reset, 0)
        bias = self._step_bias(steps)
        slot = steps % self.context  # the ring buffer's slot of this step: it held step t - context
        x = self._embed(proprio.unsqueeze(1), point_tokens.unsqueeze(1))  # (N, 2, d)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block.step(x, cache[1 + 2 * i], cache[2 + 2 * i], slot, bias, i == last)
        steps.add_(1)
        return self._act(x[:, 0])

    def _step_bias(self, steps: Tensor) -> Tensor:
        """``_band_bias``'s two rows for the current step of each env, over the
        ring buffer's ``2 context`` tokens: ``(N, H, 2, 2C)``. Slot ``j`` holds
        step ``t - ((t - j) mod C)`` (``t = steps``), stale (``-inf``) if that is
        before the episode's start; the proprio query never sees its own step's
        points key."""
        c = self.context
        slots = torch.arange(c, device=steps.device)
        distance = ((steps[:, None] - slots[None, :]) % c).repeat_interleave(2, dim=1)  # (N, 2C)
        fresh = distance <= steps[:, None]
        points_key = (torch.arange(2 * c, device=steps.device) % 2 == 1)[None, :]
        allowed = torch.stack((fresh & ~((distance == 0) & points_key), fresh), dim=1)  # (N, 2, 2C)
        return self._alibi(distance[:, None, :], allowed.unsqueeze(1))


def masked_l1(pred: Tensor, target: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """Paper Eq. 2: mean absolute error over the valid steps' actions.

    ``pred, target (B, T, A)``, ``mask (B, T)`` bool or None."""
    err = (pred - target).abs()
    if mask is None:
        return err.mean()
    weights = mask.to(err.dtype).unsqueeze(-1)
    return (err * weights).sum() / (weights.sum() * err.shape[-1]).clamp_min(1.0)
