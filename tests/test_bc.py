"""BC finetuning (issue 13): the pretraining module on a store of expert
demonstrations, started from a checkpoint or an exported policy
(``model.init_from``).

(a) finetuning on recorded expert demos lowers the held-out action loss;
(b) init_from a .ckpt and from an exported .pt loads exactly those weights
    (directly and through the Trainer's setup);
(c) another architecture or embodiment is refused, naming the file and what
    differs, before any training step (also through ``hop-train fit``);
(d) a missing init_from file: ``hop-train fit`` exits 2 naming it, no traceback;
    a demos store with other joint names is refused the same way;
the BC configs carry the pretraining objective and hyperparameters.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
import zarr

from hop_robot.embodiment import spec
from hop_train.checkpoint import export_checkpoint, read_checkpoint
from hop_train.cli import main
from hop_train.pretrain import HopDataModule, HopPretrainModule, InitFromError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
REPO = Path(__file__).resolve().parents[1]
TINY = {"width": 32, "num_layers": 1, "num_heads": 2}
STEPS = 60
# Measured (seeded, 6 OpenCabinet demos: 4 train, 2 held out; width 32, 1 layer,
# batch 32): val/loss 0.515 -> 0.426 after 60 steps (-17 %; 0.313 after 150).
MIN_DROP = 0.10


def _trainer(**kwargs):
    import lightning.pytorch as pl

    defaults = dict(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    return pl.Trainer(**{**defaults, **kwargs})


def _datamodule(store: Path) -> HopDataModule:
    return HopDataModule(str(store), batch_size=32, val_fraction=0.34, seed=0)  # 2 of the 6 demos held out


def _val_loss(module: HopPretrainModule, store: Path) -> float:
    return float(_trainer().validate(module, datamodule=_datamodule(store), verbose=False)[0]["val/loss"])


@pytest.fixture(scope="module")
def bc(tmp_path_factory):
    """6 expert OpenCabinet demos in a store; a tiny policy BC-trained on them,
    saved as a Lightning checkpoint and exported."""
    import lightning.pytorch as pl

    from hop_train.demos_store import write_demos

    root = tmp_path_factory.mktemp("bc")
    store = root / "demos.zarr"
    summary = write_demos("OpenCabinet-v0", 6, str(store), seed=0, envs=4)  # record_demos(..., 6, seed=0, num_envs=4)
    assert summary["episodes"] == 6
    pl.seed_everything(0)
    module = HopPretrainModule(**TINY)
    before = _val_loss(module, store)
    trainer = _trainer(max_steps=STEPS, limit_val_batches=0, gradient_clip_val=0.25)  # the pretraining clip
    trainer.fit(module, datamodule=_datamodule(store))
    after = _val_loss(module, store)
    ckpt = root / "bc.ckpt"
    trainer.save_checkpoint(ckpt)
    exported = export_checkpoint(ckpt, root / "policy.pt")
    state = {k: v.clone() for k, v in module.model.state_dict().items()}
    return {
        "root": root, "store": store, "before": before, "after": after,
        "ckpt": ckpt, "pt": Path(exported), "state": state,
    }  # fmt: skip


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _write_config(root: Path, store: Path, *, model: str = "{width: 32, num_layers: 1, num_heads: 2}") -> Path:
    config = root / "bc.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            seed_everything: 0
            trainer:
              accelerator: cpu
              devices: 1
              max_steps: 2
              num_sanity_val_steps: 0
              enable_progress_bar: false
              enable_model_summary: false
              default_root_dir: {root}/run
              logger:
                - class_path: lightning.pytorch.loggers.CSVLogger
                  init_args: {{save_dir: {root}/run, name: csv}}
              callbacks:
                - class_path: lightning.pytorch.callbacks.ModelCheckpoint
                  init_args: {{monitor: val/loss, mode: min, save_top_k: 1}}
            model: {model}
            data: {{store: {store}, batch_size: 16, val_fraction: 0.34}}
            """
        )
    )
    return config


# ------------------------------------------------------------------ (a) BC lowers the held-out loss
def test_bc_on_expert_demos_lowers_the_held_out_action_loss(bc):
    assert bc["after"] < (1.0 - MIN_DROP) * bc["before"], (bc["before"], bc["after"])


# ------------------------------------------------------------------ (b) init_from loads
@pytest.mark.parametrize("kind", ["ckpt", "pt"])
def test_init_from_loads_the_weights_before_training(bc, kind):
    module = HopPretrainModule(**TINY, init_from=str(bc[kind]))
    assert not _equal(module.model.state_dict(), bc["state"])  # a fresh init differs
    module.setup("fit")  # what the Trainer calls before the first step
    assert module.initialised_from == str(bc[kind])
    assert _equal(module.model.state_dict(), bc["state"])
    module.setup("fit")  # once: a second setup (fit, then validate) does not reload over trained weights
    # Through the Trainer (setup): the loaded policy's held-out loss is the trained one's.
    fresh = HopPretrainModule(**TINY, init_from=str(bc[kind]))
    assert _val_loss(fresh, bc["store"]) == pytest.approx(bc["after"], rel=1e-5)


