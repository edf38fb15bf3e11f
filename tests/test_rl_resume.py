"""Resume after a kill continues the same curve.

Three runs of a tiny PPO finetuning (policy width 32 × 1 layer, 4 Grasp &
Lift envs, 4-step rollouts, 10-step episodes) through Lightning's Trainer,
each in its own process (``python tests/test_rl_resume.py ...``) with a
CSVLogger and a ModelCheckpoint saving ``last.ckpt`` after every step:

- uninterrupted: 2N rollouts;
- killed: the same run, SIGKILLed once the checkpoint after rollout N exists
  (it says so on stdout and waits to be killed);
- resumed: the same config with ``ckpt_path=last.ckpt``, up to 2N rollouts.

The resumed run's logged metrics of rollouts N+1..2N (returns, approx-KL,
losses, learning rate, samples, ...) must equal the uninterrupted run's
exactly: every float op runs in the same order (one torch thread).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

N = 3  # rollouts before the kill, and after it
ROLLOUT_STEPS = 2  # gradient steps per rollout: 4 envs x 4 steps / minibatch 8
KILLABLE = "checkpointed, waiting to be killed"
# time-dependent, so not compared
UNCOMPARED = {"train/samples_per_s"}


def train(root: str, rollouts: int, positions: str, ckpt_path: str | None, block_after: int | None, name: str) -> None:
    """One run (module doc); ``block_after``: after that many rollouts (their
    checkpoint written), print ``KILLABLE`` and wait for SIGKILL."""
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from hop_train.rl.module import HopPPOModule
    from hop_train.rl.ppo import PPOConfig

    class WaitForKill(Callback):
        """At the start of rollout ``block_after`` + 1 the last one's checkpoint is on disk."""

        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            if module.global_step == block_after * ROLLOUT_STEPS:
                print(KILLABLE, flush=True)
                sys.stdin.read()  # the test never closes it: this process ends by SIGKILL

    torch.set_num_threads(1)
    pl.seed_everything(0)
    module = HopPPOModule(
        width=32, num_layers=1, num_heads=2, positions=positions, episode_steps=10, env_threads=1,
        ppo=PPOConfig(num_envs=4, horizon=4, minibatch_size=8, critic_warmup_steps=2, lr=1e-3, kl_target=0.001),
    )  # fmt: skip
    callbacks = [ModelCheckpoint(dirpath=f"{root}/ckpt", save_last=True, every_n_train_steps=1)]
    if block_after is not None:
        callbacks.append(WaitForKill())
    trainer = pl.Trainer(
        max_steps=rollouts * ROLLOUT_STEPS, accelerator="cpu", logger=CSVLogger(root, name=name), log_every_n_steps=1,
        callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, ckpt_path=ckpt_path)


def launch(root: Path, rollouts: int, positions: str, *, ckpt_path: str = "", block_after: int = 0, name: str):
    args = [sys.executable, __file__, str(root), str(rollouts), positions, ckpt_path, str(block_after), name]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    log = open(root / f"{name}.log", "w")
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env), log


def finish(proc, log, root: Path, name: str) -> None:
    proc.communicate(timeout=600)
    log.close()
    assert proc.returncode == 0, (root / f"{name}.log").read_text()[-3000:]


def metrics(root: Path, name: str) -> dict[int, dict[str, str]]:
    """The run's logged values by rollout (the CSV's step; a rollout's episode
    statistics are a row of their own), without the uncompared columns."""
    (path,) = root.glob(f"{name}/version_*/metrics.csv")
    rows: dict[int, dict[str, str]] = {}
    for row in csv.DictReader(open(path)):
        rows.setdefault(int(row["step"]), {}).update({k: v for k, v in row.items() if k not in UNCOMPARED and v != ""})
    return rows


@pytest.mark.parametrize("positions", ["window", "relative"])
def test_resume_after_kill_continues_the_same_curve(tmp_path, positions):
    import torch

    full_root, killed_root = tmp_path / "full", tmp_path / "killed"
    full_root.mkdir()
    killed_root.mkdir()
    full, full_log = launch(full_root, 2 * N, positions, name="full")
    killed, killed_log = launch(killed_root, 2 * N, positions, block_after=N, name="killed")
    for line in killed.stdout:  # blocks until the run has checkpointed rollout N (or ended)
        if line.strip() == KILLABLE:
            break
    else:
        raise AssertionError("the run ended before it checkpointed: " + (killed_root / "killed.log").read_text()[-3000:])
    killed.kill()  # SIGKILL: no handler, no teardown, no final checkpoint
    killed.wait(timeout=60)
    killed_log.close()
    assert killed.returncode == -9
    last = killed_root / "ckpt" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)  # what Lightning's resume loads
    assert checkpoint["global_step"] == N * ROLLOUT_STEPS and "run" in checkpoint["hop"]
    assert isinstance(checkpoint["hyper_parameters"]["ppo"], dict)
    # Lightning's part: the normalisers are buffers of the module, and the optimiser's
    # state holds the adapted learning rate (PPO's own copy of it is in the run state).
    assert {"ac.state_norm.mean", "ac.value_norm.var"} <= set(checkpoint["state_dict"])
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["lr"] == checkpoint["hop"]["run"]["algorithm"]["lr"] != 1e-3

    resumed, resumed_log = launch(killed_root, 2 * N, positions, ckpt_path=str(last), name="resumed")
    finish(resumed, resumed_log, killed_root, "resumed")
    finish(full, full_log, full_root, "full")

    expected, got = metrics(full_root, "full"), metrics(killed_root, "resumed")
    assert sorted(expected) == list(range(2 * N)) and sorted(got) == list(range(N, 2 * N))
    assert any("rollout/return" in expected[k] for k in got)  # episodes ended after the resume
    for step in got:
        assert got[step] == expected[step], f"rollout {step + 1}"


