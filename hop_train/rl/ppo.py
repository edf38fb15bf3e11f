"""PPO (Schulman et al. 2017) with HOP's settings and its three modifications.

HOP finetunes the whole pretrained transformer with PPO (paper Sec. 3.4;
settings from its public code, an rsl_rl derivative): 512 envs, horizon 10,
minibatch 512, 1 epoch, Adam lr 1e-5 with an adaptive-KL learning rate
(target 0.02), γ 0.99, λ 0.95, clip 0.2, entropy 0, grad norm 1, reward
scale 0.1, observation and value normalisation, clipped value loss with
coefficient 4, time-outs bootstrapped. The modifications, each a switch:

1. ``init_std`` 0.1 (0.5 for Open Cabinet): a pretrained policy's actions are
   already good; wide exploration noise would destroy them;
2. ``critic_warmup_steps`` 200: the fresh critic learns first, the actor's
   loss is zero (its weights do not move) for that many gradient steps;
3. ``detach_critic_tokens``: the critic reads the point-cloud tokens
   detached, so the value loss does not reshape the pretrained tokenizer.

``PPO.update(storage)`` runs the epochs and minibatches over one rollout and
returns the diagnostics CleanRL logs (approx-KL, clip fraction, explained
variance, losses, std, learning rate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .actor_critic import ActorCritic
from .storage import RolloutStorage, gather_windows

__all__ = ["PPO", "PPOConfig", "adaptive_kl_lr"]


@dataclass
class PPOConfig:
    """Every hyperparameter, with HOP's value (public code) as the default."""

    num_envs: int = 512  # HOP (Grasp, Cabinet); 1365 for Throw
    horizon: int = 10  # steps per env per rollout
    minibatch_size: int = 512  # samples per gradient step (HOP: = num_envs)
    epochs: int = 1  # passes over a rollout
    lr: float = 1e-5  # initial Adam learning rate
    adaptive_kl: bool = True  # rsl_rl's KL-adaptive learning rate
    kl_target: float = 0.02  # desired approx-KL per minibatch
    lr_min: float = 1e-6  # bounds of the adaptive learning rate (ours: the public code's are 1e-5 ... 1e-2)
    lr_max: float = 1e-3
    gamma: float = 0.99  # discount
    lam: float = 0.95  # GAE λ
    clip: float = 0.2  # ratio and value clipping
    value_coef: float = 4.0  # critic loss coefficient
    entropy_coef: float = 0.0
    max_grad_norm: float = 1.0
    reward_scale: float = 0.1
    init_std: float = 0.1  # modification 1 (0.5 for Open Cabinet)
    critic_warmup_steps: int = 200  # modification 2 (0: off)
    detach_critic_tokens: bool = True  # modification 3
    normalize_values: bool = True


def adaptive_kl_lr(lr: float, kl: float, target: float, lr_min: float, lr_max: float) -> float:
    """rsl_rl's rule: KL above twice the target → lr / 1.5; below half → lr × 1.5; bounded."""
    if kl > 2.0 * target:
        return max(lr_min, lr / 1.5)
    if 0.0 < kl < 0.5 * target:
        return min(lr_max, lr * 1.5)
    return lr


