"""Demonstrations for the demo-using baselines (DAPG, AMP): random batches of
windows or transitions from a trajectory store (``hop-train demos``, or robot
recordings imported with ``hop-data import recording``), read through the
pretraining dataset (``hop_train.dataset``): scaled joints, masked windows."""

from __future__ import annotations

import numpy as np
import torch

from hop_train.dataset import StoreArrays, WindowDataset

__all__ = ["Demonstrations"]


class Demonstrations:
    """A demo store opened for sampling (refused if it is for another robot)."""

    def __init__(self, store: str, context: int, seed: int = 0) -> None:
        self.arrays = StoreArrays(store)
        self.windows = WindowDataset(self.arrays, context=context)
        self.rng = np.random.default_rng(seed)
        starts, ends = self.arrays.episode_starts, self.arrays.episode_ends
        # rows t whose successor t + 1 is in the same episode
        self._transition_rows = np.concatenate([np.arange(s, e - 1) for s, e in zip(starts, ends)])

    def state_dict(self) -> dict:
        """The sampler's generator (the store itself is reopened from its path)."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]

    def __len__(self) -> int:
        return len(self.windows)

    def window_batch(self, size: int) -> dict[str, torch.Tensor]:
        """``size`` random windows: proprio (B, C, 23), points (B, C, P, 3), action (B, C, 23), mask (B, C)."""
        return self.windows.__getitems__(self.rng.integers(0, len(self.windows), size))

    def transition_batch(self, size: int) -> torch.Tensor:
        """``size`` random (scaled proprio_t, proprio_t+1) pairs, (B, 46)."""
        rows = self.rng.choice(self._transition_rows, size)
        p = self.arrays.proprio
        return torch.from_numpy(np.concatenate([p[rows], p[rows + 1]], axis=1))
