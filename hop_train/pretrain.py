"""Pretraining the base policy on retargeted trajectories (paper Sec. 3.3, Eq. 2).

- ``HopPretrainModule``: a LightningModule around ``HopPolicy``. Its typed
  constructor is the config (the policy's arguments flattened in, then the
  optimiser's): L1 over all valid actions of each window (Eq. 2), AdamW
  lr 1e-4, weight decay 1e-2 on matrix weights only (``HopPolicy.param_groups``).
  Gradient clipping (0.25) is the Trainer's ``gradient_clip_val``.
  Logs ``train/loss``, ``train/grad_norm``, ``train/lr``; ``val/loss`` (Eq. 2 on
  held-out source videos, scaled units), ``val/arm_l1_rad``, ``val/hand_l1_rad``
  (mean absolute action error in radians over every valid step),
  ``val/last_step_l1_rad`` (the step a deployed policy acts on).
- ``HopDataModule``: the window dataset over a store (``hop_train.dataset``):
  split by source video, noise on training proprioception, DDP-aware sampler.
- ``ExportPolicy``: a callback that, at the end of ``fit``, exports the best
  checkpoint's policy (TorchScript, ``hop_train.export``) next to it.

BC finetuning (the paper: "same objective and hyperparameters as
pretraining") is the same module on a store of task demonstrations
(``hop-train demos``, ``hop-data import recording``), started from π_b with
``init_from`` (a ``.ckpt`` or an exported ``policy.pt``; ``load_init_weights``).

Run it with ``hop-train fit --config configs/pretrain.yaml`` (``hop_train.cli``);
BC: ``hop-train fit --config configs/bc_grasp_lift.yaml``.
"""

from __future__ import annotations

import inspect
import math
import os
import shutil
from pathlib import Path
from typing import Any, Literal, Optional

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torch.utils.data import DataLoader

from hop_data.store import TrajectoryStore
from hop_robot.embodiment.spec import ARM, HAND, NUM_JOINTS, SCALER
from hop_train.checkpoint import POLICY_ARGS, embodiment_record, export_checkpoint
from hop_train.dataset import (
    Split,
    StoreArrays,
    WindowDataset,
    WindowSampler,
    chunk_block_windows,
    collate_windows,
    split_by_source,
)
from hop_train.init_from import InitFromError, init_policy_from
from hop_train.model import HopPolicy, masked_l1

__all__ = ["ExportPolicy", "HopDataModule", "HopPretrainModule", "InitFromError"]

# The policy's defaults live in HopPolicy's signature (one place); the module repeats them by reference.
_POLICY = {name: p.default for name, p in inspect.signature(HopPolicy).parameters.items()}


