"""``hop-train``: pretraining through LightningCLI, plus ``export``.

    hop-train fit --config configs/pretrain.yaml            # train (checkpoints, logs, exported policy)
    hop-train validate --config configs/pretrain.yaml --ckpt_path CKPT
    hop-train test | predict ...                            # held-out sources
    hop-train fit --config configs/pretrain.yaml --print_config
    hop-train export CKPT --out policy.pt                   # TorchScript for the robot (torch only)
    hop-train evaluate --task GraspLift-v0 --policy policy.pt  # success over 256 simulated envs
    hop-train demos --task GraspLift-v0 --episodes 50 --store demos.zarr  # expert demonstrations

``fit``/``validate``/``test``/``predict`` are LightningCLI's, over
``hop_train.pretrain.HopPretrainModule`` (section ``model``) and
``HopDataModule`` (section ``data``); ``model.context`` is copied to
``data.context`` and ``model.num_points`` is read from the store.
``export`` does not import Lightning.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

__all__ = ["main"]

_EXPORT_HELP = (
    "export CKPT --out FILE: write the TorchScript policy of a checkpoint (hop-train export -h); "
    "evaluate: a policy on a task (hop-train evaluate -h); demos: expert demonstrations into a store (hop-train demos -h)"
)


def _export_main(argv: Sequence[str]) -> int:
    from hop_train.checkpoint import POLICY_ARGS, export_checkpoint
    from hop_train.export import IncompatibleCheckpointError

    parser = argparse.ArgumentParser(
        prog="hop-train export",
        description="Export a pretraining checkpoint's policy as TorchScript (loads with weights_only=True). "
        "The policy config is read from the checkpoint; the options below override it.",
    )
    parser.add_argument("checkpoint", help="Lightning checkpoint (.ckpt) or a state dict of the policy")
    parser.add_argument("--out", required=True, help="file to write, e.g. policy.pt")
    parser.add_argument("--no-check", action="store_true", help="skip the reload-and-compare check")
    kinds = {"action_tanh": lambda v: v.lower() in ("1", "true", "yes"), "positions": str}
    for name in POLICY_ARGS:
        parser.add_argument(f"--{name}", type=kinds.get(name, int), default=None, help=f"override the checkpoint's {name}")
    args = parser.parse_args(list(argv))
    overrides = {name: getattr(args, name) for name in POLICY_ARGS}
    try:
        path = export_checkpoint(args.checkpoint, args.out, check=not args.no_check, **overrides)
    except FileNotFoundError as exc:
        print(f"hop-train export: {exc}", file=sys.stderr)
        return 2
    except IncompatibleCheckpointError as exc:
        print(f"hop-train export: incompatible checkpoint\n{exc}", file=sys.stderr)
        return 2
    print(f"exported {path}")
    return 0


def _finetunes_in_sim(argv: Sequence[str]) -> bool:
    """Whether a ``--config`` file names the RL module (``model.class_path: hop_train.rl...``)."""
    import yaml

    paths = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"]
    paths += [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    for path in paths:
        try:
            with open(path) as f:
                config = yaml.safe_load(f) or {}
        except OSError:
            continue  # LightningCLI reports the missing file itself
        model = config.get("model") if isinstance(config, dict) else None
        if isinstance(model, dict) and str(model.get("class_path", "")).startswith("hop_train.rl."):
            return True
    return False


def _rl_cli(argv: Optional[list[str]]) -> None:
    """PPO finetuning in simulation: the module brings its own rollouts (no data module)."""
    from lightning.pytorch.cli import LightningCLI

    from hop_train.rl.module import HopPPOModule

    LightningCLI(
        HopPPOModule,
        None,
        args=argv,
        subclass_mode_model=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )


def _lightning_cli(argv: Optional[list[str]]) -> None:
    from lightning.pytorch.cli import LightningCLI

    if _finetunes_in_sim(sys.argv[1:] if argv is None else argv):
        return _rl_cli(argv)

    from hop_train.pretrain import HopDataModule, HopPretrainModule

    class HopCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:  # type: ignore[override]
            parser.link_arguments("model.context", "data.context")
            parser.link_arguments("data.num_points", "model.num_points", apply_on="instantiate")

    HopCLI(
        HopPretrainModule,
        HopDataModule,
        args=argv,
        seed_everything_default=0,
        trainer_defaults={"gradient_clip_val": 0.25},  # paper
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,  # AdamW with the paper's decay groups is the module's
        parser_kwargs={"epilog": f"Also: {_EXPORT_HELP}"},
    )


def main(args: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] == "export":
        return _export_main(argv[1:])
    if argv and argv[0] in ("evaluate", "demos"):
        from hop_train.task_cli import demos_main, evaluate_main

        return (evaluate_main if argv[0] == "evaluate" else demos_main)(argv[1:])
    from hop_data.store import StoreError
    from hop_train.dataset import DatasetError
    from hop_train.pretrain import InitFromError

    try:
        _lightning_cli(None if args is None else argv)  # None: LightningCLI reads sys.argv itself
    except (StoreError, DatasetError, InitFromError) as exc:  # a store or init_from that cannot be used: say why, no traceback
        print(f"hop-train: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
