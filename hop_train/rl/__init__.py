"""Reinforcement-learning finetuning: rollout storage and GAE, the actor-critic
around ``HopPolicy``, PPO with HOP's modifications, rollout collection, and the
Lightning module that runs it (``hop-train fit --config configs/ppo_*.yaml``)."""
