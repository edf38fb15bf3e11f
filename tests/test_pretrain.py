"""Pretraining: the LightningModule's loss, optimiser and metrics; `hop-train`
fit (subprocess) leaving a checkpoint and an exported policy; validate, export,
parity of the exported file with the module, refusals, --print_config, DDP on
two CPU processes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from hop_robot.embodiment import spec
from hop_train.checkpoint import POLICY_ARGS, read_checkpoint
from hop_train.cli import main
from hop_train.model import masked_l1
from hop_train.pretrain import HopDataModule, HopPretrainModule

sys.path.insert(0, str(Path(__file__).parent))
from _window_store import NUM_POINTS, build_store  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
REPO = Path(__file__).resolve().parents[1]
TINY = {"width": 32, "num_layers": 1, "num_heads": 2}
SOURCES = {"vid-a": [30, 25], "vid-b": [20, 40], "vid-c": [35], "vid-d": [28, 22]}


def write_config(root: Path, store: Path, *, max_steps: int = 6, extra: str = "") -> Path:
    config = root / "tiny.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            seed_everything: 0
            trainer:
              accelerator: cpu
              devices: 1
              max_steps: {max_steps}
              val_check_interval: 3
              check_val_every_n_epoch: null
              num_sanity_val_steps: 0
              log_every_n_steps: 1
              enable_progress_bar: false
              enable_model_summary: false
              default_root_dir: {root}/run
              logger:
                - class_path: lightning.pytorch.loggers.CSVLogger
                  init_args: {{save_dir: {root}/run, name: csv}}
                - class_path: lightning.pytorch.loggers.TensorBoardLogger
                  init_args: {{save_dir: {root}/run, name: tensorboard}}
              callbacks:
                - class_path: lightning.pytorch.callbacks.ModelCheckpoint
                  init_args: {{monitor: val/loss, mode: min, save_top_k: 1, save_last: true, filename: "best-{{step}}"}}
                - class_path: hop_train.pretrain.ExportPolicy
                  init_args: {{copy_to: {root}/policy.pt}}
            model: {{width: 32, num_layers: 1, num_heads: 2}}
            data: {{store: {store}, batch_size: 16, val_fraction: 0.25}}
            """
        )
        + extra
    )
    return config


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.run(
        [sys.executable, "-m", "hop_train.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    store = root / "s.zarr"
    build_store(store, SOURCES)
    config = write_config(root, store)
    proc = run_cli("fit", "--config", str(config))
    assert proc.returncode == 0, proc.stderr[-4000:]
    checkpoints = root / "run" / "csv" / "version_0" / "checkpoints"
    best = sorted(checkpoints.glob("best-*.ckpt"))
    assert len(best) == 1, list(checkpoints.iterdir())
    return {"root": root, "store": store, "config": config, "ckpt": best[0], "dir": checkpoints, "log": proc.stderr}


def module_from_checkpoint(path: Path) -> HopPretrainModule:
    blob = read_checkpoint(path)
    hp = blob["hyper_parameters"]
    module = HopPretrainModule(**{k: hp[k] for k in POLICY_ARGS})
    module.model.load_state_dict({k[len("model.") :]: v for k, v in blob["state_dict"].items()})
    return module.eval()


# ------------------------------------------------------------------ the module
def test_optimizer_is_the_papers_adamw_without_decay_on_biases_norms_embeddings():
    module = HopPretrainModule(**TINY)
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.AdamW)
    decay, no_decay = optimizer.param_groups
    assert decay["lr"] == 1e-4 and decay["weight_decay"] == 1e-2 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in module.model.named_parameters()}
    assert all(names[id(p)].endswith("weight") and p.dim() == 2 for p in decay["params"])
    undecayed = {names[id(p)] for p in no_decay["params"]}
    assert "embed_timestep.weight" in undecayed and "ln_f.weight" in undecayed and "action_head.bias" in undecayed
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(module.parameters()))


def test_losses_and_radian_metrics(tmp_path):
    build_store(tmp_path / "s.zarr", SOURCES)
    dm = HopDataModule(store=str(tmp_path / "s.zarr"), batch_size=32, val_fraction=0.25, context=16)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    module = HopPretrainModule(**TINY, num_points=NUM_POINTS)
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    with torch.no_grad():
        loss = module.training_step(batch, 0)
        pred = module(batch["proprio"], batch["points"], batch["mask"])
        assert torch.allclose(loss, masked_l1(pred, batch["action"], batch["mask"]))
        # A known error: +0.1 (scaled) on every arm joint, -0.2 on every hand joint.
        offset = torch.zeros(spec.NUM_JOINTS)
        offset[spec.ARM], offset[spec.HAND] = 0.1, -0.2
        module.model.forward = lambda proprio, points, mask=None: batch["action"] + offset
        module.validation_step(batch, 0)
    half = (spec.JOINT_UPPER - spec.JOINT_LOWER) / 2
    assert logged["val/arm_l1_rad"] == pytest.approx(0.1 * half[spec.ARM].mean(), rel=1e-5)
    assert logged["val/hand_l1_rad"] == pytest.approx(0.2 * half[spec.HAND].mean(), rel=1e-5)
    assert logged["val/loss"] == pytest.approx((0.1 * 7 + 0.2 * 16) / 23, rel=1e-5)


def test_warmup_and_cosine_schedule():
    module = HopPretrainModule(**TINY, warmup_steps=4, lr_schedule="cosine", min_lr_ratio=0.1)
    config = module.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(6):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:4] == pytest.approx([2.5e-5, 5e-5, 7.5e-5, 1e-4])
    assert lrs[5] == pytest.approx(1e-5)  # no trainer: the cosine spans one step, then the floor


