"""Actor and critic for finetuning the HOP policy with reinforcement learning.

The actor is the pretrained ``HopPolicy`` itself (the whole transformer is
finetuned, paper Sec. 3.4) with a state-independent Gaussian: mean = the
policy's action for the window's last step (scaled joint targets; for the
relative-position policy, its cached incremental step), log-std a
learned vector (HOP modification 1: initial std 0.1, 0.5 for Open Cabinet in
the public code). The critic is a fresh MLP (512-256-128-1, ELU, as the HOP
code) on the privileged state and the policy's point-cloud token of the
current step; HOP modification 3 detaches that token, so no value gradient
reaches the tokenizer (``detach_critic_tokens``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from hop_train.model import HopPolicy

__all__ = ["ActorCritic", "RunningMeanStd"]


class RunningMeanStd(nn.Module):
    """Running mean and variance (parallel Welford), as a module so it is checkpointed.

    Normalises the critic's state inputs and the value targets (PPO's
    "observation and value normalisation"); ``clip`` bounds the normalised values."""

    def __init__(self, shape: tuple[int, ...] = (), clip: float = 10.0, epsilon: float = 1e-8) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(epsilon, dtype=torch.float64))
        self.clip, self.epsilon = clip, epsilon

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        x = x.reshape(-1, *self.mean.shape).to(torch.float64)
        mean, var, n = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta, total = mean - self.mean, self.count + n
        self.mean += delta * n / total
        self.var = (self.var * self.count + var * n + delta**2 * self.count * n / total) / total
        self.count = total

    def normalize(self, x: Tensor) -> Tensor:
        std = torch.sqrt(self.var + self.epsilon).to(x.dtype)
        return torch.clamp((x - self.mean.to(x.dtype)) / std, -self.clip, self.clip)

    def denormalize(self, x: Tensor) -> Tensor:
        return x * torch.sqrt(self.var + self.epsilon).to(x.dtype) + self.mean.to(x.dtype)


class ActorCritic(nn.Module):
    """``HopPolicy`` actor + Gaussian + MLP critic (module doc).

    Args:
        policy: the (pretrained or fresh) HopPolicy.
        state_dim: the critic's privileged state size (without the point token).
        init_std: initial action std in scaled units (``PPOConfig.init_std``: HOP's 0.1; 0.5 Open Cabinet).
        detach_critic_tokens: HOP modification 3 (``PPOConfig.detach_critic_tokens``).
        critic_hidden: the critic MLP's hidden sizes (HOP: 512, 256, 128).
    """

    def __init__(
        self,
        policy: HopPolicy,
        state_dim: int,
        init_std: float,
        detach_critic_tokens: bool,
        critic_hidden: tuple[int, ...] = (512, 256, 128),
    ) -> None:
        super().__init__()
        self.actor = policy
        self.log_std = nn.Parameter(torch.full((policy.num_joints,), math.log(init_std)))
        layers: list[nn.Module] = []
        size = state_dim + policy.width
        for hidden in critic_hidden:
            layers += [nn.Linear(size, hidden), nn.ELU()]
            size = hidden
        layers.append(nn.Linear(size, 1))
        self.critic = nn.Sequential(*layers)
        self.state_norm = RunningMeanStd((state_dim,))
        self.value_norm = RunningMeanStd(())
        self.detach_critic_tokens = detach_critic_tokens

    def actor_parameters(self) -> list[nn.Parameter]:
        return [*self.actor.parameters(), self.log_std]

    def critic_parameters(self) -> list[nn.Parameter]:
        return list(self.critic.parameters())

    def encode(self, points: Tensor) -> Tensor:
        """Point tokens ``(..., d)`` of clouds ``(..., P, 3)``."""
        return self.actor.encode_points(points)

    def mean(self, proprio: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
        """Action means (B, 23) of windows ``proprio (B, C, 23)``, ``tokens (B, C, d)``, ``mask (B, C)``."""
        return self.actor.forward_tokens(proprio, tokens, mask, last_step_only=True)[:, 0]

    @property
    def incremental(self) -> bool:
        """The actor caches keys and values (``HopPolicy(positions="relative")``):
        rollouts use ``step_mean`` instead of recomputing windows."""
        return self.actor.relative

    @property
    def window_steps(self) -> int:
        """Steps a mean depends on (``HopPolicy.receptive_field``): the
        ``RolloutStorage`` context for which the update's windows reproduce the
        rollout's means. The window variant: its context. The relative variant:
        ``num_layers * (context - 1) + 1``; a storage with fewer steps makes the
        update score a truncated history (rollout and update then differ)."""
        return self.actor.receptive_field

    def init_cache(self, num_envs: int) -> list[Tensor]:
        """Fresh per-env key/value caches for ``step_mean`` (``HopPolicy.init_cache``)."""
        return self.actor.init_cache(num_envs)

    def step_mean(self, cache: list[Tensor], proprio: Tensor, token: Tensor, reset: Tensor) -> Tensor:
        """Action means (N, 23) of one step per env from its cache (``HopPolicy.step``):
        ``proprio (N, 23)``, ``token (N, d)``, ``reset (N,)`` bool (the episode starts here)."""
        return self.actor.step(cache, proprio, token, reset)

    def distribution(self, mean: Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean))

    def value(self, state: Tensor, token: Tensor) -> Tensor:
        """Normalised value (B,) of ``state (B, D)`` (raw) and the current step's point ``token (B, d)``."""
        if self.detach_critic_tokens:
            token = token.detach()
        return self.critic(torch.cat([self.state_norm.normalize(state), token], dim=-1)).squeeze(-1)
