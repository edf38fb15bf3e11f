"""The paper's claims, tested on this stack: ``make experiment`` (CPU scale),
``make experiment-smoke`` (every stage at toy size), ``experiments/gpu.yaml``
(the paper's sizes). ``python -m hop_train.experiment run --config FILE
[--stages ...]`` runs the stages (resumable); ``... report --config FILE``
renders ``docs/results.md`` and its plots from the run files alone."""

from .config import ExperimentConfig, load_config
from .stages import STAGES, run_stages

__all__ = ["STAGES", "ExperimentConfig", "load_config", "run_stages"]
