"""Rollout storage for PPO and its variants: one horizon of N envs, plus
the history the causal policy's windows need, and GAE.

The policy reads each step through a window of its last ``context`` steps.
Storing a window per sample would repeat each step's cloud ``context``
times; instead the storage keeps, per env, one timeline of ``context − 1 +
horizon`` steps (the ``context − 1`` steps before this rollout, then the
rollout's), with each step's episode number. The window of sample (n, t) is
``timeline[n, t : t + context]``, masked to the steps of the same episode.
An update can then encode each distinct step's cloud once and gather the
tokens into windows (REFERENCE.md, "Measured on this kind of machine").
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["RolloutStorage", "gae"]


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    dones: np.ndarray,
    timeouts: np.ndarray,
    last_values: np.ndarray,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation (Schulman et al. 2016) over (T, N) arrays.

    ``dones[t]``: the episode ended at step t (terminated or truncated);
    ``timeouts[t]``: it ended by the time limit, so the return is bootstrapped
    with the value of the step's own state, r_t + γ V(s_t), as rsl_rl and the
    HOP code do (the next state is already the reset one).
    Returns (advantages, returns), both (T, N).
    """
    rewards = rewards + gamma * values * timeouts
    T = rewards.shape[0]
    adv = np.zeros_like(rewards)
    last = np.zeros_like(last_values)
    for t in reversed(range(T)):
        next_values = last_values if t == T - 1 else values[t + 1]
        alive = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_values * alive - values[t]
        last = delta + gamma * lam * alive * last
        adv[t] = last
    return adv, adv + values


