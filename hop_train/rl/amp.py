"""AMP (Peng et al. 2021, "Adversarial Motion Priors"), on this project's PPO:
a discriminator tells demonstration transitions from the policy's, and the
policy is rewarded for transitions it mistakes for demonstrations.

- Transitions are pairs of consecutive scaled joint states (φ_t, φ_t+1)
  (the robot's motion "style"; the task reward covers the object).
- Discriminator: MLP 256-128 (ReLU) trained with AMP's least-squares loss,
  demonstrations → +1, policy → −1, plus a gradient penalty on the
  demonstrations (weight ``gradient_penalty``, AMP: 10).
- Style reward: max(0, 1 − 0.25 (D(φ_t, φ_t+1) − 1)²); the reward PPO sees
  is ``task_weight · task + style_weight · style`` (AMP: 0.5 / 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hop_robot.embodiment import spec

from .actor_critic import ActorCritic
from .demos import Demonstrations
from .ppo import PPO, PPOConfig
from .storage import RolloutStorage

__all__ = ["AMP", "AMPConfig", "Discriminator", "gradient_penalty", "style_reward"]


@dataclass
class AMPConfig:
    task_weight: float = 0.5  # AMP paper
    style_weight: float = 0.5  # AMP paper
    gradient_penalty: float = 10.0  # AMP paper (w_gp)
    lr: float = 1e-4  # discriminator Adam learning rate
    batch: int = 512  # transitions per discriminator step (each side)


class Discriminator(nn.Module):
    def __init__(self, features: int = 2 * spec.NUM_JOINTS, hidden: tuple[int, ...] = (256, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size = features
        for h in hidden:
            layers += [nn.Linear(size, h), nn.ReLU()]
            size = h
        layers.append(nn.Linear(size, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def style_reward(d: torch.Tensor) -> torch.Tensor:
    """AMP's style reward from discriminator outputs: max(0, 1 − 0.25 (d − 1)²)."""
    return torch.clamp(1.0 - 0.25 * (d - 1.0) ** 2, min=0.0)


def gradient_penalty(disc: Discriminator, demo: torch.Tensor) -> torch.Tensor:
    """Mean squared norm of ∂D/∂x at the demonstration transitions."""
    demo = demo.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(disc(demo).sum(), demo, create_graph=True)
    return (grad**2).sum(-1).mean()


class AMP(PPO):
    """PPO on task + style rewards, and the discriminator's training (module doc)."""

    def __init__(self, ac: ActorCritic, config: PPOConfig, demos: Demonstrations, amp: AMPConfig, seed: int = 0):
        super().__init__(ac, config, seed)
        self.demos, self.amp = demos, amp
        dev = next(ac.parameters()).device
        self.disc = Discriminator().to(dev)
        self.disc_optimizer = torch.optim.Adam(self.disc.parameters(), lr=amp.lr)

    def state_dict(self) -> dict:
        """PPO's, the discriminator's optimiser (its weights are the module's)
        and the demo sampler."""
        return {**super().state_dict(), "disc_optimizer": self.disc_optimizer.state_dict(), "demos": self.demos.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.disc_optimizer.load_state_dict(state["disc_optimizer"])
        self.demos.load_state_dict(state["demos"])

    @torch.no_grad()
    def reward(self, task: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """The reward PPO sees for transitions ``before → after`` (scaled proprio, (N, 23))."""
        dev = next(self.disc.parameters()).device
        x = torch.from_numpy(np.concatenate([before, after], axis=1).astype(np.float32)).to(dev)
        style = style_reward(self.disc(x)).cpu().numpy()
        return self.amp.task_weight * task + self.amp.style_weight * style

    def update(self, storage: RolloutStorage) -> dict[str, float]:
        out = super().update(storage)
        policy = self._policy_transitions(storage)
        steps = max(1, (storage.n * storage.t) // self.cfg.minibatch_size)
        accuracy, losses = [], []
        dev = next(self.disc.parameters()).device
        for _ in range(steps):
            demo = self.demos.transition_batch(self.amp.batch).to(dev)
            pick = torch.randint(0, len(policy), (self.amp.batch,), generator=self.generator)
            mine = policy[pick].to(dev)
            d_demo, d_mine = self.disc(demo), self.disc(mine)
            loss = ((d_demo - 1) ** 2).mean() + ((d_mine + 1) ** 2).mean()
            loss = loss + self.amp.gradient_penalty * gradient_penalty(self.disc, demo)
            self.disc_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.disc_optimizer.step()
            losses.append(float(loss.detach()))
            accuracy.append(float(0.5 * ((d_demo > 0).float().mean() + (d_mine < 0).float().mean())))
        out["disc_loss"], out["disc_accuracy"] = float(np.mean(losses)), float(np.mean(accuracy))
        return out

    @staticmethod
    def _policy_transitions(storage: RolloutStorage) -> torch.Tensor:
        """(M, 46) consecutive proprio pairs of the rollout, within one episode."""
        c = storage.c
        a = slice(c - 1, c - 2 + storage.t)
        b = slice(c, c - 1 + storage.t)
        same = storage.episode[:, a] == storage.episode[:, b]
        pairs = np.concatenate([storage.proprio[:, a], storage.proprio[:, b]], axis=-1)[same]
        return torch.from_numpy(pairs)
