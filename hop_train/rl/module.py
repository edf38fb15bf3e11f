"""PPO finetuning as a LightningModule: ``hop-train fit --config configs/ppo_*.yaml``.

Each ``training_step`` collects one rollout (``horizon`` steps of
``num_envs`` envs, ``hop_train.envs``) and runs PPO's update over it
(manual optimisation: every minibatch is one optimiser step, so the
Trainer's ``max_steps`` counts gradient steps). The actor is the HOP policy
— from ``init_from`` (a pretraining checkpoint or an exported ``policy.pt``:
π_b) or freshly initialised (scratch) — so a finetuned checkpoint exports
with ``hop-train export`` to the same TorchScript contract and runs in
``hop-train evaluate`` and ``hop-robot run`` unchanged.

Checkpoints resume exactly: besides the weights, normalisers (buffers),
optimiser and step counters Lightning saves, ``checkpoint["hop"]["run"]``
holds the run's state — the envs (simulator, per-env generators, task
arrays), the rollout storage's history, the collector's observation and
generator, and the algorithm's (adapted learning rate, warm-up progress,
minibatch generator; DAPG's iteration, AMP's discriminator optimiser, the
demo sampler) — so a run killed and resumed with ``--ckpt_path`` logs the
same curve as one never interrupted (``tests/test_rl_resume.py``).

Logged per rollout: ``rollout/return``, ``rollout/success``,
``rollout/episode_length`` (episodes that ended in it; only rollouts in
which some did have them), ``train/approx_kl``,
``train/clip_fraction``, ``train/explained_variance``, ``train/value_loss``,
``train/actor_loss``, ``train/action_std``, ``train/lr``, ``train/samples``,
``train/samples_per_s``.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from typing import Any, Optional

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from hop_robot.embodiment import spec
from hop_train.checkpoint import POLICY_ARGS, embodiment_record
from hop_train.init_from import init_policy_from
from hop_train.model import HopPolicy

from .actor_critic import ActorCritic
from .amp import AMP, AMPConfig
from .dapg import DAPG, DAPGConfig
from .demos import Demonstrations
from .ppo import PPO, PPOConfig
from .rollout import RolloutCollector
from .storage import RolloutStorage

__all__ = ["HopPPOModule"]

# The policy's defaults live in HopPolicy's signature (one place); the module refers to them.
_POLICY = {name: p.default for name, p in inspect.signature(HopPolicy).parameters.items()}


class _Iterations(IterableDataset):
    """An endless stream of rollout indices: the Trainer's steps drive the loop."""

    def __iter__(self):
        i = 0
        while True:
            yield i
            i += 1


