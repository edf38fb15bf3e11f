"""hop_train: the causal transformer policy, pretraining, finetuning and export."""
