"""Collecting rollouts from a batched task env with the actor-critic.

Each step's cloud is encoded once (``encode_points``); the policy acts on
each env's window of its last ``context`` steps (proprio + point tokens,
masked at episode starts), samples from the Gaussian, and the env gets the
sample clamped to [−1, 1] (the HOP code's convention; the unclamped sample
is stored for the likelihood ratio).

A relative-position policy (``HopPolicy(positions="relative")``) is not
recomputed over windows: each env keeps a key/value cache and the policy
steps once per env per step (``ActorCritic.step_mean``; per-env resets where
an episode restarts). The update still recomputes windows from the
storage (``PPO``). At a rollout's start the caches are either

- rebuilt (``refresh_cache=True``, the default) with the current weights by
  stepping through the storage's history (its ``c − 1`` steps before the
  rollout, clouds re-encoded), so the rollout's means are the banded forward
  over that history and the rollout: with a storage of ``ac.window_steps``
  steps (the receptive field) they equal the update's windows exactly; with
  fewer (a storage of ``context`` steps) the update scores a shorter history
  than the rollout acted on;
- or carried over from the last rollout (``refresh_cache=False``): no
  history is re-encoded or replayed, but the keys and values of the steps
  before the rollout were computed with the weights before the last update,
  so the rollout's first steps act on slightly stale context (as recurrent
  PPO policies keep their hidden states across updates).

Replaying costs ``c − 1`` cached steps and cloud encodings per env per
rollout; with HOP's 10-step rollouts that is most of the collection's
policy time (docs/finetuning.md has the figures).

``action_space="moving_average"`` is the scratch-PPO baseline's action space
(REFERENCE.md): the env's target is α·action + (1 − α)·previous target, the
previous target starting at the joint angles where an episode starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .actor_critic import ActorCritic
from .ppo import PPOConfig
from .storage import RolloutStorage

__all__ = ["EpisodeStats", "RolloutCollector"]


@dataclass
class EpisodeStats:
    """Episodes that ended during a rollout."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    successes: list[bool] = field(default_factory=list)