def test_a_plain_state_dict_loads_too(bc, tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save(bc["state"], plain)  # no recorded config: checked by keys and shapes
    module = HopPretrainModule(**TINY, init_from=str(plain))
    module.load_init_weights()
    assert _equal(module.model.state_dict(), bc["state"])


# ------------------------------------------------------------------ (c) refusals, before training
@pytest.mark.parametrize(
    ("kind", "config", "expected"),
    [
        ("ckpt", {**TINY, "width": 64}, "width 32 in the file vs 64 here"),
        ("pt", {**TINY, "num_layers": 2}, "num_layers 1 in the file vs 2 here"),
        ("pt", {**TINY, "num_heads": 4}, "num_heads 2 in the file vs 4 here"),
        ("ckpt", {**TINY, "num_points": 50}, "num_points 100 in the file vs 50 here"),
    ],
)
def test_another_architecture_is_refused_naming_the_file_and_the_difference(bc, kind, config, expected):
    module = HopPretrainModule(**config, init_from=str(bc[kind]))
    fresh = {k: v.clone() for k, v in module.model.state_dict().items()}
    with pytest.raises(InitFromError) as info:
        module.setup("fit")
    assert str(bc[kind]) in str(info.value) and expected in str(info.value)
    assert module.initialised_from is None and _equal(module.model.state_dict(), fresh)  # nothing loaded


def test_another_embodiment_is_refused(bc, tmp_path):
    blob = read_checkpoint(bc["ckpt"])
    blob["hop"]["joint_names"] = list(reversed(spec.JOINT_NAMES))
    other = tmp_path / "other_robot.ckpt"
    torch.save(blob, other)
    with pytest.raises(InitFromError, match="embodiment: joint names differ") as info:
        HopPretrainModule(**TINY, init_from=str(other)).load_init_weights()
    assert str(other) in str(info.value)


def test_hop_train_fit_refuses_a_mismatch_before_training(bc, tmp_path, capsys):
    model = f"{{width: 64, num_layers: 1, num_heads: 2, init_from: {bc['ckpt']}}}"
    config = _write_config(tmp_path, bc["store"], model=model)
    assert main(["fit", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert str(bc["ckpt"]) in err and "width 32 in the file vs 64 here" in err and "Traceback" not in err
    assert not list((tmp_path / "run").rglob("*.ckpt"))  # no step, no checkpoint


# ------------------------------------------------------------------ (d) missing file, other robot's demos
def test_hop_train_fit_with_a_missing_init_from_exits_2(bc, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "policy.pt"
    config = _write_config(tmp_path, bc["store"])
    assert main(["fit", "--config", str(config), "--model.init_from", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"{missing} does not exist" in err and "Traceback" not in err


def test_hop_train_fit_refuses_demos_of_other_joint_names(bc, tmp_path, capsys):
    store = tmp_path / "other.zarr"
    shutil.copytree(bc["store"], store)
    zarr.open_group(str(store), mode="r+").update_attributes({"joint_names": list(reversed(spec.JOINT_NAMES))})
    config = _write_config(tmp_path, store)
    assert main(["fit", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert str(store) in err and "joint names differ" in err and "Traceback" not in err


# ------------------------------------------------------------------ configs
@pytest.mark.parametrize(("name", "task"), [("bc_grasp_lift", "GraspLift-v0"), ("bc_open_cabinet", "OpenCabinet-v0")])
def test_bc_configs_keep_the_pretraining_objective_and_hyperparameters(name, task):
    bc = yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())
    cpu = yaml.safe_load((REPO / "configs" / "pretrain.yaml").read_text())
    gpu_bc = yaml.safe_load((REPO / "configs" / "bc_gpu.yaml").read_text())
    gpu = yaml.safe_load((REPO / "configs" / "pretrain_full.yaml").read_text())
    assert bc["model"] == {**cpu["model"], "init_from": "out/pretrain/policy.pt"}  # pi_b's architecture, lr, decay
    assert bc["trainer"]["gradient_clip_val"] == cpu["trainer"]["gradient_clip_val"] == 0.25
    assert bc["data"]["proprio_noise"] == cpu["data"]["proprio_noise"] == 0.1
    assert bc["data"]["batch_size"] == cpu["data"]["batch_size"]
    assert bc["data"]["store"] == f"out/demos/{task}.zarr"
    assert gpu_bc["data"]["batch_size"] == gpu["data"]["batch_size"] == 256
    assert gpu_bc["trainer"]["precision"] == gpu["trainer"]["precision"]
    assert gpu_bc["model"] == {"init_from": "out/pretrain_full/policy.pt"}


def test_bc_config_stacks_with_the_gpu_config(capsys):
    configs = []
    for name in ("bc_open_cabinet.yaml", "bc_gpu.yaml"):
        configs += ["--config", str(REPO / "configs" / name)]
    with pytest.raises(SystemExit) as info:
        main(["fit", *configs, "--print_config"])
    assert info.value.code in (0, None)
    out = capsys.readouterr().out
    for line in ("init_from: out/pretrain_full/policy.pt", "batch_size: 256", "precision: bf16-mixed",
                 "store: out/demos/OpenCabinet-v0.zarr", "save_dir: out/bc/open_cabinet", "lr: 0.0001"):  # fmt: skip
        assert line in out, line