class RolloutStorage:
    """Transitions (N envs × T steps) and each env's window timeline (module doc).

    Per step (N, ...): scaled proprio (23), cloud (P, 3), critic state (D),
    action (23, the unclamped sample), its log-probability, value, reward,
    done, timeout.
    """

    def __init__(self, num_envs: int, horizon: int, context: int, num_points: int, state_dim: int, num_joints: int):
        self.n, self.t, self.c = num_envs, horizon, context
        span = context - 1 + horizon
        self.proprio = np.zeros((num_envs, span, num_joints), np.float32)
        self.points = np.zeros((num_envs, span, num_points, 3), np.float32)
        self.episode = np.full((num_envs, span), -1, np.int64)  # -1: before anything was seen
        self.state = np.zeros((horizon, num_envs, state_dim), np.float32)
        self.actions = np.zeros((horizon, num_envs, num_joints), np.float32)
        self.log_probs = np.zeros((horizon, num_envs), np.float32)
        self.values = np.zeros((horizon, num_envs), np.float32)
        self.rewards = np.zeros((horizon, num_envs), np.float32)
        self.dones = np.zeros((horizon, num_envs), np.float32)
        self.timeouts = np.zeros((horizon, num_envs), np.float32)
        self.step = 0
        self._episode_counter = np.zeros(num_envs, np.int64)
        self.advantages: np.ndarray | None = None
        self.returns: np.ndarray | None = None

    # ------------------------------------------------------------------ rollout
    def observe(self, proprio: np.ndarray, points: np.ndarray, restarted: np.ndarray) -> None:
        """Add step ``self.step``'s observation; ``restarted (N,)`` marks envs whose episode starts here."""
        k = self.c - 1 + self.step
        self._episode_counter += np.asarray(restarted, dtype=np.int64)
        self.proprio[:, k], self.points[:, k], self.episode[:, k] = proprio, points, self._episode_counter

    def window(self, k: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The windows ending at rollout step ``k`` (default: the current one) for
        every env: proprio (N, C, 23), points (N, C, P, 3), mask (N, C)."""
        k = self.step if k is None else k
        sl = slice(k, k + self.c)
        episode = self.episode[:, sl]
        mask = episode == episode[:, -1:]
        return self.proprio[:, sl], self.points[:, sl], mask

    def add(self, state, actions, log_probs, values, rewards, dones, timeouts) -> None:
        """Step ``self.step``'s transition, then advance."""
        s = self.step
        self.state[s], self.actions[s], self.log_probs[s], self.values[s] = state, actions, log_probs, values
        self.rewards[s], self.dones[s], self.timeouts[s] = rewards, dones, timeouts
        self.step += 1

    @property
    def full(self) -> bool:
        return self.step == self.t

    def compute_returns(self, last_values: np.ndarray, gamma: float, lam: float) -> None:
        self.advantages, self.returns = gae(
            self.rewards, self.values, self.dones, self.timeouts, last_values, gamma, lam
        )

    def next_rollout(self) -> None:
        """Keep the last ``context − 1`` steps as the next rollout's history."""
        keep = self.c - 1
        if keep:
            self.proprio[:, :keep] = self.proprio[:, -keep:]
            self.points[:, :keep] = self.points[:, -keep:]
            self.episode[:, :keep] = self.episode[:, -keep:]
        self.step = 0

    # ------------------------------------------------------------------ checkpoints
    _TIMELINE = ("proprio", "points", "episode")
    _TRANSITIONS = ("state", "actions", "log_probs", "values", "rewards", "dones", "timeouts")

    def state_dict(self) -> dict[str, np.ndarray | int]:
        """What the next steps read: the filled part of each timeline (between
        rollouts, the ``context − 1`` steps of history the next rollout's
        windows start from), the rollout's transitions so far, the step and
        the per-env episode counters. The rest is written before it is read;
        advantages and returns are recomputed at the rollout's end."""
        filled = self.c - 1 + self.step
        out: dict[str, np.ndarray | int] = {"step": self.step, "episode_counter": self._episode_counter.copy()}
        out.update({name: getattr(self, name)[:, :filled].copy() for name in self._TIMELINE})
        out.update({name: getattr(self, name)[:self.step].copy() for name in self._TRANSITIONS})
        return out

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state_dict()`` of a storage of the same sizes (arrays or tensors)."""
        self.step = int(state["step"])
        self._episode_counter[:] = np.asarray(state["episode_counter"])
        filled = self.c - 1 + self.step
        for name in self._TIMELINE:
            getattr(self, name)[:, :filled] = np.asarray(state[name])
        for name in self._TRANSITIONS:
            getattr(self, name)[:self.step] = np.asarray(state[name])

    # ------------------------------------------------------------------ update
    def minibatches(self, num_minibatches: int, generator: torch.Generator):
        """Minibatches of whole envs (all T steps of each), so a minibatch encodes
        each of its envs' ``C − 1 + T`` clouds once. Yields dicts of tensors:
        ``proprio (E, C−1+T, 23)``, ``points (E, C−1+T, P, 3)``, ``mask (E, T, C)``,
        and per sample (E, T, ...) ``state``, ``actions``, ``log_probs``, ``values``,
        ``advantages``, ``returns``."""
        assert self.advantages is not None, "compute_returns first"
        order = torch.randperm(self.n, generator=generator).numpy()
        per = max(1, self.n // num_minibatches)
        window = np.arange(self.c)[None, :] + np.arange(self.t)[:, None]  # (T, C) timeline index of each window
        for start in range(0, self.n, per):
            envs = order[start:start + per]
            ep = self.episode[envs]  # (E, span)
            mask = ep[:, window] == ep[:, window[:, -1]][:, :, None]  # (E, T, C)
            per_sample = lambda a: torch.from_numpy(np.ascontiguousarray(np.swapaxes(a[:, envs], 0, 1)))  # noqa: E731
            yield {
                "proprio": torch.from_numpy(self.proprio[envs]),
                "points": torch.from_numpy(self.points[envs]),
                "mask": torch.from_numpy(mask),
                "state": per_sample(self.state),
                "actions": per_sample(self.actions),
                "log_probs": per_sample(self.log_probs),
                "values": per_sample(self.values),
                "advantages": per_sample(self.advantages.astype(np.float32)),
                "returns": per_sample(self.returns.astype(np.float32)),
            }


def gather_windows(timeline: Tensor, context: int, horizon: int) -> Tensor:
    """(E, C−1+T, ...) -> (E, T, C, ...): the window of every step, by indexing (gradients add up)."""
    index = torch.arange(context, device=timeline.device)[None, :] + torch.arange(horizon, device=timeline.device)[:, None]  # (T, C)
    return timeline[:, index]
