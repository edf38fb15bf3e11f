"""DAPG (Rajeswaran et al. 2018, "Learning Complex Dexterous Manipulation with
Deep RL and Demonstrations"), on this project's PPO: after a behaviour-cloning
warm start, the policy gradient is augmented with the demonstrations'
likelihood gradient, each demonstration weighted as a transition of
advantage λ0·λ1^k·max(A) at iteration k (mjrl's weighting; REFERENCE.md:
λ0 = 0.01, λ1 = 0.95). The demo weight is logged as ``demo_weight``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .actor_critic import ActorCritic
from .demos import Demonstrations
from .ppo import PPO, PPOConfig
from .storage import RolloutStorage

__all__ = ["DAPG", "DAPGConfig", "demo_weight"]


@dataclass
class DAPGConfig:
    lambda0: float = 0.01  # REFERENCE.md (mjrl)
    lambda1: float = 0.95  # REFERENCE.md (mjrl)
    demo_batch: int = 256  # demonstration windows per gradient step
    bc_steps: int = 500  # behaviour-cloning warm start (gradient steps of Eq. 2's L1) before RL
    bc_lr: float = 1e-4  # the pretraining learning rate (paper)


def demo_weight(iteration: int, max_advantage: float, lambda0: float, lambda1: float) -> float:
    """The demonstrations' advantage at iteration k: λ0 · λ1^k · max(A)."""
    return lambda0 * lambda1**iteration * max(max_advantage, 0.0)


class DAPG(PPO):
    """PPO whose actor loss also raises the demonstrations' likelihood (module doc)."""

    def __init__(self, ac: ActorCritic, config: PPOConfig, demos: Demonstrations, dapg: DAPGConfig, seed: int = 0):
        super().__init__(ac, config, seed)
        self.demos, self.dapg = demos, dapg
        self.iteration = 0
        self.weight = 0.0

    def state_dict(self) -> dict:
        """PPO's, the iteration (the demo weight's decay) and the demo sampler."""
        return {**super().state_dict(), "iteration": self.iteration, "weight": self.weight, "demos": self.demos.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.iteration, self.weight = int(state["iteration"]), float(state["weight"])
        self.demos.load_state_dict(state["demos"])

    def behaviour_clone(self) -> list[float]:
        """The warm start: ``bc_steps`` AdamW steps of masked L1 on demo windows; the losses."""
        from hop_train.model import masked_l1

        opt = torch.optim.AdamW(self.ac.actor.parameters(), lr=self.dapg.bc_lr, weight_decay=1e-2)
        dev = next(self.ac.parameters()).device
        losses = []
        for _ in range(self.dapg.bc_steps):
            b = {k: v.to(dev) for k, v in self.demos.window_batch(self.dapg.demo_batch).items()}
            loss = masked_l1(self.ac.actor(b["proprio"], b["points"], b["mask"]), b["action"], b["mask"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.ac.actor.parameters(), 0.25)  # paper's clip
            opt.step()
            losses.append(float(loss.detach()))
        return losses

    def update(self, storage: RolloutStorage) -> dict[str, float]:
        self.weight = demo_weight(self.iteration, float(storage.advantages.max()), self.dapg.lambda0, self.dapg.lambda1)
        out = super().update(storage)
        self.iteration += 1
        out["demo_weight"] = self.weight
        return out

    def extra_actor_loss(self) -> torch.Tensor | None:
        if self.weight <= 0.0:
            return None
        dev = next(self.ac.parameters()).device
        b = {k: v.to(dev) for k, v in self.demos.window_batch(self.dapg.demo_batch).items()}
        tokens = self.ac.encode(b["points"])
        mean = self.ac.mean(b["proprio"], tokens, b["mask"])
        log_prob = self.ac.distribution(mean).log_prob(b["action"][:, -1]).sum(-1)
        return -self.weight * log_prob.mean()