class HopPPOModule(pl.LightningModule):
    """PPO finetuning of the HOP policy on a simulated task (module doc).

    Args:
        task: ``GraspLift-v0``, ``GraspThrow-v0`` or ``OpenCabinet-v0``.
        init_from: π_b (``.ckpt`` or exported ``.pt``); None: scratch.
        ppo: the algorithm's settings (``PPOConfig``; HOP's values by default).
        algorithm: ``ppo`` (HOP, or scratch PPO), ``dapg`` or ``amp`` (the baselines).
        demos: demonstration store (``hop-train demos``); DAPG and AMP need it.
        dapg, amp: their settings (``DAPGConfig``, ``AMPConfig``).
        action_space: ``absolute`` (HOP) or ``moving_average`` (the scratch-PPO baseline).
        ma_alpha: α of the moving-average action space.
        objects, episode_steps, env_threads: task options (``TaskConfig``; None: the task's).
        width, num_layers, num_heads, context, num_points, action_tanh, positions:
            the policy's architecture (must match ``init_from``); the paper's by
            default. ``positions="relative"`` rolls out from per-env key/value
            caches (``HopPolicy``); its storage then keeps the policy's whole
            receptive field so that the update scores what the rollout acted on.
        seed: env and sampling seed.
        eval_every: every this many rollouts, export the current policy and run
            ``hop-train evaluate``'s episodes on ``eval_envs`` envs of ``eval_objects``
            (logged as ``eval/success``, ``eval/return``); 0: never.
    """

    def __init__(
        self,
        task: str = "GraspLift-v0",
        init_from: Optional[str] = None,
        ppo: PPOConfig = PPOConfig(),
        algorithm: str = "ppo",
        demos: Optional[str] = None,
        dapg: DAPGConfig = DAPGConfig(),
        amp: AMPConfig = AMPConfig(),
        action_space: str = "absolute",
        ma_alpha: float = 0.2,
        objects: Optional[str] = None,
        episode_steps: Optional[int] = None,
        env_threads: int = 0,
        width: int = _POLICY["width"],
        num_layers: int = _POLICY["num_layers"],
        num_heads: int = _POLICY["num_heads"],
        context: int = _POLICY["context"],
        num_points: int = _POLICY["num_points"],
        action_tanh: bool = _POLICY["action_tanh"],
        positions: str = _POLICY["positions"],
        seed: int = 0,
        eval_every: int = 0,
        eval_envs: int = 16,
        eval_objects: str = "heldout",
    ) -> None:
        super().__init__()
        from hop_train.envs import task_id

        task_id(task)  # unknown tasks are refused before anything is built
        if algorithm not in ("ppo", "dapg", "amp"):
            raise ValueError(f"algorithm must be 'ppo', 'dapg' or 'amp', got {algorithm!r}")
        if algorithm != "ppo" and demos is None:
            raise ValueError(f"algorithm {algorithm!r} needs demonstrations: set model.demos (hop-train demos ...)")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.cfg = ppo if isinstance(ppo, PPOConfig) else PPOConfig(**dict(ppo))
        arch = {k: self.hparams[k] for k in POLICY_ARGS}  # the policy's arguments, as the pretraining module
        policy = HopPolicy(**arch)
        if init_from is not None:
            init_policy_from(policy, init_from, arch)
        self._state_dim = self._task_state_dim(task)
        self.ac = ActorCritic(policy, self._state_dim, self.cfg.init_std, self.cfg.detach_critic_tokens)
        if algorithm == "ppo":
            self.algorithm = PPO(self.ac, self.cfg, seed)
        else:
            demo_set = Demonstrations(demos, context, seed)  # opens (and checks) the store now
            dapg = dapg if isinstance(dapg, DAPGConfig) else DAPGConfig(**dict(dapg))
            amp = amp if isinstance(amp, AMPConfig) else AMPConfig(**dict(amp))
            self.algorithm = (DAPG(self.ac, self.cfg, demo_set, dapg, seed) if algorithm == "dapg"
                              else AMP(self.ac, self.cfg, demo_set, amp, seed))  # fmt: skip
            if algorithm == "amp":
                self.discriminator = self.algorithm.disc  # checkpointed with the module
        self.env = None
        self.collector: RolloutCollector | None = None
        # The checkpoint's run state while a resume waits for on_fit_start to build the envs
        # (on_load_checkpoint runs first); None when not resuming.
        self._resumed: dict[str, Any] | None = None
        self._samples = self._samples_at_start = 0
        self._t0 = time.perf_counter()

    @staticmethod
    def _task_state_dim(task: str) -> int:
        from hop_train.envs import TASKS, task_id

        cls = TASKS[task_id(task).split("/", 1)[1]]
        return cls.shared_state_dim + cls.state_dim

    def make_storage(self) -> RolloutStorage:
        """The rollout storage: each env's timeline keeps the policy's whole
        window (a relative-position policy's receptive field), so the update's
        forward pass sees the history the rollout acted on."""
        h = self.hparams
        return RolloutStorage(self.cfg.num_envs, self.cfg.horizon, self.ac.window_steps, h.num_points, self._state_dim, spec.NUM_JOINTS)

    # ------------------------------------------------------------------ Lightning
    def configure_optimizers(self):
        return self.algorithm.optimizer

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Iterations(), batch_size=None)

    def on_fit_start(self) -> None:
        from hop_train.envs import make_vector

        h = self.hparams
        options = {k: h[k] for k in ("objects", "episode_steps") if h[k] is not None}
        self.env = make_vector(h.task, self.cfg.num_envs, nthread=h.env_threads, **options)
        storage = self.make_storage()
        reward_fn = self.algorithm.reward if isinstance(self.algorithm, AMP) else None
        self.collector = RolloutCollector(self.env, self.ac, storage, self.cfg, h.action_space, h.ma_alpha,
                                          h.seed, reward_fn)  # fmt: skip
        if self._resumed is not None:  # global_step is not restored yet here: the stash tells a resume
            self._load_run_state(self._resumed)
            self._resumed = None
        elif isinstance(self.algorithm, DAPG) and self.algorithm.dapg.bc_steps > 0:
            losses = self.algorithm.behaviour_clone()  # DAPG's warm start
            self.print(f"DAPG behaviour-cloning warm start: L1 {losses[0]:.4f} -> {losses[-1]:.4f} in {len(losses)} steps")
        # The optimiser Lightning wraps (it counts steps); PPO steps it through this wrapper.
        self.algorithm.optimizer = self.optimizers()
        self._t0, self._samples_at_start = time.perf_counter(), self._samples  # a resumed run's rate counts its own samples

    def training_step(self, batch: Any, batch_idx: int) -> None:
        collector = self.collector
        self.ac.eval()
        stats = collector.collect()
        self.ac.train()
        out = self.algorithm.update(collector.storage)
        collector.storage.next_rollout()
        self._samples += self.cfg.num_envs * self.cfg.horizon
        log = {f"train/{k}": v for k, v in out.items()}
        log["train/samples"] = float(self._samples)
        log["train/samples_per_s"] = (self._samples - self._samples_at_start) / max(time.perf_counter() - self._t0, 1e-9)
        self.log_dict(log, prog_bar=False, on_step=True, batch_size=1)
        self.log("samples", float(self._samples), prog_bar=True, on_step=True, batch_size=1, logger=False)
        if stats.returns:
            episodes = {"rollout/return": float(np.mean(stats.returns)), "rollout/success": float(np.mean(stats.successes)),
                        "rollout/episode_length": float(np.mean(stats.lengths))}  # fmt: skip
            self._log_this_rollout(episodes)
            self.log("success", episodes["rollout/success"], prog_bar=True, on_step=True, batch_size=1, logger=False)
            self.log("return", episodes["rollout/return"], prog_bar=True, on_step=True, batch_size=1, logger=False)

        if self.hparams.eval_every and self._rollouts % self.hparams.eval_every == 0:
            self._evaluate_now()

    @property
    def _rollouts(self) -> int:
        """Rollouts done (checkpointed through the sample count, so it survives a resume)."""
        return self._samples // (self.cfg.num_envs * self.cfg.horizon)

    def _log_this_rollout(self, values: dict[str, float]) -> None:
        """Log ``values`` in this rollout's row only, with its sample count.

        Not every rollout has them (episodes that ended, evaluations), and
        ``self.log`` would repeat an on-step value in every later row until
        the epoch ends — which here it never does — so the loggers get them
        directly, at the step Lightning logs this rollout's other metrics."""
        for logger in self.loggers:
            logger.log_metrics({**values, "train/samples": float(self._samples)}, step=self._rollouts - 1)

    def _evaluate_now(self) -> None:
        """The exported policy of the current weights, one episode per env (periodic evaluation)."""
        import tempfile

        from hop_train.evaluate import evaluate
        from hop_train.export import export_policy

        h = self.hparams
        with tempfile.TemporaryDirectory(prefix="hop-ppo-eval-") as tmp:
            path = export_policy(self.ac.actor, f"{tmp}/policy.pt", num_points=h.num_points)
            summary = evaluate(h.task, str(path), envs=h.eval_envs, seed=10_000, objects=h.eval_objects,
                               show_progress=False, threads=h.env_threads, episode_steps=h.episode_steps)  # fmt: skip
        self._log_this_rollout({"eval/success": summary["success_rate"], "eval/return": summary["mean_return"]})
        self.ac.train()

    def on_fit_end(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        hop = embodiment_record(self.hparams.num_points, self.hparams.context)
        hop["samples"] = self._samples
        hop["ppo"] = dataclasses.asdict(self.cfg)
        if self.collector is not None:
            hop["run"] = _as_tensors(self._run_state())
        checkpoint["hop"] = hop
        _plain_hyperparameters(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        hop = checkpoint.get("hop", {})
        self._samples = int(hop.get("samples", 0))
        self._resumed = hop.get("run", {})  # restored once on_fit_start has built the envs

    def _run_state(self) -> dict[str, Any]:
        """What a resume needs beyond the weights, optimiser and step counters (module doc)."""
        return {
            "env": self.env.state_dict(),
            "storage": self.collector.storage.state_dict(),
            "collector": self.collector.state_dict(),
            "algorithm": self.algorithm.state_dict(),
        }

    def _load_run_state(self, run: dict[str, Any]) -> None:
        """The inverse of ``_run_state``; an empty one (a checkpoint without it) restarts the envs."""
        if not run:
            return
        self.env.load_state_dict(run["env"])
        self.collector.storage.load_state_dict(run["storage"])
        self.collector.load_state_dict(run["collector"])
        self.algorithm.load_state_dict(run["algorithm"])


def _as_tensors(tree: Any) -> Any:
    """``tree`` with NumPy arrays as tensors and NumPy scalars as Python numbers, so
    a checkpoint loads with ``torch.load(weights_only=True)`` (Lightning's default)."""
    if isinstance(tree, dict):
        return {k: _as_tensors(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_as_tensors(v) for v in tree)
    if isinstance(tree, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(tree))
    if isinstance(tree, np.generic):
        return tree.item()
    return tree


def _plain_hyperparameters(checkpoint: dict[str, Any]) -> None:
    """The config dataclasses (``PPOConfig``, ...) among the saved hyperparameters as
    dicts, which the constructor takes too: a pickled class would make the
    checkpoint unreadable with ``weights_only=True`` (resume, ``hop-train export``)."""
    hparams = checkpoint.get("hyper_parameters")
    if hparams:  # a new dict: the module's own hparams keep their dataclasses
        plain = lambda v: dataclasses.asdict(v) if dataclasses.is_dataclass(v) and not isinstance(v, type) else v  # noqa: E731
        checkpoint["hyper_parameters"] = {name: plain(value) for name, value in hparams.items()}
