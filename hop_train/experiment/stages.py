"""The experiment's stages, each through the product's own commands.

1. ``prior``: synthetic videos → ``hop-data generate`` (embedded Ray) → store
   → ``hop-train fit`` (pretraining) → π_b;
2. ``demos``: ``hop-train demos`` per BC task and demonstration count;
3. ``bc``: BC from π_b and from scratch (same architecture, same steps) per
   task × count × seed, then ``hop-train evaluate`` on training and held-out objects;
   ``control``: a control prior pretrained as π_b on the corpus with its
   actions shuffled across episodes (``control.py``), and BC from it at the
   largest demonstration count; ``bc_long``: BC at the largest count again
   with ``bc_long_steps`` steps (π_b and scratch), when the config asks;
4. ``ppo``: HOP PPO from π_b, scratch PPO (moving-average actions), DAPG and
   AMP at the same sample budget per seed: curves, then evaluation on
   training objects, held-out objects and under the weight-force perturbation;
5. ``ablation``: HOP PPO with one modification off at a time.

Every unit writes its small result file (JSON/CSV) under
``results/<scale>/`` last; a unit whose result exists is not redone, so a
killed run resumes where it stopped. Big artefacts (stores, checkpoints) go
to ``out/experiment/<scale>/``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable

import yaml

from .config import ExperimentConfig

__all__ = ["STAGES", "run_stages"]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _cli(name: str) -> list[str]:
    exe = BIN / name
    if exe.exists():
        return [str(exe)]
    module = {"hop-data": "hop_data.cli", "hop-train": "hop_train.cli"}[name]
    return [sys.executable, "-m", module]


def run(cmd: list[Any], log: Path) -> str:
    """Run a command, its output to ``log``; stdout returned. A failure raises
    with the log's tail (the command's own error message)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(c) for c in cmd]
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True, cwd=ROOT)
        f.write(proc.stdout)
    if proc.returncode != 0:
        tail = "".join(open(log).readlines()[-15:])
        raise RuntimeError(f"{cmd[0]} {cmd[1] if len(cmd) > 1 else ''} failed (status {proc.returncode}); {log}:\n{tail}")
    return proc.stdout


def read_json(path: Path) -> dict | None:
    """A result file's contents; None where it is absent."""
    return json.loads(path.read_text()) if path.exists() else None


def write_json(path: Path, data: dict) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)  # atomic: a result file is whole or absent
    return data


def derived_config(base: str, out: Path, changes: dict[str, Any]) -> Path:
    """``base`` YAML with dotted-key ``changes`` applied, written to ``out``."""
    with open(ROOT / base) as f:
        config = yaml.safe_load(f)
    for dotted, value in changes.items():
        node = config
        keys = dotted.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def _metrics(root: Path) -> Path | None:
    found = sorted(root.glob("csv/version_*/metrics.csv"))
    return found[-1] if found else None


def _evaluate(cfg: ExperimentConfig, task: str, policy: Path, out: Path, log: Path, objects="train", perturb=False) -> dict:
    """``hop-train evaluate``'s library call (in this process: no interpreter start per evaluation),
    its summary written to ``out``."""
    import torch

    from hop_train.evaluate import evaluate

    # (whether to evaluate is ``_evaluate_unit``'s decision: a summary here may be stale)
    # Acting for a few dozen envs is many small ops: one torch thread. With two, each op
    # waits on OpenMP's barrier, and on a busy machine a 32-env step took 300 ms instead of 15.
    torch.set_num_threads(1)
    summary = evaluate(task, str(policy), envs=cfg.eval_envs, seed=1000, objects=objects, perturb=perturb,
                       show_progress=False, threads=cfg.threads, episode_steps=cfg.eval_episode_steps)  # fmt: skip
    with open(log, "a") as f:
        f.write(f"evaluate {task} {policy} objects={objects} perturb={perturb}: success {summary['success_rate']:.3f}\n")
    return write_json(out, summary)


