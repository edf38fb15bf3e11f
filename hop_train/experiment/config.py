"""One experiment scale: every size the run uses, in one file per scale
(``experiments/smoke.yaml``, ``cpu.yaml``, ``gpu.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ExperimentConfig", "load_config"]


@dataclass
class ExperimentConfig:
    scale: str = "smoke"  # names the results folder: results/<scale>/
    work_dir: str = "out/experiment"  # stores, checkpoints (not committed): <work_dir>/<scale>/
    results_dir: str = "results"  # small run files (committed): <results_dir>/<scale>/
    seeds: list[int] = field(default_factory=lambda: [0])
    # ---- policy architecture (prior, BC and PPO share it)
    width: int = 32
    num_layers: int = 1
    num_heads: int = 2
    # ---- 1. the prior
    videos: int = 2  # synthetic human videos
    real_hand_videos: int = 0  # more videos whose hands are real poses from ``real_hands``' photos
    real_hands: str = "../shared/data"  # photos (a folder or file), relative to the project root
    lifted_videos: list[str] = field(default_factory=list)  # folders or files of lifted real videos
    #   (``hop-data lift`` / ``hop-data import`` output, ``*.hoi.npz``), relative to the project root
    attempts: int = 8  # retargeting attempts per video (paper: 700)
    pretrain_steps: int = 10
    pretrain_batch: int = 16
    # ---- 2. BC with few demonstrations
    bc_tasks: list[str] = field(default_factory=lambda: ["OpenCabinet-v0"])
    demo_counts: list[int] = field(default_factory=lambda: [2])
    bc_steps: int = 10
    bc_batch: int = 16
    bc_long_steps: int = 0  # > 0: the largest count's BC again with this many steps (``bc_long`` stage)
    bc_long_seeds: list[int] = field(default_factory=lambda: [0])
    bc_long_tasks: list[str] | None = None  # default: bc_tasks
    # ---- 3. PPO and baselines
    ppo_tasks: list[str] = field(default_factory=lambda: ["GraspLift-v0"])
    ppo_methods: list[str] = field(default_factory=lambda: ["hop", "scratch", "dapg", "amp"])
    ppo_seeds: list[int] = field(default_factory=lambda: [0])  # PPO and ablation runs (paper protocol: 2)
    ppo_envs: int = 4
    ppo_horizon: int = 5
    ppo_minibatches: int = 1  # per rollout
    ppo_samples: int = 40  # sample budget per run (same for every method)
    ppo_episode_steps: int = 50
    ppo_lr: float = 1e-5  # HOP's initial learning rate (adaptive KL)
    dapg_bc_steps: int = 5
    demos_for_baselines: int = 2  # demonstrations DAPG and AMP get
    # ---- 4. ablation (HOP PPO with one modification off)
    ablations: list[str] = field(default_factory=lambda: ["init_std", "critic_warmup", "detach_critic_tokens"])
    # ---- evaluation
    eval_envs: int = 4
    eval_episode_steps: int = 50
    threads: int = 0
    # ---- how the run uses the machine
    workers: int = 1  # BC units trained at once, each on one thread (2 on a 2-core machine: a unit's
    #                   single-threaded parts, its start and evaluations, overlap the other's training)

    @property
    def long_tasks(self) -> list[str]:
        """The tasks of the ``bc_long`` stage: ``bc_long_tasks``, else ``bc_tasks``."""
        return self.bc_long_tasks if self.bc_long_tasks is not None else self.bc_tasks

    @property
    def work(self) -> Path:
        return Path(self.work_dir) / self.scale

    @property
    def results(self) -> Path:
        return Path(self.results_dir) / self.scale


def load_config(path: str | Path) -> ExperimentConfig:
    """Read a scale's YAML; unknown keys are refused with their names."""
    with open(path) as f:
        data: dict[str, Any] = yaml.safe_load(f) or {}
    known = {f.name for f in fields(ExperimentConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown experiment keys {unknown}; known: {sorted(known)}")
    return ExperimentConfig(**data)