class RolloutCollector:
    """Fills a ``RolloutStorage`` from ``env`` (a ``TaskVectorEnv``) with ``ac``."""

    def __init__(
        self,
        env,
        ac: ActorCritic,
        storage: RolloutStorage,
        config: PPOConfig,
        action_space: str = "absolute",
        ma_alpha: float | None = None,
        seed: int = 0,
        reward_fn=None,
        refresh_cache: bool = True,
    ) -> None:
        if action_space not in ("absolute", "moving_average"):
            raise ValueError(f"action_space must be 'absolute' or 'moving_average', got {action_space!r}")
        if action_space == "moving_average" and ma_alpha is None:
            raise ValueError("the moving-average action space needs ma_alpha (HopPPOModule's ma_alpha)")
        self.env, self.ac, self.storage = env, ac, storage
        self.reward_scale, self.action_space, self.ma_alpha = config.reward_scale, action_space, ma_alpha
        self.gamma, self.lam = config.gamma, config.lam
        # reward_fn(task_reward (N,), proprio_before (N, 23), proprio_after (N, 23)) -> (N,): AMP's mixing
        self.reward_fn = reward_fn
        self.refresh_cache = refresh_cache  # relative policy: rebuild or carry the caches (module doc)
        self.obs, _ = env.reset(seed=seed)
        self.restarted = np.ones(env.num_envs, dtype=bool)
        self.previous_target = self.obs["proprio"].astype(np.float64).copy()
        self.generator = torch.Generator().manual_seed(seed)
        self.tokens: torch.Tensor | None = None  # (N, C−1+T, d), the storage timeline's tokens (window policy)
        self.cache: list[torch.Tensor] | None = None  # per-env keys/values (relative policy)
        self.samples = 0

    def state_dict(self) -> dict:
        """The collector's own state between steps (the env and the storage
        save theirs): the latest observation, which envs restart, the
        moving-average previous targets, the sampling generator, the sample
        count, and a relative policy's caches when they are carried over
        (rebuilt ones are recomputed from the storage; so are the window
        policy's tokens)."""
        carried = self.cache is not None and not self.refresh_cache
        return {
            "obs": {k: v.copy() for k, v in self.obs.items()},
            "restarted": self.restarted.copy(),
            "previous_target": self.previous_target.copy(),
            "generator": self.generator.get_state(),
            "samples": self.samples,
            "cache": [c.clone() for c in self.cache] if carried else None,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state_dict()`` (arrays may come back as tensors)."""
        self.obs = {k: np.asarray(v).copy() for k, v in state["obs"].items()}
        self.restarted = np.asarray(state["restarted"]).copy()
        self.previous_target = np.asarray(state["previous_target"]).copy()
        self.generator.set_state(torch.as_tensor(state["generator"]))
        self.samples = int(state["samples"])
        if state["cache"] is not None:
            dev = next(self.ac.parameters()).device
            self.cache = [torch.as_tensor(c).to(dev) for c in state["cache"]]

    @torch.no_grad()
    def collect(self) -> EpisodeStats:
        st, ac, env = self.storage, self.ac, self.env
        dev = next(ac.parameters()).device
        on = lambda a: torch.from_numpy(a).to(dev)  # noqa: E731
        self._begin(on)
        stats = EpisodeStats()
        for k in range(st.t):
            obs = self.obs
            st.observe(obs["proprio"], obs["points"], self.restarted)
            token = ac.encode(on(obs["points"]))
            dist = ac.distribution(self._mean(k, token, on))
            action = _sample(dist, self.generator)
            log_prob = dist.log_prob(action).sum(-1)
            state = on(obs["state"])
            value = ac.value_norm.denormalize(ac.value(state, token)).cpu()
            action, log_prob = action.cpu(), log_prob.cpu()
            env_action = action.clamp(-1.0, 1.0).numpy().astype(np.float64)
            if self.action_space == "moving_average":
                start = self.restarted
                self.previous_target[start] = obs["proprio"][start]
                env_action = self.ma_alpha * env_action + (1.0 - self.ma_alpha) * self.previous_target
                self.previous_target = env_action
            ac.state_norm.update(state)
            self.obs, reward, terminated, truncated, info = env.step(env_action)
            done = terminated | truncated
            if self.reward_fn is not None:
                after = self.obs["proprio"].copy()
                for i in np.flatnonzero(done):  # the ended episode's last state, not the next one's first
                    after[i] = info["final_obs"][i]["proprio"]
                reward = self.reward_fn(reward, obs["proprio"], after)
            st.add(state.cpu().numpy(), action.numpy(), log_prob.numpy(), value.numpy(), reward * self.reward_scale,
                   done, truncated & ~terminated)  # fmt: skip
            if np.any(done):
                final = info["final_info"]
                for i in np.flatnonzero(done):
                    stats.returns.append(float(final["episode_return"][i]))
                    stats.lengths.append(int(final["episode_length"][i]))
                    stats.successes.append(bool(final["episode_success"][i]))
            self.restarted = done
            self.samples += env.num_envs
        token = ac.encode(on(self.obs["points"]))
        last = ac.value_norm.denormalize(ac.value(on(self.obs["state"]), token)).cpu()
        st.compute_returns(last.numpy(), self.gamma, self.lam)
        return stats

    def _begin(self, on) -> None:
        """The history kept from the last rollout, re-encoded with the current
        weights: the window policy's token timeline, or the relative policy's
        caches rebuilt by stepping through it (resets where its episodes
        start), unless they are carried over (module doc)."""
        st, ac = self.storage, self.ac
        if ac.incremental and not self.refresh_cache and self.cache is not None:
            return
        keep = st.c - 1
        history = ac.encode(on(st.points[:, :keep]))
        if not ac.incremental:
            self.tokens = torch.zeros(st.n, keep + st.t, history.shape[-1], device=history.device)
            self.tokens[:, :keep] = history
            return
        self.cache = ac.init_cache(st.n)
        episode = st.episode[:, :keep]
        starts = np.ones_like(episode, dtype=bool)
        starts[:, 1:] = episode[:, 1:] != episode[:, :-1]
        for j in range(keep):
            if (episode[:, j] >= 0).any():  # nothing seen before the first rollout: skip
                ac.step_mean(self.cache, on(st.proprio[:, j]), history[:, j], on(starts[:, j]))

    def _mean(self, k: int, token: torch.Tensor, on) -> torch.Tensor:
        """Action means (N, 23) at rollout step ``k`` (already observed), ``token``
        its point tokens: one cached step per env, or each env's masked window."""
        st, ac = self.storage, self.ac
        c = st.c
        if ac.incremental:
            return ac.step_mean(self.cache, on(st.proprio[:, c - 1 + k]), token, on(self.restarted))
        self.tokens[:, c - 1 + k] = token
        proprio, _, mask = st.window()
        return ac.mean(on(proprio), self.tokens[:, k:k + c], on(mask))



def _sample(dist: torch.distributions.Normal, generator: torch.Generator) -> torch.Tensor:
    """A seeded sample from the Gaussian (``Normal.sample`` takes no generator);
    the noise is drawn on the CPU, so a run samples the same on any device."""
    noise = torch.randn(dist.loc.shape, generator=generator, dtype=dist.loc.dtype).to(dist.loc.device)
    return dist.loc + dist.scale * noise