class PPO:
    """The update step over a filled ``RolloutStorage`` (module doc)."""

    def __init__(self, ac: ActorCritic, config: PPOConfig, seed: int = 0) -> None:
        self.ac, self.cfg = ac, config
        self.lr = config.lr
        self.optimizer = torch.optim.Adam(ac.parameters(), lr=config.lr)
        self.gradient_steps = 0
        self.generator = torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict:
        """The update's own state (the optimiser's is checkpointed by Lightning):
        the adapted learning rate, the gradient-step count (critic warm-up
        progress) and the minibatch generator."""
        return {"lr": self.lr, "gradient_steps": self.gradient_steps, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.lr = float(state["lr"])
        self.gradient_steps = int(state["gradient_steps"])
        self.generator.set_state(torch.as_tensor(state["generator"]))

    @property
    def warming_up(self) -> bool:
        return self.gradient_steps < self.cfg.critic_warmup_steps

    def update(self, storage: RolloutStorage) -> dict[str, float]:
        cfg, ac = self.cfg, self.ac
        returns = torch.from_numpy(storage.returns.astype(np.float32))
        if cfg.normalize_values:
            ac.value_norm.update(returns.to(ac.value_norm.mean.device))
        num_minibatches = max(1, (storage.n * storage.t) // cfg.minibatch_size)
        stats: dict[str, list[float]] = {k: [] for k in ("approx_kl", "clip_fraction", "actor_loss", "value_loss", "entropy")}
        for _ in range(cfg.epochs):
            for mb in storage.minibatches(num_minibatches, self.generator):
                stats_mb = self._step(mb, storage)
                for k, v in stats_mb.items():
                    stats[k].append(v)
        values, rets = storage.values.ravel(), storage.returns.ravel()
        explained = 1.0 - np.var(rets - values) / max(np.var(rets), 1e-8)
        out = {k: float(np.mean(v)) for k, v in stats.items() if v}
        out.update(explained_variance=float(explained), lr=self.lr, action_std=float(ac.log_std.detach().exp().mean()),
                   gradient_steps=float(self.gradient_steps), warmup=float(self.warming_up))  # fmt: skip
        return out

    def extra_actor_loss(self) -> torch.Tensor | None:
        """A variant's additional actor loss (DAPG's demonstration term); none here."""
        return None

    def extra_loss(self, mb: dict[str, torch.Tensor]) -> torch.Tensor | float:
        """A variant's additional loss on the minibatch (AMP's discriminator); none here."""
        return 0.0

    def _step(self, mb: dict[str, torch.Tensor], storage: RolloutStorage) -> dict[str, float]:
        cfg, ac = self.cfg, self.ac
        dev = next(ac.parameters()).device
        mb = {k: v.to(dev) for k, v in mb.items()}
        e, s = mb["proprio"].shape[:2]
        t, c = storage.t, storage.c
        warmup = self.warming_up
        tokens = ac.encode(mb["points"])  # (E, S, d): each distinct step's cloud once
        state = mb["state"].reshape(e * t, -1)
        token_now = tokens[:, c - 1:].reshape(e * t, -1)
        values = ac.value(state, token_now)
        old_values = mb["values"].reshape(-1)
        target = mb["returns"].reshape(-1)
        if cfg.normalize_values:
            old_values, target = ac.value_norm.normalize(old_values), ac.value_norm.normalize(target)
        v_clipped = old_values + (values - old_values).clamp(-cfg.clip, cfg.clip)
        value_loss = torch.max((values - target) ** 2, (v_clipped - target) ** 2).mean()

        with torch.set_grad_enabled(not warmup):  # modification 2: the actor does not learn yet
            windows = gather_windows(tokens if not warmup else tokens.detach(), c, t).reshape(e * t, c, -1)
            proprio = gather_windows(mb["proprio"], c, t).reshape(e * t, c, -1)
            mean = ac.mean(proprio, windows, mb["mask"].reshape(e * t, c))
            dist = ac.distribution(mean)
            log_prob = dist.log_prob(mb["actions"].reshape(e * t, -1)).sum(-1)
            entropy = dist.entropy().sum(-1).mean()
            ratio = torch.exp(log_prob - mb["log_probs"].reshape(-1))
            adv = mb["advantages"].reshape(-1)
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            actor_loss = -torch.min(ratio * adv, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * adv).mean()
        loss = cfg.value_coef * value_loss
        if not warmup:
            loss = loss + actor_loss - cfg.entropy_coef * entropy
            extra = self.extra_actor_loss()
            if extra is not None:
                loss = loss + extra
        loss = loss + self.extra_loss(mb)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(ac.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.gradient_steps += 1
        with torch.no_grad():
            log_ratio = log_prob - mb["log_probs"].reshape(-1)
            approx_kl = float(((ratio - 1) - log_ratio).mean())  # Schulman's k3 estimator, as CleanRL
            clip_fraction = float(((ratio - 1).abs() > cfg.clip).float().mean())
        if cfg.adaptive_kl and not warmup:
            self.lr = adaptive_kl_lr(self.lr, approx_kl, cfg.kl_target, cfg.lr_min, cfg.lr_max)
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr
        return {"approx_kl": approx_kl, "clip_fraction": clip_fraction, "actor_loss": float(actor_loss.detach()),
                "value_loss": float(value_loss.detach()), "entropy": float(entropy.detach())}  # fmt: skip