@pytest.mark.parametrize("algorithm", ["dapg", "amp"])
def test_dapg_and_amp_continue_from_their_state(tmp_path, algorithm):
    """The baselines' own state (DAPG's iteration, AMP's discriminator
    optimiser, both demo samplers, PPO's generator and learning rate), saved
    as the module saves it (tensors) with the envs', storage's and
    collector's: a rebuilt run that loads it and the weights continues with
    the same update diagnostics as the saved one."""
    import copy

    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from _window_store import build_store

    from hop_train.envs import make_vector
    from hop_train.model import HopPolicy
    from hop_train.rl.actor_critic import ActorCritic
    from hop_train.rl.amp import AMP, AMPConfig
    from hop_train.rl.dapg import DAPG, DAPGConfig
    from hop_train.rl.demos import Demonstrations
    from hop_train.rl.module import _as_tensors
    from hop_train.rl.ppo import PPOConfig
    from hop_train.rl.rollout import RolloutCollector
    from hop_train.rl.storage import RolloutStorage

    build_store(tmp_path / "demos", {"expert": [12, 12, 12]}, num_points=100)
    cfg = PPOConfig(num_envs=4, horizon=4, minibatch_size=8, critic_warmup_steps=2, lr=1e-3)

    def build():
        torch.manual_seed(0)
        env = make_vector("GraspLift-v0", 4, episode_steps=10, nthread=1)
        ac = ActorCritic(HopPolicy(width=32, num_layers=1, num_heads=2), env.single_observation_space["state"].shape[0],
                         cfg.init_std, cfg.detach_critic_tokens)  # fmt: skip
        demos = Demonstrations(str(tmp_path / "demos"), ac.actor.context, seed=0)
        algo = (DAPG(ac, cfg, demos, DAPGConfig(demo_batch=4, bc_steps=0)) if algorithm == "dapg"
                else AMP(ac, cfg, demos, AMPConfig(batch=8)))  # fmt: skip
        storage = RolloutStorage(4, 4, ac.window_steps, env.num_points, env.single_observation_space["state"].shape[0], 23)
        reward_fn = algo.reward if algorithm == "amp" else None
        return RolloutCollector(env, ac, storage, cfg, seed=0, reward_fn=reward_fn), algo

    def rollout(collector, algo):
        collector.collect()
        out = algo.update(collector.storage)
        collector.storage.next_rollout()
        return out

    def stateful(collector, algo):
        """The run state the module saves (as tensors), then what Lightning saves (weights, optimiser)."""
        run = {"env": collector.env, "storage": collector.storage, "collector": collector, "algorithm": algo}
        lightning = {"ac": algo.ac, "optimizer": algo.optimizer} | ({"disc": algo.disc} if algorithm == "amp" else {})
        return run, lightning

    collector, algo = build()
    for _ in range(2):
        rollout(collector, algo)
    run, lightning = stateful(collector, algo)
    # copies, as a checkpoint file is: optimiser state dicts hold the live tensors
    saved_run = _as_tensors(copy.deepcopy({k: v.state_dict() for k, v in run.items()}))
    saved_weights = copy.deepcopy({k: v.state_dict() for k, v in lightning.items()})
    expected = [rollout(collector, algo) for _ in range(2)]
    changing = "demo_weight" if algorithm == "dapg" else "disc_loss"
    assert expected[0][changing] != expected[1][changing]

    collector, algo = build()
    run, lightning = stateful(collector, algo)
    for k, part in (run | lightning).items():
        part.load_state_dict((saved_run | saved_weights)[k])
    assert [rollout(collector, algo) for _ in range(2)] == expected


if __name__ == "__main__":
    root, rollouts, positions, ckpt_path, block_after, name = sys.argv[1:7]
    train(root, int(rollouts), positions, ckpt_path or None, int(block_after) or None, name)
