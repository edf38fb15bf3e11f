"""PPO finetuning: GAE, the adaptive-KL rule, HOP's three modifications, rollouts
equal to the update's forward pass, the moving-average action space, a short
learning run, and refusals of bad configs. Real MuJoCo tasks, a small policy."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from hop_train.envs import make_vector
from hop_train.model import HopPolicy
from hop_train.rl.actor_critic import ActorCritic, RunningMeanStd
from hop_train.rl.ppo import PPO, PPOConfig, adaptive_kl_lr
from hop_train.rl.rollout import RolloutCollector
from hop_train.rl.storage import RolloutStorage, gae

N, T = 6, 5


def small_setup(task="GraspLift-v0", seed=0, **ppo):
    torch.manual_seed(seed)
    env = make_vector(task, N, episode_steps=12, nthread=1)
    policy = HopPolicy(width=32, num_layers=1, num_heads=2)
    state_dim = env.single_observation_space["state"].shape[0]
    cfg = PPOConfig(num_envs=N, horizon=T, minibatch_size=3 * T, **ppo)
    ac = ActorCritic(policy, state_dim, cfg.init_std, cfg.detach_critic_tokens)
    storage = RolloutStorage(N, T, policy.context, env.num_points, state_dim, 23)
    collector = RolloutCollector(env, ac, storage, cfg, seed=seed)
    return env, ac, storage, collector, PPO(ac, cfg, seed)


def test_gae_with_timeout_bootstrapping_by_hand():
    rewards = np.array([[1.0], [2.0], [3.0]])
    values = np.array([[0.5], [1.0], [1.5]])
    dones = np.array([[0.0], [1.0], [0.0]])
    timeouts = np.array([[0.0], [1.0], [0.0]])  # step 1 ended by the time limit: r + γ V(s_1)
    adv, ret = gae(rewards, values, dones, timeouts, np.array([2.0]), gamma=0.9, lam=0.8)
    np.testing.assert_allclose(adv[:, 0], [1.4 + 0.9 * 0.8 * 1.9, 1.9, 3.3])
    np.testing.assert_allclose(ret[:, 0], [3.268, 2.9, 4.8])
    # A termination (not a time-out) is not bootstrapped.
    adv, _ = gae(rewards, values, dones, np.zeros_like(timeouts), np.array([2.0]), gamma=0.9, lam=0.8)
    assert adv[1, 0] == pytest.approx(2.0 - 1.0)


def test_adaptive_kl_learning_rate_rule():
    assert adaptive_kl_lr(1e-5, 0.05, 0.02, 1e-6, 1e-3) == pytest.approx(1e-5 / 1.5)  # > 2 × target
    assert adaptive_kl_lr(1e-5, 0.005, 0.02, 1e-6, 1e-3) == pytest.approx(1.5e-5)  # < target / 2
    assert adaptive_kl_lr(1e-5, 0.02, 0.02, 1e-6, 1e-3) == 1e-5  # in between: kept
    assert adaptive_kl_lr(1e-6, 1.0, 0.02, 1e-6, 1e-3) == 1e-6  # bounded below
    assert adaptive_kl_lr(1e-3, 1e-4, 0.02, 1e-6, 1e-3) == 1e-3  # bounded above


def test_running_mean_std_matches_numpy():
    rms = RunningMeanStd((3,))
    data = torch.randn(100, 3, generator=torch.Generator().manual_seed(0)) * 3 + 1
    for chunk in data.split(17):
        rms.update(chunk)
    np.testing.assert_allclose(rms.mean.numpy(), data.double().mean(0).numpy(), atol=1e-9)
    np.testing.assert_allclose(rms.var.numpy(), data.double().var(0, unbiased=False).numpy(), atol=1e-9)


def test_initial_std_is_hops():
    _, ac, *_ = small_setup()
    assert torch.allclose(ac.log_std.exp(), torch.full((23,), 0.1))
    assert PPOConfig().init_std == 0.1 and PPOConfig().critic_warmup_steps == 200


def update_log_probs(ac, storage):
    """What the update computes for the rollout in ``storage``: re-encoded clouds
    gathered into windows -> (log-probabilities, the rollout's), both (N·T,)."""
    from hop_train.rl.storage import gather_windows

    mb = next(storage.minibatches(1, torch.Generator().manual_seed(0)))
    with torch.no_grad():
        tokens = ac.encode(mb["points"])
        e = mb["proprio"].shape[0]
        c = storage.c
        mean = ac.mean(gather_windows(mb["proprio"], c, T).reshape(e * T, c, -1),
                       gather_windows(tokens, c, T).reshape(e * T, c, -1), mb["mask"].reshape(e * T, c))  # fmt: skip
        log_prob = ac.distribution(mean).log_prob(mb["actions"].reshape(e * T, -1)).sum(-1)
    return log_prob.numpy(), mb["log_probs"].reshape(-1).numpy()


def test_rollout_likelihoods_equal_the_update_forward_pass():
    """The update re-encodes the distinct clouds and gathers windows: before any
    gradient step it must reproduce the rollout's log-probabilities (each step
    inferred on its own masked window during the rollout)."""
    env, ac, storage, collector, ppo = small_setup()
    collector.collect()
    storage.compute_returns(np.zeros(N), 0.99, 0.95)
    np.testing.assert_allclose(*update_log_probs(ac, storage), atol=2e-3, rtol=1e-5)
    env.close()


@pytest.mark.parametrize("refresh", [True, False])
def test_relative_policy_rolls_out_incrementally_and_equals_the_update(monkeypatch, refresh):
    """A relative-position policy rolls out from per-env key/value caches (no
    window is recomputed); with the storage spanning its receptive field, the
    update's windows reproduce the rollout's log-probabilities across episode
    restarts (8-step episodes, 5-step rollouts): with caches rebuilt from the
    history also after an update changed the weights; with caches carried
    over, while the weights stay (after an update their context is stale)."""
    torch.manual_seed(0)
    env = make_vector("GraspLift-v0", N, episode_steps=8, nthread=1)
    policy = HopPolicy(width=32, num_layers=2, num_heads=2, context=4, positions="relative")
    state_dim = env.single_observation_space["state"].shape[0]
    cfg = PPOConfig(num_envs=N, horizon=T, minibatch_size=3 * T, critic_warmup_steps=0, lr=1e-3, adaptive_kl=False)
    ac = ActorCritic(policy, state_dim, cfg.init_std, cfg.detach_critic_tokens)
    assert ac.incremental and ac.window_steps == 2 * 3 + 1
    storage = RolloutStorage(N, T, ac.window_steps, env.num_points, state_dim, 23)
    collector, ppo = RolloutCollector(env, ac, storage, cfg, refresh_cache=refresh), PPO(ac, cfg)

    def no_window(*_):
        raise AssertionError("the window forward ran during an incremental rollout")

    restarts = 0
    for _ in range(2):
        with monkeypatch.context() as patch:
            patch.setattr(ac, "mean", no_window)
            collector.collect()
        restarts += int(storage.dones.sum())
        np.testing.assert_allclose(*update_log_probs(ac, storage), atol=2e-3, rtol=1e-5)
        if refresh:
            ppo.update(storage)
        storage.next_rollout()
    assert restarts >= N  # every env restarted at least once
    env.close()


def test_critic_warmup_leaves_the_actor_unchanged():
    env, ac, storage, collector, ppo = small_setup(critic_warmup_steps=100)
    actor = {k: v.clone() for k, v in ac.actor.state_dict().items()}
    log_std = ac.log_std.detach().clone()
    critic = [p.detach().clone() for p in ac.critic.parameters()]
    collector.collect()
    stats = ppo.update(storage)
    assert stats["warmup"] == 1.0
    assert all(torch.equal(actor[k], v) for k, v in ac.actor.state_dict().items())
    assert torch.equal(log_std, ac.log_std.detach())
    assert any(not torch.equal(a, b) for a, b in zip(critic, ac.critic.parameters()))
    env.close()


@pytest.mark.parametrize("detach", [True, False])
def test_value_loss_reaches_the_tokenizer_only_without_modification_3(detach):
    env, ac, storage, collector, ppo = small_setup(detach_critic_tokens=detach, critic_warmup_steps=100)
    collector.collect()
    ppo.optimizer.step = lambda: None  # keep the last minibatch's gradients, change nothing
    ppo.update(storage)
    grads = [p.grad for p in ac.actor.point_encoder.parameters()]
    has_grad = any(g is not None and g.abs().sum() > 0 for g in grads)
    assert has_grad == (not detach)
    env.close()


def test_moving_average_action_space():
    env = make_vector("GraspLift-v0", 2, episode_steps=12, nthread=1)
    policy = HopPolicy(width=32, num_layers=1, num_heads=2)
    state_dim = env.single_observation_space["state"].shape[0]
    ac = ActorCritic(policy, state_dim, init_std=1e-6, detach_critic_tokens=True)
    storage = RolloutStorage(2, 3, policy.context, env.num_points, state_dim, 23)
    collector = RolloutCollector(env, ac, storage, PPOConfig(), action_space="moving_average", ma_alpha=0.25)
    start = collector.obs["proprio"].astype(np.float64).copy()
    sent = []
    step = env.step
    env.step = lambda a: (sent.append(a.copy()), step(a))[1]
    collector.collect()
    actions = np.clip(storage.actions, -1, 1)
    expected = 0.25 * actions[0] + 0.75 * start
    np.testing.assert_allclose(sent[0], expected, atol=1e-6)
    np.testing.assert_allclose(sent[1], 0.25 * actions[1] + 0.75 * expected, atol=1e-6)
    env.close()


def test_short_ppo_run_improves_the_return():
    """A small Grasp & Lift (12-step episodes, 6 envs): after 12 rollouts of
    PPO from a fresh small policy the mean episode return must be higher by a
    stated margin than in the first rollouts (seeded)."""
    env, ac, storage, collector, ppo = small_setup(critic_warmup_steps=4, lr=1e-3, kl_target=0.05)
    returns = []
    for _ in range(14):
        stats = collector.collect()
        ppo.update(storage)
        storage.next_rollout()
        returns.append(np.mean(stats.returns) if stats.returns else np.nan)
    first, last = np.nanmean(returns[:4]), np.nanmean(returns[-4:])
    assert last > first + 0.25 * abs(first), (first, last, returns)
    env.close()


def test_bad_configs_are_refused_before_work(tmp_path):
    from hop_train.rl.module import HopPPOModule

    with pytest.raises(ValueError, match="unknown task"):
        HopPPOModule(task="Juggle-v0")
    from hop_train.init_from import InitFromError

    with pytest.raises(InitFromError, match="does not exist"):
        HopPPOModule(init_from=str(tmp_path / "missing.pt"))
    out = subprocess.run(
        [sys.executable, "-m", "hop_train.cli", "fit", "--config", "configs/ppo_grasp_lift_smoke.yaml",
         "--model.init_args.init_from", str(tmp_path / "pi_b.pt")], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode != 0 and "pi_b.pt" in out.stderr


def test_init_from_an_exported_policy_loads_its_weights(tmp_path):
    from hop_train.export import export_policy
    from hop_train.init_from import InitFromError
    from hop_train.rl.module import HopPPOModule

    torch.manual_seed(1)
    prior = HopPolicy(width=32, num_layers=1, num_heads=2)
    path = export_policy(prior, tmp_path / "pi_b.pt")
    module = HopPPOModule(init_from=str(path), width=32, num_layers=1, num_heads=2)
    for (k, a), (_, b) in zip(prior.state_dict().items(), module.ac.actor.state_dict().items()):
        assert torch.equal(a, b), k
    with pytest.raises(InitFromError, match="width 32 in the file vs 64 here"):
        HopPPOModule(init_from=str(path), width=64, num_layers=1, num_heads=2)
    with pytest.raises(InitFromError, match="positions 'window' in the file vs 'relative' here"):
        HopPPOModule(init_from=str(path), width=32, num_layers=1, num_heads=2, positions="relative")
    assert math.isfinite(float(module.ac.actor.embed_proprio.weight.detach().sum()))


def test_relative_prior_finetunes_with_storage_spanning_its_receptive_field(tmp_path):
    """A relative-position π_b goes through the PPO module: loaded, and the
    rollout storage keeps its whole receptive field (so the update scores the
    history the cached rollout acted on)."""
    from hop_train.export import export_policy
    from hop_train.rl.module import HopPPOModule

    torch.manual_seed(2)
    prior = HopPolicy(width=32, num_layers=2, num_heads=2, context=4, positions="relative")
    path = export_policy(prior, tmp_path / "pi_b.pt")
    module = HopPPOModule(init_from=str(path), width=32, num_layers=2, num_heads=2, context=4, positions="relative",
                          ppo=PPOConfig(num_envs=2, horizon=3, minibatch_size=6), episode_steps=8, env_threads=1)  # fmt: skip
    for (k, a), (_, b) in zip(prior.state_dict().items(), module.ac.actor.state_dict().items()):
        assert torch.equal(a, b), k
    assert prior.receptive_field == 2 * (4 - 1) + 1
    assert module.make_storage().c == prior.receptive_field
    window = HopPPOModule(width=32, num_layers=2, num_heads=2, context=4, ppo=PPOConfig(num_envs=2, horizon=3, minibatch_size=6))
    assert window.make_storage().c == 4


def test_dapg_demo_weight_schedule():
    from hop_train.rl.dapg import DAPGConfig, demo_weight

    cfg = DAPGConfig()
    assert (cfg.lambda0, cfg.lambda1) == (0.01, 0.95)  # REFERENCE.md (mjrl)
    assert demo_weight(0, 4.0, 0.01, 0.95) == pytest.approx(0.04)
    assert demo_weight(10, 4.0, 0.01, 0.95) == pytest.approx(0.01 * 0.95**10 * 4.0)
    assert demo_weight(3, -1.0, 0.01, 0.95) == 0.0  # no positive advantage: no demo push


def test_amp_gradient_penalty_and_style_reward():
    from hop_train.rl.amp import Discriminator, gradient_penalty, style_reward

    disc = Discriminator(features=4, hidden=())
    with torch.no_grad():
        disc.net[0].weight.copy_(torch.tensor([[1.0, -2.0, 0.5, 0.0]]))
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    assert float(gradient_penalty(disc, x)) == pytest.approx(1.0 + 4.0 + 0.25)  # |∂D/∂x|² of a linear D
    np.testing.assert_allclose(style_reward(torch.tensor([1.0, -1.0, 3.0, 0.0])).numpy(), [1.0, 0.0, 0.0, 0.75])


def test_dapg_and_amp_need_demonstrations():
    from hop_train.rl.module import HopPPOModule

    for algorithm in ("dapg", "amp"):
        with pytest.raises(ValueError, match="needs demonstrations"):
            HopPPOModule(algorithm=algorithm)


def test_periodic_heldout_evaluation_is_logged(tmp_path):
    import csv

    out = subprocess.run(
        [sys.executable, "-m", "hop_train.cli", "fit", "--config", "configs/ppo_grasp_lift_smoke.yaml",
         "--model.init_args.eval_every", "1", "--model.init_args.eval_envs", "2", "--model.init_args.episode_steps", "8",
         "--trainer.max_steps", "2", "--trainer.default_root_dir", str(tmp_path),
         "--trainer.logger.init_args.save_dir", str(tmp_path)], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    rows = list(csv.DictReader(open(next(tmp_path.glob("csv/version_*/metrics.csv")))))
    values = [float(r["eval/success"]) for r in rows if r.get("eval/success")]
    assert values and all(0.0 <= v <= 1.0 for v in values)