class HopPretrainModule(pl.LightningModule):
    """Behaviour cloning of retargeted actions with the causal transformer.

    Args:
        width, num_layers, num_heads, context, num_points, action_tanh: the
            ``HopPolicy`` config (defaults: the paper's, from HopPolicy).
            ``num_points`` is taken from the store by ``hop-train``.
        positions: ``window`` (the paper's timestep embedding) or ``relative``
            (ALiBi and attention banded to ``context`` steps, so rollouts can
            cache keys and values; ``model.positions: relative`` in a config).
            The same windows train both: a window is an episode slice,
            left-padded at the episode's start, and the relative variant
            needs nothing beyond its band mask. Its deployed actions see up to
            ``HopPolicy.receptive_field`` steps through the stacked bands, more
            than a training window's ``context``.
        lr: AdamW learning rate (paper: 1e-4).
        weight_decay: AdamW weight decay on Linear weights (paper: 1e-2); never on
            biases, LayerNorms or embeddings.
        betas: AdamW betas (PyTorch's defaults; the paper does not say).
        warmup_steps: linear learning-rate warm-up (0: none, as the paper).
        lr_schedule: ``constant`` (paper) or ``cosine`` decay to
            ``min_lr_ratio * lr`` over the run's optimiser steps.
        min_lr_ratio: floor of the cosine schedule.
        init_from: start from these weights instead of a fresh initialisation
            (BC finetuning from π_b): a pretraining checkpoint (``.ckpt``) or an
            exported TorchScript policy (``policy.pt``, its ``model``). The
            architecture recorded there (width, num_layers, num_heads, context,
            num_points, action_tanh, positions) and its embodiment must match this
            module's, else ``InitFromError``. Loaded once, in ``setup`` (before
            any step; a ``--ckpt_path`` restored afterwards replaces them).
            None: from scratch.
    """

    def __init__(
        self,
        width: int = _POLICY["width"],
        num_layers: int = _POLICY["num_layers"],
        num_heads: int = _POLICY["num_heads"],
        context: int = _POLICY["context"],
        num_points: int = _POLICY["num_points"],
        action_tanh: bool = _POLICY["action_tanh"],
        positions: Literal["window", "relative"] = _POLICY["positions"],
        lr: float = 1e-4,  # paper
        weight_decay: float = 1e-2,  # paper
        betas: tuple[float, float] = (0.9, 0.999),
        warmup_steps: int = 0,
        lr_schedule: Literal["constant", "cosine"] = "constant",
        min_lr_ratio: float = 0.0,
        init_from: Optional[str] = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = HopPolicy(
            num_joints=NUM_JOINTS,
            width=width,
            num_layers=num_layers,
            num_heads=num_heads,
            context=context,
            num_points=num_points,
            action_tanh=action_tanh,
            positions=positions,
        )
        self.register_buffer("joint_half_range", torch.tensor(SCALER.half, dtype=torch.float32), persistent=False)
        self.store_url: Optional[str] = None  # set by the data module, recorded in checkpoints
        self.initialised_from: Optional[str] = None  # init_from, once its weights are loaded

    # ------------------------------------------------------------------ model
    def forward(self, proprio: Tensor, points: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """``proprio (B, T, 23)`` scaled, ``points (B, T, P, 3)`` m, ``mask (B, T)`` -> actions (B, T, 23) scaled."""
        return self.model(proprio, points, mask)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        pred = self.model(batch["proprio"], batch["points"], batch["mask"])
        loss = masked_l1(pred, batch["action"], batch["mask"])  # Eq. 2
        self.log("train/loss", loss, prog_bar=True, batch_size=len(pred))
        return loss

    def _evaluate(self, batch: dict[str, Tensor], prefix: str) -> Tensor:
        mask = batch["mask"]
        pred = self.model(batch["proprio"], batch["points"], mask)
        loss = masked_l1(pred, batch["action"], mask)
        valid = int(mask.sum())
        err = (pred.float() - batch["action"]).abs() * self.joint_half_range  # radians, (B, T, 23)
        steps = mask.unsqueeze(-1).to(err.dtype)
        arm = (err[..., ARM] * steps).sum() / max(valid * (ARM.stop - ARM.start), 1)
        hand = (err[..., HAND] * steps).sum() / max(valid * (HAND.stop - HAND.start), 1)
        # Weighted by valid steps, so the epoch value is the mean over steps.
        kwargs = dict(on_step=False, on_epoch=True, sync_dist=True, batch_size=max(valid, 1))
        self.log(f"{prefix}/loss", loss, prog_bar=True, **kwargs)
        self.log(f"{prefix}/arm_l1_rad", arm, **kwargs)
        self.log(f"{prefix}/hand_l1_rad", hand, **kwargs)
        last = err[:, -1].mean()
        self.log(f"{prefix}/last_step_l1_rad", last, on_step=False, on_epoch=True, sync_dist=True, batch_size=len(pred))
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Next joint targets (radians) for the last step of each window: ``action (B, 23)``, ``index (B,)``."""
        pred = self.model(batch["proprio"], batch["points"], batch["mask"])[:, -1]
        mid = torch.as_tensor(SCALER.mid, dtype=pred.dtype, device=pred.device)
        return {"index": batch["index"], "action": pred * self.joint_half_range.to(pred.dtype) + mid}

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        groups = self.model.param_groups(hp.weight_decay)
        # Not fused: Lightning refuses gradient clipping with optimisers that unscale
        # internally under mixed precision; the default foreach kernels are close.
        optimizer = torch.optim.AdamW(groups, lr=hp.lr, betas=tuple(hp.betas))
        if hp.warmup_steps <= 0 and hp.lr_schedule == "constant":
            return optimizer
        total = max(int(self.trainer.estimated_stepping_batches), 1) if self._trainer is not None else 1
        warmup, floor = int(hp.warmup_steps), float(hp.min_lr_ratio)
        cosine = hp.lr_schedule == "cosine"

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if not cosine:
                return 1.0
            progress = min(1.0, (step - warmup) / max(total - warmup, 1))
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Before clipping (Lightning clips after this hook): how hard the 0.25 clip bites.
        if self.trainer.global_step % max(self.trainer.log_every_n_steps, 1) == 0:
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            if grads:
                self.log("train/grad_norm", torch.nn.utils.get_total_norm(grads))
            self.log("train/lr", optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["hop"] = embodiment_record(self.hparams.num_points, self.hparams.context, self.store_url)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if isinstance(datamodule, HopDataModule):
            if datamodule.context != self.hparams.context:
                raise ValueError(f"data.context {datamodule.context} != model.context {self.hparams.context}")
            if datamodule.num_points != self.hparams.num_points:
                raise ValueError(
                    f"the store {datamodule.store} has {datamodule.num_points}-point clouds but model.num_points "
                    f"is {self.hparams.num_points} (hop-train links them; set them equal)"
                )
            self.store_url = datamodule.arrays.url if datamodule.arrays is not None else datamodule.store
        self.load_init_weights()

    # ------------------------------------------------------------------ initialisation (BC finetuning)
    def load_init_weights(self) -> bool:
        """Load ``init_from`` into the policy (once; ``setup`` calls it). Returns
        whether weights were loaded now. Raises ``InitFromError`` (nothing
        loaded) for a missing or unreadable file, another architecture or
        another embodiment (``hop_train.init_from``)."""
        path = self.hparams.get("init_from")
        if not path or self.initialised_from is not None:
            return False
        described = init_policy_from(self.model, path, {k: self.hparams[k] for k in POLICY_ARGS})
        self.initialised_from = os.fspath(path)
        rank_zero_info(f"[hop] policy initialised from {described}")
        return True


class HopDataModule(pl.LightningDataModule):
    """Windows over a trajectory store, split by source video.

    Args:
        store: store path or fsspec URL (``make demo`` writes out/demo/store.zarr).
        batch_size: windows per batch and per device (paper: 256).
        num_workers: DataLoader worker processes (0: load in the training
            process; with clouds in RAM a batch takes ~2 ms, so 0-2 suffice).
        val_fraction: fraction of source videos held out for validation.
        split_seed: seed of the source split (change it to get another split).
        seed: shuffle and noise seed; None: the run's seed (``seed_everything``).
        proprio_noise: std of Gaussian noise on scaled training proprioception
            (paper: 0.1); validation never gets noise.
        context: window length (``hop-train`` links it to model.context).
        pc_ram_bytes: hold all object clouds in RAM up to this size; larger
            stores stream through the chunk cache with chunk-local shuffling.
        cache_bytes: chunk cache per process (streaming only).
        shuffle: ``auto`` (uniform in RAM, chunk-local when streaming),
            ``uniform`` or ``chunk_local``.
        group_chunks: chunks a chunk-local shuffle mixes at once (None: as many
            as half the cache holds).
        drop_last: drop the last incomplete training batch.
        pin_memory: None: when CUDA is available.
        persistent_workers: keep workers between epochs (with num_workers > 0).
        storage_options: fsspec options for remote stores.
        refresh_each_epoch: train on a store that is still being written: each
            epoch starts with the episodes committed by then (the loaders are
            rebuilt every epoch; sources seen before keep their side of the
            split). Every DDP rank reads the commits rank 0 saw.
    """

    def __init__(
        self,
        store: str = "out/demo/store.zarr",
        batch_size: int = 256,  # paper
        num_workers: int = 0,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        seed: Optional[int] = None,
        proprio_noise: float = 0.1,  # paper
        context: int = _POLICY["context"],
        pc_ram_bytes: int = 8 * 2**30,
        cache_bytes: int = 512 * 2**20,
        shuffle: Literal["auto", "uniform", "chunk_local"] = "auto",
        group_chunks: Optional[int] = None,
        drop_last: bool = False,
        pin_memory: Optional[bool] = None,
        persistent_workers: bool = True,
        prefetch_factor: int = 2,
        storage_options: Optional[dict[str, Any]] = None,
        refresh_each_epoch: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.store = os.fspath(store)
        self.batch_size = batch_size
        self.context = context
        self.arrays: Optional[StoreArrays] = None
        self.train_set: Optional[WindowDataset] = None
        self.val_set: Optional[WindowDataset] = None
        self._num_points: Optional[int] = None

    @property
    def num_points(self) -> int:
        """The store's cloud size (read from its attributes, no data)."""
        if self._num_points is None:
            opened = TrajectoryStore.open(self.store, "r", storage_options=self.hparams.storage_options)
            self._num_points = opened.num_points
        return self._num_points

    # ------------------------------------------------------------------ setup
    def _rank(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def setup(self, stage: str) -> None:
        if self.arrays is not None:
            return
        if self.hparams.refresh_each_epoch and self.trainer is not None:
            self.trainer.reload_dataloaders_every_n_epochs = 1  # train_dataloader() runs, and refreshes, each epoch
        self._load(self._agreed_commits())

    def _agreed_commits(self) -> Optional[dict]:
        """The store's commits as rank 0 reads them, the same on every rank (None
        without a trainer: then each reader takes what is committed when it opens)."""
        if self.trainer is None:
            return None
        commits = None
        if self.trainer.is_global_zero:
            commits = TrajectoryStore.open(self.store, "r", storage_options=self.hparams.storage_options).commits()
        return self.trainer.strategy.broadcast(commits, src=0)

    def refresh(self) -> bool:
        """Reload the store if it has commits the datasets do not hold yet; whether it did."""
        commits = self._agreed_commits()
        if self.arrays is None or not self.arrays.grown(commits):
            return False
        self._load(commits, previous=self.split)
        return True

    def _load(self, commits: Optional[dict], previous: Optional[Split] = None) -> None:
        """The datasets over ``commits`` of the store (None: all committed now);
        the sources of a ``previous`` split keep their side."""
        hp = self.hparams
        self.arrays = StoreArrays(
            self.store, pc_ram_bytes=hp.pc_ram_bytes, cache_bytes=hp.cache_bytes, storage_options=hp.storage_options,
            snapshot=commits,
        )  # fmt: skip
        self._num_points = self.arrays.num_points
        self.split = split_by_source(self.arrays.episode_sources, hp.val_fraction, hp.split_seed, keep=previous)
        rank, _ = self._rank()
        self.train_set = WindowDataset(
            self.arrays,
            self.split.train_episodes,
            context=self.context,
            proprio_noise=hp.proprio_noise,
            noise_seed=self._seed() * 1000 + rank,
        )
        self.val_set = WindowDataset(self.arrays, self.split.val_episodes, context=self.context)
        rank_zero_info(
            f"[hop] store {self.arrays.url}: {len(self.arrays.episode_ends)} episodes, {self.arrays.num_steps} steps; "
            f"train {len(self.split.train_sources)} sources / {len(self.train_set)} windows, "
            f"val {len(self.split.val_sources)} sources / {len(self.val_set)} windows; "
            f"object clouds {'in RAM' if self.arrays.in_ram else 'streamed through the chunk cache'}"
        )

    def _seed(self) -> int:
        if self.hparams.seed is not None:
            return int(self.hparams.seed)
        return int(os.environ.get("PL_GLOBAL_SEED", 0))  # set by seed_everything

    # ------------------------------------------------------------------ loaders
    def _loader(self, dataset: WindowDataset, train: bool) -> DataLoader:
        hp = self.hparams
        rank, world = self._rank()
        mode = hp.shuffle if hp.shuffle != "auto" else ("uniform" if self.arrays.in_ram else "chunk_local")
        block = chunk_block_windows(self.arrays.num_points) if mode == "chunk_local" else 0
        chunk_bytes = max(block, 1) * self.arrays.num_points * 3 * 4
        group = hp.group_chunks or max(1, hp.cache_bytes // (2 * chunk_bytes))
        # Validation is shuffled too, but in one fixed order: `limit_val_batches`
        # then takes the same random subset of held-out windows every time.
        sampler = WindowSampler(
            dataset,
            shuffle=True,
            seed=self._seed() if train else hp.split_seed,
            num_replicas=world,
            rank=rank,
            block_windows=block,
            group_blocks=group,
            fixed=not train,
        )
        workers = int(hp.num_workers)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=train and hp.drop_last,
            num_workers=workers,
            collate_fn=collate_windows,
            pin_memory=torch.cuda.is_available() if hp.pin_memory is None else hp.pin_memory,
            persistent_workers=workers > 0 and hp.persistent_workers and not hp.refresh_each_epoch,  # new each epoch
            prefetch_factor=hp.prefetch_factor if workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        if self.hparams.refresh_each_epoch:
            self.refresh()
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, train=False) if len(self.val_set) else []

    def test_dataloader(self) -> DataLoader | list:
        """The held-out sources (the store has no separate test split)."""
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader | list:
        return self.val_dataloader()


class ExportPolicy(pl.Callback):
    """At the end of ``fit``, export the policy of the best checkpoint (else the
    last, else the weights in memory) as TorchScript next to it.

    Args:
        filename: file name written next to the checkpoint.
        enabled: switch (``--trainer.callbacks`` configs keep it on).
        copy_to: also copy the exported file here (a stable path, e.g.
            ``out/pretrain/policy.pt``); None: no copy.
    """

    def __init__(self, filename: str = "policy.pt", enabled: bool = True, copy_to: Optional[str] = None) -> None:
        self.filename = filename
        self.enabled = enabled
        self.copy_to = copy_to
        self.exported: Optional[str] = None

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled or not trainer.is_global_zero:
            return
        callback = trainer.checkpoint_callback
        checkpoint = ""
        if callback is not None:
            checkpoint = getattr(callback, "best_model_path", "") or getattr(callback, "last_model_path", "")
        if checkpoint and Path(checkpoint).is_file():
            out = Path(checkpoint).parent / self.filename
            self.exported = export_checkpoint(checkpoint, out)
            source = checkpoint
        else:
            from hop_train.export import export_policy

            out = Path(trainer.default_root_dir) / self.filename
            self.exported = export_policy(pl_module.model, out)
            source = "the weights in memory (no checkpoint)"
        rank_zero_info(f"[hop] exported policy {self.exported} from {source}")
        if self.copy_to:
            Path(self.copy_to).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.exported, self.copy_to)
            rank_zero_info(f"[hop] copied to {self.copy_to}")