#: What a current evaluation summary holds: a unit whose summaries lack one
#: (written by an older ``evaluate``) is evaluated again, not retrained.
EVALUATION_KEYS = ("success_rate", "milestone_rate", "reached_rate", "stalled_rate", "command_gap_median_rad")


def _evaluate_unit(cfg: ExperimentConfig, task: str, policy: Path, res: Path, name: str, log: Path, splits: list[str]) -> None:
    """A unit's evaluations ``<name>_<split>.json`` (split: train, heldout or
    perturb; the last one written marks the unit done), each run only when
    missing or older than ``EVALUATION_KEYS``. A stale summary whose policy
    file is gone (a clone with only ``results/``) is left as it is."""
    for split in splits:
        out = res / f"{name}_{split}.json"
        old = read_json(out)
        if old is not None and (all(k in old for k in EVALUATION_KEYS) or not policy.is_file()):
            continue
        _evaluate(cfg, task, policy, out, log, objects="heldout" if split == "heldout" else "train", perturb=split == "perturb")


def _supervised(steps: int, root: Path, policy: Path) -> dict[str, Any]:
    """Trainer settings of a pretraining or BC run: ``steps`` steps, CSV log
    and checkpoints under ``root``, the best checkpoint's policy exported to ``policy``."""
    return {
        "trainer.max_steps": steps, "trainer.max_time": None,
        "trainer.val_check_interval": max(1, steps // 4), "trainer.log_every_n_steps": 1,
        "trainer.default_root_dir": str(root), "trainer.enable_progress_bar": False,
        "trainer.logger": [{"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(root), "name": "csv"}}],
        "trainer.callbacks": [
            {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
             "init_args": {"monitor": "val/loss", "mode": "min", "save_top_k": 1, "save_last": True, "filename": "best-{step}"}},
            {"class_path": "hop_train.pretrain.ExportPolicy", "init_args": {"filename": "policy.pt", "copy_to": str(policy)}},
        ],
    }  # fmt: skip


def _uses_objects(task: str) -> bool:
    from hop_train.envs import TASKS, task_id

    return TASKS[task_id(task).split("/", 1)[1]].uses_objects


def _arch(prefix: str, cfg: ExperimentConfig) -> dict[str, Any]:
    return {f"{prefix}.width": cfg.width, f"{prefix}.num_layers": cfg.num_layers, f"{prefix}.num_heads": cfg.num_heads}


# ---------------------------------------------------------------- 1. prior
def _pretrain(cfg: ExperimentConfig, store: Path, w: Path, name: str, log: Path) -> Path:
    """``make pretrain``'s module on ``store`` with the scale's sizes: the policy
    exported to ``w/policy.pt``, its curve copied to ``results/<scale>/<name>/``."""
    train = w / "train"
    config = derived_config("configs/pretrain.yaml", w / "pretrain.yaml", {
        **_arch("model", cfg), **_supervised(cfg.pretrain_steps, train, w / "policy.pt"),
        "data.store": str(store), "data.batch_size": cfg.pretrain_batch,
    })  # fmt: skip
    run(_cli("hop-train") + ["fit", "--config", config], log)
    metrics = _metrics(train)
    if metrics:
        (cfg.results / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(metrics, cfg.results / name / "pretrain_metrics.csv")
    return w / "policy.pt"


#: The prior's recipe: a recorded prior made with other values is not used
#: (its BC and PPO units would compare against another prior than the config's).
PRIOR_RECIPE = ("videos", "real_hand_videos", "lifted_videos", "attempts", "pretrain_steps", "pretrain_batch", "width",
                "num_layers", "num_heads")


def _check_recipe(cfg: ExperimentConfig, summary: dict, result: Path) -> None:
    made = summary.get("recipe", {})
    differ = [f"{k}: {made[k]} recorded, {getattr(cfg, k)} in the config" for k in PRIOR_RECIPE
              if k in made and made[k] != getattr(cfg, k)]  # fmt: skip
    if differ:
        raise ValueError(f"{result}: the prior was made with another recipe ({'; '.join(differ)}); its units "
                         f"would mix priors: move {cfg.results} and {cfg.work} aside to run this config")  # fmt: skip


def _real_hand_videos(cfg: ExperimentConfig, out: Path, log: Path) -> dict[str, Any]:
    """``hop-data synth --real-hands`` into ``out``: what it made, or why not."""
    if cfg.real_hand_videos <= 0:
        return {"videos": 0}
    photos = Path(cfg.real_hands) if Path(cfg.real_hands).is_absolute() else ROOT / cfg.real_hands
    if not photos.exists():
        return {"videos": 0, "skipped": f"{photos} is absent: the corpus is synthetic only"}
    from hop_data.lifting.runtime import lift_python

    try:
        lift_python()
    except FileNotFoundError as exc:
        return {"videos": 0, "skipped": f"no lifting environment for MediaPipe ({exc}): the corpus is synthetic only"}
    if not any(out.glob("*.hoi.npz")):
        message = run(_cli("hop-data") + ["synth", "--out", out, "--videos", cfg.real_hand_videos, "--seed", 1,
                                          "--real-hands", photos], log).strip()  # fmt: skip
        (out / "made.txt").write_text(message + "\n")
    return {"videos": len(list(out.glob("*.hoi.npz"))), "photos": str(photos),
            "made": (out / "made.txt").read_text().strip() if (out / "made.txt").exists() else ""}  # fmt: skip


def _lifted_videos(cfg: ExperimentConfig) -> list[Path]:
    """The lifted real videos the config names (``lifted_videos``): each a
    ``.hoi.npz`` file or a folder holding some. A missing path or an empty
    folder stops the run with the key and the path named (before anything is
    generated)."""
    paths = []
    for entry in cfg.lifted_videos:
        path = Path(entry) if Path(entry).is_absolute() else ROOT / entry
        if not path.exists():
            raise ValueError(f"lifted_videos: {path} does not exist")
        if path.is_dir() and not any(path.rglob("*.hoi.npz")):
            raise ValueError(f"lifted_videos: {path} holds no .hoi.npz files (hop-data lift writes them)")
        paths.append(path)
    return paths


def _corpus_part(source: str) -> str:
    """Which part of the prior's corpus a video is, by its source name."""
    return "real_hands" if source.startswith("synth-real/") else "synthetic" if source.startswith("synth/") else "lifted"


def _acceptance_by_corpus(gen: dict) -> dict[str, Any]:
    """Kept / attempts of the synthetic, the real-hand and the lifted videos apart (the generate summary's per-video rows)."""
    out: dict[str, Any] = {}
    for name in ("synthetic", "real_hands", "lifted"):
        rows = [v for v in gen.get("per_video", []) if _corpus_part(str(v.get("source", ""))) == name]
        if rows:
            kept, tried = sum(v["accepted"] for v in rows), sum(v["attempts"] for v in rows)
            out[name] = {"videos": len(rows), "accepted": kept, "attempts": tried, "acceptance": kept / max(tried, 1)}
    return out


def stage_prior(cfg: ExperimentConfig) -> dict:
    result = cfg.results / "prior" / "summary.json"
    summary = read_json(result)
    if summary is not None:
        _check_recipe(cfg, summary, result)
        if Path(summary["policy"]).is_file():
            return summary
    # (a committed summary without its policy file, e.g. on a fresh clone, is redone: same seeds, same corpus)
    lifted = _lifted_videos(cfg)
    w, log = cfg.work / "prior", cfg.work / "logs" / "prior.log"
    t0 = time.perf_counter()
    hoi = w / "hoi"
    if not any(hoi.glob("*.hoi.npz")):
        run(_cli("hop-data") + ["synth", "--out", hoi, "--videos", cfg.videos, "--seed", 0], log)
    real = _real_hand_videos(cfg, w / "hoi_real", log)
    inputs = [hoi] + ([w / "hoi_real"] if real["videos"] else []) + lifted
    gen = json.loads(run(_cli("hop-data") + ["generate", *inputs, "--store", w / "store.zarr", "--attempts", cfg.attempts,
                                             "--seed", 0, "--json"], log))  # fmt: skip
    _pretrain(cfg, w / "store.zarr", w, "prior", log)
    corpus = "synthetic human videos (hop-data synth)"
    if real["videos"]:
        corpus += f" and {real['videos']} with real hand poses (hop-data synth --real-hands: {real['made']})"
    elif "skipped" in real:
        corpus += f"; the real-hand videos were skipped: {real['skipped']}"
    if lifted:
        corpus += f"; lifted real videos from {', '.join(str(p) for p in lifted)}"
    return write_json(result, {
        "videos": cfg.videos, "real_hand_videos": real["videos"], "attempts_per_video": cfg.attempts, "corpus": corpus,
        "generate": {k: gen.get(k) for k in ("videos", "attempts", "episodes", "accepted", "acceptance", "steps", "seconds") if k in gen},
        "by_corpus": _acceptance_by_corpus(gen), "recipe": {k: getattr(cfg, k) for k in PRIOR_RECIPE},
        "pretrain_steps": cfg.pretrain_steps, "policy": str(w / "policy.pt"), "wall_s": time.perf_counter() - t0,
    })  # fmt: skip


# ---------------------------------------------------------------- 2. demos
def _demo_store(cfg: ExperimentConfig, task: str, count: int) -> Path:
    return cfg.work / "demos" / f"{task}_{count}.zarr"


def stage_demos(cfg: ExperimentConfig) -> dict:
    result = cfg.results / "demos" / "summary.json"
    if result.exists():
        return json.loads(result.read_text())
    log = cfg.work / "logs" / "demos.log"
    rows = {}
    tasks = sorted(set(cfg.bc_tasks) | ({t for t in cfg.ppo_tasks} if {"dapg", "amp"} & set(cfg.ppo_methods) else set()))
    for task in tasks:
        counts = sorted(set(cfg.demo_counts) | ({cfg.demos_for_baselines} if task in cfg.ppo_tasks else set()))
        for count in counts:
            out = json.loads(run(_cli("hop-train") + ["demos", "--task", task, "--episodes", count, "--store",
                                                      _demo_store(cfg, task, count), "--seed", 0, "--json"], log))  # fmt: skip
            rows[f"{task}_{count}"] = out
    return write_json(result, rows)


# ---------------------------------------------------------------- 3. BC
def _bc_run(cfg: ExperimentConfig, task: str, count: int, init: str, seed: int, init_from: Path | None,
            steps: int | None = None, folder: str = "bc") -> None:
    """One BC run (``init``: prior, scratch or control; ``init_from`` its
    policy file, None for scratch) of ``steps`` (default ``bc_steps``), then
    its evaluations, under ``folder``; skipped when done."""
    name = f"{task}_{count}demos_{init}_seed{seed}"
    res = cfg.results / folder
    w, log = cfg.work / folder / name, cfg.work / "logs" / f"{folder}.log"
    splits = ["heldout", "train"] if _uses_objects(task) else ["train"]  # Open Cabinet's object is its handle
    if (res / f"{name}_train.json").exists():  # trained and evaluated: only stale evaluations are redone
        return _evaluate_unit(cfg, task, w / "policy.pt", res, name, log, splits)
    base = {"GraspLift-v0": "configs/bc_grasp_lift.yaml", "OpenCabinet-v0": "configs/bc_open_cabinet.yaml"}
    config = derived_config(base.get(task, "configs/bc_grasp_lift.yaml"), w / "bc.yaml", {
        **_arch("model", cfg), **_supervised(steps or cfg.bc_steps, w, w / "policy.pt"), "seed_everything": seed,
        "model.init_from": None if init_from is None else str(init_from),
        "data.store": str(_demo_store(cfg, task, count)), "data.batch_size": cfg.bc_batch,
        "data.val_fraction": 0.2 if count >= 5 else 0.5,
    })  # fmt: skip
    run(_cli("hop-train") + ["fit", "--config", config], log)
    metrics = _metrics(w)
    if metrics:
        res.mkdir(parents=True, exist_ok=True)
        shutil.copy(metrics, res / f"{name}_metrics.csv")
    _evaluate_unit(cfg, task, w / "policy.pt", res, name, log, splits)


_STOP = None  # in a unit worker: the pool's stop event (``_worker_start``)


def _worker_start(stop) -> None:
    """A unit worker's start: its training subprocesses and its evaluations each take
    one thread; ``stop`` is set by the first unit that fails."""
    global _STOP
    _STOP = stop
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def _worker_unit(cfg: ExperimentConfig, *unit) -> bool:
    """One unit in a worker: skipped (False) once another unit failed, else run;
    a failure sets the stop event before it is raised, so no unit starts after it."""
    if _STOP.is_set():
        return False
    try:
        _bc_run(cfg, *unit)
    except BaseException:
        _STOP.set()
        raise
    return True


def _run_units(cfg: ExperimentConfig, units: list[tuple]) -> None:
    """``_bc_run(cfg, *unit)`` for each unit, in order, ``cfg.workers`` at a
    time (each in a worker process on one thread; one worker: here, as it
    was). Units are independent and write their own files, so a run killed
    part way keeps every finished one. The first failure stops the units not
    yet started and is raised once the running ones end."""
    if cfg.workers <= 1 or len(units) <= 1:
        for unit in units:
            _bc_run(cfg, *unit)
        return
    spawn = multiprocessing.get_context("spawn")  # no forked copy of this process's threads
    stop = spawn.Event()
    with ProcessPoolExecutor(cfg.workers, mp_context=spawn, initializer=_worker_start, initargs=(stop,)) as pool:
        futures = [pool.submit(_worker_unit, cfg, *unit) for unit in units]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            for f in futures:
                f.cancel()
            raise failed[0].exception()


def _zero_shot(cfg: ExperimentConfig, tasks: list[str], prior: Path) -> None:
    """π_b on each task with no finetuning (``results/<scale>/prior/<task>_zero_shot_train.json``):
    what BC and HOP PPO start from."""
    for task in tasks:
        _evaluate_unit(cfg, task, prior, cfg.results / "prior", f"{task}_zero_shot", cfg.work / "logs" / "prior.log", ["train"])


def stage_bc(cfg: ExperimentConfig) -> dict:
    prior = Path(stage_prior(cfg)["policy"])
    _zero_shot(cfg, cfg.bc_tasks, prior)
    # Largest demonstration count first, π_b and scratch seed by seed: a run
    # stopped early leaves whole comparisons, not one side of each.
    _run_units(cfg, [(task, count, init, seed, prior if init == "prior" else None)
                     for count in sorted(cfg.demo_counts, reverse=True) for task in cfg.bc_tasks
                     for seed in cfg.seeds for init in ("prior", "scratch")])  # fmt: skip
    return {"runs": len(cfg.bc_tasks) * len(cfg.demo_counts) * 2 * len(cfg.seeds)}


def stage_bc_long(cfg: ExperimentConfig) -> dict:
    """BC at the largest demonstration count with ``bc_long_steps`` steps, π_b
    and scratch (``bc_long_seeds``): does longer BC leave the fixed point the
    ``bc_steps`` runs stall at, and does π_b's lead survive it?"""
    if cfg.bc_long_steps <= 0:
        return {"runs": 0}
    prior = Path(stage_prior(cfg)["policy"])
    count = max(cfg.demo_counts)
    # seed by seed: a run cut short leaves whole comparisons
    _run_units(cfg, [(task, count, init, seed, prior if init == "prior" else None, cfg.bc_long_steps, "bc_long")
                     for seed in cfg.bc_long_seeds for task in cfg.long_tasks for init in ("prior", "scratch")])  # fmt: skip
    return {"runs": len(cfg.long_tasks) * len(cfg.bc_long_seeds) * 2}


# ---------------------------------------------------------------- 3b. the control prior
def stage_control(cfg: ExperimentConfig) -> dict:
    """The action-shuffled control prior (``control.py``: what it rules out),
    pretrained as π_b, then BC from it at the largest demonstration count."""
    from .control import write_action_shuffled_store

    prior = stage_prior(cfg)
    result = cfg.results / "control" / "summary.json"
    w, log = cfg.work / "control", cfg.work / "logs" / "control.log"
    policy = w / "policy.pt"
    if not (result.exists() and policy.is_file()):
        t0 = time.perf_counter()
        store = w / "store.zarr"
        if store.exists():  # a half-written copy from a killed run: start it over
            shutil.rmtree(store)
        counts = write_action_shuffled_store(cfg.work / "prior" / "store.zarr", store, seed=0)
        _pretrain(cfg, store, w, "control", log)
        write_json(result, {"corpus": "the prior's store, each episode's actions from another episode (seeded derangement)",
                            **counts, "pretrain_steps": cfg.pretrain_steps, "policy": str(policy),
                            "prior_policy": prior["policy"], "wall_s": time.perf_counter() - t0})  # fmt: skip
    count = max(cfg.demo_counts)
    _run_units(cfg, [(task, count, "control", seed, policy) for task in cfg.bc_tasks for seed in cfg.seeds])
    return json.loads(result.read_text())


# ---------------------------------------------------------------- 4./5. PPO, baselines, ablation
def _ppo_run(cfg: ExperimentConfig, task: str, method: str, seed: int, folder: str, changes: dict[str, Any]) -> None:
    name = f"{task}_{method}_seed{seed}"
    res = cfg.results / folder
    w, log = cfg.work / folder / name, cfg.work / "logs" / f"{folder}.log"
    splits = ["train"] if folder == "ablation" else ["train", "heldout", "perturb"]
    if (res / f"{name}_{splits[-1]}.json").exists():  # trained and evaluated: only stale evaluations are redone
        return _evaluate_unit(cfg, task, w / "policy.pt", res, name, log, splits)
    prior = Path(stage_prior(cfg)["policy"])
    key = {"GraspLift-v0": "grasp_lift", "GraspThrow-v0": "grasp_throw", "OpenCabinet-v0": "open_cabinet"}[task]
    base = {"hop": f"configs/ppo_{key}.yaml", "scratch": f"configs/ppo_scratch_{key}.yaml",
            "dapg": f"configs/dapg_{key}.yaml", "amp": f"configs/amp_{key}.yaml"}.get(method, f"configs/ppo_{key}.yaml")  # fmt: skip
    per_rollout = cfg.ppo_envs * cfg.ppo_horizon
    rollouts = max(1, cfg.ppo_samples // per_rollout)
    values = {
        **_arch("model.init_args", cfg), "seed_everything": seed, "model.init_args.seed": seed,
        "model.init_args.episode_steps": cfg.ppo_episode_steps, "model.init_args.env_threads": cfg.threads,
        "model.init_args.ppo.num_envs": cfg.ppo_envs, "model.init_args.ppo.horizon": cfg.ppo_horizon,
        "model.init_args.ppo.minibatch_size": max(1, per_rollout // cfg.ppo_minibatches),
        "model.init_args.ppo.lr": cfg.ppo_lr,
        "trainer.max_steps": rollouts * cfg.ppo_minibatches, "trainer.max_time": None,
        "trainer.default_root_dir": str(w), "trainer.enable_progress_bar": False,
        "trainer.logger": [{"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(w), "name": "csv"}}],
        "trainer.callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_last": True}}],
    }  # fmt: skip
    if method in ("hop",) or folder == "ablation":
        values["model.init_args.init_from"] = str(prior)
    if method in ("dapg", "amp"):
        values["model.init_args.demos"] = str(_demo_store(cfg, task, cfg.demos_for_baselines))
        if method == "dapg":
            values["model.init_args.dapg.bc_steps"] = cfg.dapg_bc_steps
    values.update(changes)
    config = derived_config(base, w / "ppo.yaml", values)
    run(_cli("hop-train") + ["fit", "--config", config], log)
    res.mkdir(parents=True, exist_ok=True)
    metrics = _metrics(w)
    if metrics:
        shutil.copy(metrics, res / f"{name}_metrics.csv")
    ckpt = sorted(w.glob("csv/version_*/checkpoints/last.ckpt"))[-1]
    from hop_train.checkpoint import export_checkpoint

    export_checkpoint(ckpt, w / "policy.pt")  # what ``hop-train export`` runs
    _evaluate_unit(cfg, task, w / "policy.pt", res, name, log, splits)


def stage_ppo(cfg: ExperimentConfig) -> dict:
    _zero_shot(cfg, cfg.ppo_tasks, Path(stage_prior(cfg)["policy"]))
    for task in cfg.ppo_tasks:
        for seed in cfg.ppo_seeds:
            for method in cfg.ppo_methods:
                _ppo_run(cfg, task, method, seed, "ppo", {})
    return {"runs": len(cfg.ppo_tasks) * len(cfg.ppo_seeds) * len(cfg.ppo_methods)}


ABLATIONS = {  # one HOP modification switched off
    "init_std": {"model.init_args.ppo.init_std": 1.0},
    "critic_warmup": {"model.init_args.ppo.critic_warmup_steps": 0},
    "detach_critic_tokens": {"model.init_args.ppo.detach_critic_tokens": False},
}


def stage_ablation(cfg: ExperimentConfig) -> dict:
    for task in cfg.ppo_tasks[:1]:
        for seed in cfg.ppo_seeds:
            for off in cfg.ablations:
                _ppo_run(cfg, task, f"hop_no_{off}", seed, "ablation", ABLATIONS[off])
    return {"runs": len(cfg.ppo_seeds) * len(cfg.ablations)}


def machine() -> dict[str, Any]:
    """What the run ran on (the report states it)."""
    import os
    import platform

    import mujoco
    import torch

    return {"cpus": os.cpu_count(), "gpus": torch.cuda.device_count(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "mujoco": mujoco.__version__,
            "date": time.strftime("%Y-%m-%d")}  # fmt: skip


STAGES: dict[str, Callable[[ExperimentConfig], dict]] = {
    "prior": stage_prior,
    "demos": stage_demos,
    "bc": stage_bc,
    "control": stage_control,
    "bc_long": stage_bc_long,
    "ppo": stage_ppo,
    "ablation": stage_ablation,
}


def run_stages(cfg: ExperimentConfig, stages: list[str] | None = None, progress: Callable[[str], None] = print) -> None:
    """Run the stages in order (all by default); finished units are skipped."""
    write_json(cfg.results / "machine.json", machine())
    for name in stages or list(STAGES):
        t0 = time.perf_counter()
        progress(f"[experiment {cfg.scale}] stage {name} ...")
        STAGES[name](cfg)
        wall = time.perf_counter() - t0
        marker = cfg.results / "stages" / f"{name}.json"
        before = read_json(marker) or {}
        total = before.get("wall_s_total", before.get("wall_s_last_run", 0.0)) + wall
        # each run of the stage: the first (for a marker from before runs were listed, what it had added up), then
        # resumptions and re-evaluations
        runs = before.get("runs_s", [before["wall_s_total"] if "wall_s_total" in before else before["wall_s_last_run"]]
                          if before else []) + [wall]  # fmt: skip
        write_json(marker, {"stage": name, "wall_s_last_run": wall, "wall_s_total": total, "runs_s": runs})
        progress(f"[experiment {cfg.scale}] stage {name} done in {wall:.0f} s")