# ------------------------------------------------------------------ the command line
def test_fit_leaves_checkpoint_logs_and_exported_policy(trained):
    ckpt = read_checkpoint(trained["ckpt"])  # weights_only=True
    assert ckpt["hop"]["embodiment"] == spec.EMBODIMENT_NAME and ckpt["hop"]["num_points"] == NUM_POINTS
    assert ckpt["hyper_parameters"]["num_points"] == NUM_POINTS  # read from the store
    assert (trained["dir"] / "last.ckpt").is_file()
    policy = torch.jit.load(str(trained["dir"] / "policy.pt"))
    assert policy.num_points == NUM_POINTS and list(policy.joint_names) == list(spec.JOINT_NAMES)
    assert (trained["root"] / "policy.pt").is_file()
    with open(trained["root"] / "run" / "csv" / "version_0" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    val = [r for r in rows if r.get("val/loss")]
    assert len(val) == 2 and all(float(r["val/arm_l1_rad"]) > 0 and float(r["val/hand_l1_rad"]) > 0 for r in val)
    assert any(r.get("train/loss") for r in rows) and any(r.get("train/grad_norm") for r in rows)
    assert list((trained["root"] / "run" / "tensorboard").rglob("events.out.tfevents.*"))
    assert "exported policy" in trained["log"]


def test_validate_on_the_checkpoint(trained, capsys):
    config, ckpt = str(trained["config"]), str(trained["ckpt"])
    main(["validate", "--config", config, "--ckpt_path", ckpt, "--trainer.logger", "false"])
    out = capsys.readouterr().out
    assert "val/arm_l1_rad" in out and "val/hand_l1_rad" in out and "val/loss" in out


def test_export_command_and_parity_with_the_module(trained, tmp_path, capsys):
    out = tmp_path / "exported.pt"
    assert main(["export", str(trained["ckpt"]), "--out", str(out)]) == 0
    assert "exported" in capsys.readouterr().out
    exported = torch.jit.load(str(out))
    module = module_from_checkpoint(trained["ckpt"])
    dm = HopDataModule(store=str(trained["store"]), batch_size=48, val_fraction=0.25, context=16)
    dm.setup("validate")
    batch = dm.val_set.__getitems__(np.arange(0, len(dm.val_set), max(1, len(dm.val_set) // 48))[:48])
    assert not batch["mask"].all()  # some windows are left-padded
    with torch.no_grad():
        scaled = module(batch["proprio"], batch["points"], batch["mask"])[:, -1].double().numpy()
        radians = torch.from_numpy(spec.unscale(batch["proprio"].double().numpy())).float()
        got = exported(radians, batch["points"], batch["mask"]).double().numpy()
    np.testing.assert_allclose(got, spec.unscale(scaled), atol=1e-5, rtol=0)


def test_export_refuses_an_incompatible_checkpoint(trained, tmp_path, capsys):
    code = main(["export", str(trained["ckpt"]), "--out", str(tmp_path / "x.pt"), "--num_layers", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "missing" in err and "blocks.1." in err and "num_layers" in err
    assert not (tmp_path / "x.pt").exists()
    pickled = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"obj": object()}}, pickled)
    assert main(["export", str(pickled), "--out", str(tmp_path / "y.pt")]) == 2
    assert "weights_only" in capsys.readouterr().err


def test_print_config(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(REPO / "configs" / "pretrain.yaml"), "--print_config"])
    assert info.value.code in (0, None)
    out = capsys.readouterr().out
    expected = ("gradient_clip_val: 0.25", "lr: 0.0001", "weight_decay: 0.01", "proprio_noise: 0.1", "store: out/demo/")
    for line in expected:
        assert line in out, line


def test_fit_on_a_missing_store_says_so(tmp_path, capsys):
    config = write_config(tmp_path, tmp_path / "absent.zarr")
    assert main(["fit", "--config", str(config)]) == 2
    assert "absent.zarr does not exist" in capsys.readouterr().err


def test_ddp_on_two_cpu_processes(trained, tmp_path):
    """The same config with strategy ddp, 2 processes (gloo): trains, checkpoints, exports."""
    config = write_config(tmp_path, trained["store"], max_steps=3)
    proc = run_cli("fit", "--config", str(config), "--trainer.strategy", "ddp", "--trainer.devices", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "distributed_backend=gloo" in proc.stderr + proc.stdout and "MEMBER: 2/2" in proc.stderr + proc.stdout
    assert (tmp_path / "policy.pt").is_file()
    assert list((tmp_path / "run" / "csv" / "version_0" / "checkpoints").glob("best-*.ckpt"))


def test_fit_and_export_a_relative_position_policy(trained, tmp_path):
    """``model.positions: relative`` trains on the same windows, is recorded in
    the checkpoint, and the exported file carries it: its context is the
    receptive field (2 layers, band 16: 31 steps) and it steps incrementally."""
    config = write_config(tmp_path, trained["store"], max_steps=3)
    assert main(["fit", "--config", str(config), "--model.positions", "relative", "--model.num_layers", "2"]) in (0, None)
    ckpt = sorted((tmp_path / "run" / "csv" / "version_0" / "checkpoints").glob("best-*.ckpt"))[0]
    assert read_checkpoint(ckpt)["hyper_parameters"]["positions"] == "relative"
    module = module_from_checkpoint(ckpt)
    assert module.model.relative and "embed_timestep.weight" not in module.model.state_dict()
    exported = torch.jit.load(str(tmp_path / "policy.pt"))
    assert exported.positions == "relative" and exported.context == 31 and hasattr(exported, "step")
