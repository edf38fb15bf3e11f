"""Render the experiment's report from its run files alone: ``docs/results.md``
and its plots (``docs/img/results_*.png``). No figure is typed by hand: every
number below comes from ``results/<scale>/`` (JSON summaries of ``hop-train
evaluate``, the CSV logs of each training run, the stage timings).

Verdicts on the paper's claims compare 95 % intervals (Wilson, pooled over
seeds): "supports" / "contradicts" when the intervals separate in the
claimed / opposite direction, "too small to tell" when they overlap.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path
import numpy as np

from hop_train.envs.base import REACH_RADIUS, STALL_S, STILL_SPEED
from hop_train.evaluate import wilson_interval

from .config import ExperimentConfig
from .stages import read_json

__all__ = ["render"]


def _over_seeds(folder: Path, run: str, split: str, seeds: list[int]) -> list[dict]:
    """The evaluation summaries ``<run>_seed<s>_<split>.json`` that exist, over ``seeds``."""
    found = [read_json(folder / f"{run}_seed{s}_{split}.json") for s in seeds]
    return [f for f in found if f]


def _csv(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with open(path) as f:
        rows = []
        for row in csv.DictReader(f):
            rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})
        return rows


def _pooled(summaries: list[dict], key: str = "success_rate") -> tuple[float, float, tuple[float, float], int] | None:
    """(mean rate over seeds, std over seeds, pooled 95 % interval, episodes) of
    ``key`` (a rate of ``RUNGS``); None where a summary predates the key."""
    if any(key not in s for s in summaries):
        return None
    rates = [s.get(key, 0.0) for s in summaries]
    k = sum(round(s.get(key, 0.0) * s["episodes"]) for s in summaries)
    n = sum(s["episodes"] for s in summaries)
    return float(np.mean(rates)), float(np.std(rates)), wilson_interval(k, n), n


#: The rungs an evaluation reports, highest first: success, the task's
#: milestone (Grasp & Lift: lifted 10 cm; Open Cabinet: half open), reaching.
RUNGS = {"success_rate": "success", "milestone_rate": "milestone", "reached_rate": "reached"}


def _fmt(mean: float, std: float, ci: tuple[float, float], seeds: int) -> str:
    spread = f" ± {std:.0%}" if seeds > 1 else ""
    return f"{mean:.0%}{spread} [{ci[0]:.0%}, {ci[1]:.0%}]"


def _verdict(better: tuple[float, float], worse: tuple[float, float]) -> str:
    if better[0] > worse[1]:
        return "supports"
    if better[1] < worse[0]:
        return "contradicts"
    return "too small to tell"


def _plot(path: Path, draw) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=110)
    draw(ax)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path.name


def _return(summaries: list[dict]) -> tuple[float, float]:
    """Mean episode return: (mean, std) over seeds."""
    values = [s["mean_return"] for s in summaries]
    return float(np.mean(values)), float(np.std(values))


def _return_direction(a: tuple[float, float], b: tuple[float, float]) -> str:
    """``a`` vs ``b`` (mean, std over seeds): higher / lower when the means differ by
    more than twice the larger spread, else the same (a rough screen, not a test)."""
    gap = a[0] - b[0]
    if abs(gap) <= 2 * max(a[1], b[1]):
        return "the same"
    return "higher" if gap > 0 else "lower"


def _val_l1(folder: Path, run: str, seeds: list[int]) -> tuple[float, float] | None:
    """The best validation L1 of each seed's training run (the checkpoint that
    is exported and evaluated; BC: held-out demonstration episodes), mean and
    std over the seeds whose metrics exist."""
    best = []
    for s in seeds:
        val = [r["val/loss"] for r in _csv(folder / f"{run}_seed{s}_metrics.csv") if "val/loss" in r]
        if val:
            best.append(min(val))
    return (float(np.mean(best)), float(np.std(best))) if best else None


def _closest(summaries: list[dict]) -> tuple[float, float] | None:
    """Median closest approach (m) of each seed's episodes: mean and std over seeds."""
    if not summaries or any("closest_median_m" not in s for s in summaries):
        return None
    values = [s["closest_median_m"] for s in summaries]
    return float(np.mean(values)), float(np.std(values))


def _fmt_cm(v: tuple[float, float] | None) -> str:
    return "—" if v is None else f"{100 * v[0]:.1f} ± {100 * v[1]:.1f} cm"


def _ci(ci: tuple[float, float]) -> str:
    return f"[{ci[0]:.0%}, {ci[1]:.0%}]"


def _fmt_rate(p: tuple | None) -> str:
    return "—" if p is None else f"{p[0]:.0%}"


def _fmt_l1(v: tuple[float, float] | None) -> str:
    return "—" if v is None else f"{v[0]:.3f} ± {v[1]:.3f}"


def _units(cfg: ExperimentConfig, res: Path) -> str:
    """Finished units against the config's, per stage, with what is missing."""
    expected = {
        "bc": [f"{t}_{c}demos_{i}_seed{s}" for c in cfg.demo_counts for t in cfg.bc_tasks for s in cfg.seeds
               for i in ("prior", "scratch")],
        "control": [f"{t}_{max(cfg.demo_counts)}demos_control_seed{s}" for t in cfg.bc_tasks for s in cfg.seeds],
        "bc_long": [f"{t}_{max(cfg.demo_counts)}demos_{i}_seed{s}" for t in cfg.long_tasks
                    for s in cfg.bc_long_seeds for i in ("prior", "scratch")] if cfg.bc_long_steps > 0 else [],
        "ppo": [f"{t}_{m}_seed{s}" for t in cfg.ppo_tasks for s in cfg.ppo_seeds for m in cfg.ppo_methods],
        "ablation": [f"{t}_hop_no_{a}_seed{s}" for t in cfg.ppo_tasks[:1] for s in cfg.ppo_seeds for a in cfg.ablations],
    }  # fmt: skip
    parts = []
    for stage, names in expected.items():
        if not names:
            continue
        folder = res / ("bc" if stage == "control" else stage)
        missing = [n for n in names if not (folder / f"{n}_train.json").exists()]
        part = f"{stage} {len(names) - len(missing)} of {len(names)}"
        if missing:
            part += f" (missing: {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''})"
        parts.append(part)
    return "; ".join(parts)


def _overall(verdicts: list[str]) -> str:
    """One verdict over several comparisons: all must agree to support."""
    if not verdicts:
        return "not run"
    if all(v == "supports" for v in verdicts):
        return "supports"
    if any(v == "contradicts" for v in verdicts):
        return "contradicts"
    return "too small to tell"


def _tally(verdicts: list[str]) -> str:
    counts = {v: verdicts.count(v) for v in dict.fromkeys(verdicts)}
    return ", ".join(f"{v} in {n} of {len(verdicts)}" for v, n in counts.items())


def _control_section(cfg: ExperimentConfig, res: Path) -> dict:
    """BC at the largest demo count from π_b, from the control prior and from scratch."""
    lines = ["### Control: a prior without the behaviour", ""]
    summary = read_json(res / "control" / "summary.json")
    if not summary:
        return {"lines": lines + ["- not run yet", ""], "verdict": "not run"}
    lines.append("The control prior is pretrained exactly as π_b on the same corpus with every episode's actions "
                 "taken from another episode (`hop_train/experiment/control.py` says what it rules out: a benefit "
                 "from having seen the same object clouds and robot postures rather than from the retargeted "
                 "behaviour).")  # fmt: skip
    curve = _csv(res / "control" / "pretrain_metrics.csv")
    val = [r["val/loss"] for r in curve if "val/loss" in r]
    if val:
        lines.append(f"Its validation L1 (on its own shuffled actions) {val[0]:.3f} → {val[-1]:.3f}.")
    lines += ["", "| task | demos | objects | init | " + " | ".join(RUNGS.values())
              + " | closest approach | stalled | mean return | held-out demo L1 |", "|---" * (8 + len(RUNGS)) + "|"]
    count = max(cfg.demo_counts)
    verdicts, approach = [], []
    for task in cfg.bc_tasks:
        for objects in ("train", "heldout"):
            found = {init: _over_seeds(res / "bc", f"{task}_{count}demos_{init}", objects, cfg.seeds)
                     for init in ("prior", "control", "scratch")}  # fmt: skip
            if not found["control"]:
                continue
            for init, runs in found.items():
                if runs:
                    rates = [_pooled(runs, key) for key in RUNGS]
                    ret = _return(runs)
                    l1 = _val_l1(res / "bc", f"{task}_{count}demos_{init}", cfg.seeds)
                    lines.append(f"| {task} | {count} | {objects} | {init} | "
                                 + " | ".join("—" if r is None else _fmt(*r[:3], len(runs)) for r in rates)
                                 + f" | {_fmt_cm(_closest(runs))} | {_fmt_rate(_pooled(runs, 'stalled_rate'))} "
                                 f"| {ret[0]:.0f} ± {ret[1]:.0f} | {_fmt_l1(l1)} |")  # fmt: skip
            if found["prior"] and objects == "train":
                for key in RUNGS:
                    p, c = _pooled(found["prior"], key), _pooled(found["control"], key)
                    if p and c:
                        verdicts.append(_verdict(p[2], c[2]))
                closer = _closest(found["prior"]), _closest(found["control"])
                if all(closer):
                    approach.append(_return_direction(*closer))
    lines.append("")
    verdict = f"{_overall(verdicts)} ({_tally(verdicts)}; success, milestone and reach on training objects)" if verdicts else "not run"
    if approach:
        verdict += f"; π_b's closest approach vs the control's: {_tally(approach)}"
    return {"lines": lines, "verdict": verdict}


def _fmt_gap(rad: float | None) -> str:
    return "—" if rad is None else f"{1e3 * rad:.1f} mrad"


def _stalled_gap(runs: list[dict]) -> str:
    """The median over policies of the command gap in their stalled episodes
    (``evaluate``; absent from summaries written before it), as a clause."""
    gaps = [r["stalled_command_gap_median_rad"] for r in runs if r.get("stalled_command_gap_median_rad") is not None]
    return f"; command gap when stalled {_fmt_gap(float(np.median(gaps)))}" if gaps else ""


def _bc_overview(cfg: ExperimentConfig, res: Path) -> list[str]:
    """One line per task and BC init, pooled over demonstration counts and
    seeds (training objects): what its policies do in closed loop, where
    success says nothing."""
    lines = []
    names = {"prior": "from π_b", "control": "from the control prior", "scratch": "from scratch"}
    for task in cfg.bc_tasks:
        for init, name in names.items():
            runs = [r for c in cfg.demo_counts for r in _over_seeds(res / "bc", f"{task}_{c}demos_{init}", "train", cfg.seeds)]
            runs = [r for r in runs if all(k in r for k in ("reached_rate", "stalled_rate", "closest_median_m"))]
            if not runs:
                continue
            n = sum(r["episodes"] for r in runs)
            share = {k: sum(r[k] * r["episodes"] for r in runs) / n for k in ("success_rate", "reached_rate", "stalled_rate")}
            closest = np.median([r["closest_median_m"] for r in runs])
            lines.append(f"- {task}, BC {name}: {len(runs)} policies, {n} episodes: success {share['success_rate']:.0%}, "
                         f"reached {share['reached_rate']:.0%}, hand stalled at the end {share['stalled_rate']:.0%}; "
                         f"median closest approach {100 * closest:.1f} cm{_stalled_gap(runs)}.")  # fmt: skip
    if lines:
        lines.append("(The command gap: the mean distance between the joint targets a policy commands and its joints, "
                     f"over an episode's last {STALL_S:g} s. The simulated joints track a held target exactly, so "
                     "a still hand with a gap under a milliradian commands where it already is: the policy sits on "
                     "a fixed point. Several milliradians: something holds the joints back, such as contact.)")  # fmt: skip
        lines.insert(0, "What the BC policies do in closed loop on the training objects, pooled over demonstration "
                        "counts and seeds (from the same evaluation files):")  # fmt: skip
    return lines


def _zero_shot_lines(cfg: ExperimentConfig, res: Path) -> list[str]:
    """π_b itself on each task, before any finetuning."""
    lines = []
    for task in dict.fromkeys(cfg.bc_tasks + cfg.ppo_tasks):
        r = read_json(res / "prior" / f"{task}_zero_shot_train.json")
        if r:
            lines.append(f"- {task}, π_b with no finetuning ({r['episodes']} episodes): success {r['success_rate']:.0%}, "
                         f"reached {r['reached_rate']:.0%}, hand stalled at the end {r['stalled_rate']:.0%}; "
                         f"median closest approach {100 * r['closest_median_m']:.1f} cm{_stalled_gap([r])}.")  # fmt: skip
    return lines


def _bc_long_section(cfg: ExperimentConfig, res: Path) -> dict:
    """The largest count's BC with ``bc_long_steps`` beside the ``bc_steps`` runs
    of the same seeds, and its verdicts (π_b vs scratch, training objects)."""
    if cfg.bc_long_steps <= 0:
        return {"lines": [], "verdicts": {}}
    count = max(cfg.demo_counts)
    keys = {"success_rate": "success", "milestone_rate": "milestone", "reached_rate": "reached"}
    lines = [f"### Longer BC: {cfg.bc_long_steps} steps instead of {cfg.bc_steps}", "",
             f"BC at {count} demonstrations again with {cfg.bc_long_steps} steps (seeds {cfg.bc_long_seeds}); beside "
             f"each, the {cfg.bc_steps}-step runs of section 2 with the same seeds.", "",
             "| task | init | steps | seeds | " + " | ".join(keys.values()) + " | success, held-out objects "
             "| closest approach | stalled | held-out demo L1 |", "|---" * (8 + len(keys)) + "|"]  # fmt: skip
    verdicts: dict[str, list[str]] = defaultdict(list)
    per_seed: list[str] = []
    for task in cfg.long_tasks:
        run = lambda init: f"{task}_{count}demos_{init}"  # noqa: E731
        seeds = [s for s in cfg.bc_long_seeds if all((res / "bc_long" / f"{run(i)}_seed{s}_train.json").exists()
                                                     for i in ("prior", "scratch"))]  # fmt: skip
        if not seeds:
            continue
        for init in ("prior", "scratch"):
            for folder, steps in (("bc", cfg.bc_steps), ("bc_long", cfg.bc_long_steps)):
                runs = _over_seeds(res / folder, run(init), "train", seeds)
                held = _over_seeds(res / folder, run(init), "heldout", seeds)
                rates = [_pooled(runs, k) for k in keys] + [_pooled(held, "success_rate") if held else None]
                lines.append(f"| {task} | {'π_b' if init == 'prior' else 'scratch'} | {steps} | {len(runs)} | "
                             + " | ".join("—" if r is None else _fmt(*r[:3], len(runs)) for r in rates)
                             + f" | {_fmt_cm(_closest(runs))} | {_fmt_rate(_pooled(runs, 'stalled_rate'))} | "
                             f"{_fmt_l1(_val_l1(res / folder, run(init), seeds))} |")  # fmt: skip
        per_seed += [f"| {task} | {seed} | {'π_b' if init == 'prior' else 'scratch'} | "
                     + " | ".join(f"{r[k]:.0%}" for k in keys) + f" | {100 * r['closest_median_m']:.1f} cm "
                     f"| {r['stalled_rate']:.0%} | {_fmt_gap(r.get('stalled_command_gap_median_rad'))} |"
                     for seed in seeds for init in ("prior", "scratch")
                     for r in [read_json(res / "bc_long" / f"{run(init)}_seed{seed}_train.json")]]  # fmt: skip
        long = {i: _over_seeds(res / "bc_long", run(i), "train", seeds) for i in ("prior", "scratch")}
        for key, label in keys.items():
            p, q = _pooled(long["prior"], key), _pooled(long["scratch"], key)
            if p and q:
                verdicts[label].append(f"{_verdict(p[2], q[2])} ({task}: π_b {p[0]:.0%} {_ci(p[2])} vs scratch "
                                       f"{q[0]:.0%} {_ci(q[2])}, {len(seeds)} seed{'s' if len(seeds) > 1 else ''})")  # fmt: skip
    if per_seed:
        lines += ["", f"Seed by seed ({cfg.bc_long_steps} steps, training objects): the spread between seeds is the "
                      "pooled intervals' blind spot.", "",
                  "| task | seed | init | " + " | ".join(keys.values()) + " | closest approach | stalled "
                  "| command gap when stalled |", "|---" * (6 + len(keys)) + "|", *per_seed]  # fmt: skip
    return {"lines": lines + [""], "verdicts": verdicts}


def _running_mean(pts: list[tuple[float, float]], k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Samples and the running mean over ``k`` logged rollouts (seeds pooled, by samples)."""
    pts = sorted(pts)
    x, y = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    k = max(1, min(k, len(y)))
    return x[k - 1:], np.convolve(y, np.ones(k) / k, mode="valid")


def _samples_to_reach(returns: dict[str, list[tuple[float, float]]], task: str, methods: list[str]) -> list[str]:
    """Sample efficiency on the return (success stays 0 at small budgets): the
    samples each method's running-mean return needs to reach scratch PPO's best."""
    scratch = returns.get(f"{task} scratch")
    if not scratch:
        return []
    target = float(_running_mean(scratch)[1].max())
    cells = []
    for method in methods:
        pts = returns.get(f"{task} {method}")
        if not pts:
            continue
        x, y = _running_mean(pts)
        hit = np.flatnonzero(y >= target)
        cells.append(f"{method} {int(x[hit[0]]):,}" if len(hit) else f"{method} never (best {y.max():.1f})")
    return ["", f"Samples to reach scratch PPO's best running-mean rollout return ({target:.1f}, 5 logged rollouts, "
            f"{task}): " + "; ".join(cells) + "."]  # fmt: skip


def report_path(cfg: ExperimentConfig) -> Path:
    """Where a scale's report goes by default: ``docs/results.md`` for ``cpu`` (``make experiment``),
    ``docs/results-<scale>.md`` for the others; smoke's under its work dir (not committed)."""
    if cfg.scale == "smoke":
        return cfg.work / "results.md"
    return Path("docs/results.md") if cfg.scale == "cpu" else Path(f"docs/results-{cfg.scale}.md")


def render(cfg: ExperimentConfig, out: str | None = None) -> Path:
    res = cfg.results
    md_path = Path(out) if out else report_path(cfg)
    img = md_path.parent / "img"
    rel = os.path.relpath(img, md_path.parent)
    lines: list[str] = [f"# Results: does pretraining on retargeted human videos help? (scale `{cfg.scale}`)", ""]
    lines.append("_Rendered by `python -m hop_train.experiment report` from the run files in "
                 f"`{res}/`; nothing here is typed by hand._")  # fmt: skip
    lines.append("")
    machine = read_json(res / "machine.json") or {}
    stages = {p.stem: read_json(p) for p in sorted((res / "stages").glob("*.json"))}
    spent = {k: v.get("wall_s_total", v["wall_s_last_run"]) for k, v in stages.items() if v}
    wall = sum(spent.values())
    first = [v.get("runs_s", [spent[k]])[0] for k, v in stages.items() if v]  # a marker that lists no runs: what it added up
    first_pass = (f" Their first recorded pass (before later resumptions and re-evaluations) took {sum(first) / 60:.1f} min."
                  if any(v and len(v.get("runs_s", [])) > 1 for v in stages.values()) else "")  # fmt: skip
    lines += [
        "## Setup",
        f"- Hardware: {machine.get('cpus', '?')} CPU cores, {machine.get('gpus', 0)} GPU, {machine.get('platform', '?')}; "
        f"torch {machine.get('torch', '?')}, mujoco {machine.get('mujoco', '?')}.",
        f"- Seeds: BC {cfg.seeds}, PPO {cfg.ppo_seeds}. Policy: width {cfg.width}, {cfg.num_layers} layers, {cfg.num_heads} heads, context 16, 100 points.",
        f"- Wall time of the stages: {wall / 60:.1f} min (" + ", ".join(f"{k} {v / 60:.1f}" for k, v in spent.items())
        + "): each stage's runs added up (resumed after a kill, or run again to redo stale evaluations); a stage "
        "marker written before the run files counted runs holds only that stage's last run, so this can undercount."
        + first_pass,
        "- Units finished (a unit: one training run and its evaluations): " + _units(cfg, res)
        + " (rows below come from the finished units; `make experiment` runs the rest).",
        f"- Evaluation: {cfg.eval_envs} episodes per policy and object set, {cfg.eval_episode_steps}-step episodes, "
        "success with its 95 % Wilson interval (pooled over seeds).",
        "",
    ]  # fmt: skip

    # ---------------------------------------------------------------- prior
    prior = read_json(res / "prior" / "summary.json")
    lines.append("## 1. The prior π_b")
    if prior:
        g = prior.get("generate", {})
        lines.append(f"- Corpus: {prior['videos']} {prior.get('corpus', 'videos')}, {prior['attempts_per_video']} attempts each: "
                     f"{g.get('accepted', '?')} of {g.get('attempts', '?')} attempts kept "
                     f"({g.get('acceptance', float('nan')):.0%}).")  # fmt: skip
        for name, part in prior.get("by_corpus", {}).items():
            lines.append(f"  - {name.replace('_', ' ')}: {part['videos']} videos, {part['accepted']} of {part['attempts']} "
                         f"attempts kept ({part['acceptance']:.0%}).")  # fmt: skip
        curve = _csv(res / "prior" / "pretrain_metrics.csv")
        train = [(r["step"], r["train/loss"]) for r in curve if "train/loss" in r]
        val = [(r["step"], r["val/loss"]) for r in curve if "val/loss" in r]
        if val:
            lines.append(f"- Pretraining: {prior['pretrain_steps']} steps; validation L1 (Eq. 2) {val[0][1]:.3f} → {val[-1][1]:.3f}.")

        def draw(ax):
            if train:
                ax.plot(*zip(*train), label="train L1")
            if val:
                ax.plot(*zip(*val), "o-", label="validation L1 (held-out videos)")
            ax.set_xlabel("optimiser step"), ax.set_ylabel("L1 (scaled actions)"), ax.legend(), ax.set_title("Pretraining")

        name = _plot(img / f"results_{cfg.scale}_pretrain.png", draw)
        if name:
            lines.append(f"\n![pretraining curve]({rel}/{name})")
    else:
        lines.append("- not run yet")
    lines.append("")

    # ---------------------------------------------------------------- BC
    lines.append("## 2. Behaviour cloning with few demonstrations")
    lines.append(f"BC from π_b and from scratch: same architecture, {cfg.bc_steps} steps, batch {cfg.bc_batch}, the "
                 "pretraining objective and settings. Success is the task's; the milestone is a step short of it "
                 "(Grasp & Lift: the object lifted 10 cm; Open Cabinet: the drawer half open), so that policies "
                 "which never succeed can still be told apart.")  # fmt: skip
    lines.append("")
    bc_claims: dict[str, list[str]] = defaultdict(list)
    series: dict[tuple[str, str, str], list[tuple[int, float, tuple[float, float]]]] = defaultdict(list)
    lines.append("| task | demos | objects | " + " | ".join(f"{label} π_b / scratch" for label in RUNGS.values())
                 + " | closest approach π_b / scratch | stalled π_b / scratch | return π_b / scratch "
                 "| episode length π_b / scratch | held-out demo L1 π_b / scratch |")  # fmt: skip
    lines.append("|---" * (8 + len(RUNGS)) + "|")
    for task in cfg.bc_tasks:
        for count in cfg.demo_counts:
            for objects in ("train", "heldout"):
                found = {init: _over_seeds(res / "bc", f"{task}_{count}demos_{init}", objects, cfg.seeds)
                         for init in ("prior", "scratch")}  # fmt: skip
                if not (found["prior"] and found["scratch"]):
                    continue
                cells = []
                for key, label in RUNGS.items():
                    p, q = _pooled(found["prior"], key), _pooled(found["scratch"], key)
                    if p is None or q is None:
                        cells.append("—")
                        continue
                    verdict = _verdict(p[2], q[2])
                    bc_claims[label].append(verdict)
                    cells.append(f"{_fmt(*p[:3], len(found['prior']))} / {_fmt(*q[:3], len(found['scratch']))}: {verdict}")
                    if objects == "train":
                        series[(task, "prior", key)].append((count, p[0], p[2]))
                        series[(task, "scratch", key)].append((count, q[0], q[2]))
                rp, rs = _return(found["prior"]), _return(found["scratch"])
                bc_claims["return"].append(_return_direction(rp, rs))
                length = [np.mean([s["mean_length"] for s in found[i]]) for i in ("prior", "scratch")]
                cp, cs = _closest(found["prior"]), _closest(found["scratch"])
                if cp and cs:
                    bc_claims["closest"].append(_return_direction(cp, cs))
                lp, ls = (_val_l1(res / "bc", f"{task}_{count}demos_{init}", cfg.seeds) for init in ("prior", "scratch"))
                if objects == "train" and lp and ls:
                    bc_claims["l1"].append(_return_direction(lp, ls))
                stalled = [_pooled(found[i], "stalled_rate") for i in ("prior", "scratch")]
                lines.append(f"| {task} | {count} | {objects} | {' | '.join(cells)} | {_fmt_cm(cp)} / {_fmt_cm(cs)} "
                             f"| {' / '.join(_fmt_rate(r) for r in stalled)} "
                             f"| {rp[0]:.0f} ± {rp[1]:.0f} / "
                             f"{rs[0]:.0f} ± {rs[1]:.0f} | {length[0]:.0f} / {length[1]:.0f} | {_fmt_l1(lp)} / {_fmt_l1(ls)} |")  # fmt: skip
    lines.append(f"\nCells: mean over seeds ± std over seeds [pooled 95 % interval], then the verdict (module doc); "
                 f"{len(cfg.seeds)} seeds per cell. Reached: the fingertips came within {REACH_RADIUS * 100:.0f} cm "
                 "(mean distance) of the object's surface, or of the handle's; closest approach: the median over episodes "
                 "of that distance's smallest value, mean ± std over seeds (a random policy: ~18 cm on Grasp & Lift). "
                 f"Stalled: episodes without success whose hand stood still (palm under {STILL_SPEED * 100:.0f} cm/s) "
                 f"for their last {STALL_S:.0f} s: the policy stopped acting (mean over seeds). Returns: mean episode return, mean ± std "
                 "over seeds; a return sums over the steps an episode lasts, so an episode that ends early (the object "
                 "pushed off the table) scores less than a hand that never reaches it: read returns with the episode "
                 "lengths. Held-out demo L1: the exported checkpoint's validation L1 (Eq. 2) on the demonstrations BC "
                 "did not train on (an offline measure of imitation, not of closed-loop success), mean ± std over seeds.")  # fmt: skip

    def draw_bc(key: str, label: str):
        def draw(ax):
            for (task, init, k), pts in sorted(series.items()):
                if k != key:
                    continue
                pts.sort()
                x = [p[0] for p in pts]
                ax.errorbar(x, [p[1] for p in pts], yerr=[[p[1] - p[2][0] for p in pts], [p[2][1] - p[1] for p in pts]],
                            marker="o", capsize=3, label=f"{task} from {'π_b' if init == 'prior' else 'scratch'}")  # fmt: skip
            ax.set_xlabel("demonstrations"), ax.set_ylabel(f"{label} (training objects)"), ax.set_ylim(-0.05, 1.05)
            ax.legend(fontsize=7), ax.set_title(f"BC: {label} vs demonstrations")

        return draw

    for key, label in RUNGS.items():
        if any(k == key for (_, _, k) in series):
            name = _plot(img / f"results_{cfg.scale}_bc{'' if key == 'success_rate' else '_' + label}.png", draw_bc(key, label))
            if name:
                lines.append(f"\n![BC {label} vs demonstrations]({rel}/{name})")
    lines.append("")
    control = _control_section(cfg, res)
    bc_long = _bc_long_section(cfg, res)
    lines += control["lines"] + bc_long["lines"]

    # ---------------------------------------------------------------- PPO
    lines.append("## 3. PPO from π_b vs. scratch PPO, DAPG, AMP (same sample budget)")
    curves: dict[str, dict[str, list[tuple[float, float]]]] = {"rollout/success": {}, "rollout/return": {}}
    finals: dict[str, dict[str, tuple]] = defaultdict(dict)
    lines.append("| task | method | training objects | held-out objects | weight-force perturbation | reached (training objects) "
                 "| closest approach | stalled | samples |")  # fmt: skip
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for task in cfg.ppo_tasks:
        for method in cfg.ppo_methods:
            row = []
            for split in ("train", "heldout", "perturb"):
                found = _over_seeds(res / "ppo", f"{task}_{method}", split, cfg.ppo_seeds)
                if found:
                    finals[method][split] = _pooled(found) + (len(found),)
                    row.append(_fmt(*finals[method][split][:3], finals[method][split][4]))
                else:
                    row.append("—")
            found = _over_seeds(res / "ppo", f"{task}_{method}", "train", cfg.ppo_seeds)
            reached = _pooled(found, "reached_rate") if found else None
            row += ["—" if reached is None else _fmt(*reached[:3], len(found)), _fmt_cm(_closest(found)),
                    _fmt_rate(_pooled(found, "stalled_rate") if found else None)]
            samples = []
            for s in cfg.ppo_seeds:
                rows_ = _csv(res / "ppo" / f"{task}_{method}_seed{s}_metrics.csv")
                for metric, by_label in curves.items():
                    pts = [(r["train/samples"], r[metric]) for r in rows_ if metric in r and "train/samples" in r]
                    if pts:
                        by_label.setdefault(f"{task} {method}", []).extend(pts)
                samples.append(max((r.get("train/samples", 0) for r in rows_), default=0))
            lines.append(f"| {task} | {method} | {' | '.join(row)} | {int(max(samples, default=0)):,} |")
        lines += _samples_to_reach(curves["rollout/return"], task, cfg.ppo_methods)
    per_env = cfg.ppo_samples // max(cfg.ppo_envs, 1)
    if per_env < cfg.ppo_episode_steps:
        lines.append(f"\nAt this budget each env takes {per_env:,} steps, fewer than one {cfg.ppo_episode_steps}-step "
                     "episode: no episode times out, so the rollout returns above are those of episodes that ended "
                     "early (a failure: the object left the table or fell; or a success), not of typical episodes.")  # fmt: skip

    def draw_ppo(metric: str, label: str):
        def draw(ax):
            for name, pts in sorted(curves[metric].items()):
                ax.plot(*_running_mean(pts), label=name)
            ax.set_xlabel("environment samples"), ax.set_ylabel(f"{label} (episodes ended in rollouts)")
            ax.legend(fontsize=7), ax.set_title(f"PPO: {label} vs samples (seeds pooled, running mean of 5)")

        return draw

    for metric, label in (("rollout/success", "success"), ("rollout/return", "return")):
        if curves[metric]:
            name = _plot(img / f"results_{cfg.scale}_ppo{'' if label == 'success' else '_return'}.png", draw_ppo(metric, label))
            if name:
                lines.append(f"\n![PPO {label} vs samples]({rel}/{name})")

    def draw_robust(ax):
        methods = [m for m in cfg.ppo_methods if m in finals]
        x = np.arange(len(methods))
        for j, split in enumerate(("train", "heldout", "perturb")):
            vals = [finals[m].get(split, (0, 0, (0, 0)))[0] for m in methods]
            ax.bar(x + (j - 1) * 0.27, vals, 0.27, label=split)
        ax.set_xticks(x, methods), ax.set_ylabel("success"), ax.set_ylim(0, 1.05), ax.legend(fontsize=7)
        ax.set_title("Final policies")

    if finals:
        name = _plot(img / f"results_{cfg.scale}_robustness.png", draw_robust)
        if name:
            lines.append(f"\n![final success, held-out objects, perturbation]({rel}/{name})")
    lines.append("")

    # ---------------------------------------------------------------- ablation
    lines.append("## 4. Ablation: HOP PPO with one modification off")
    lines.append("| run | training objects |")
    lines.append("|---|---|")
    for task in cfg.ppo_tasks[:1]:
        base = finals.get("hop", {}).get("train")
        if base:
            lines.append(f"| all three on (HOP) | {_fmt(*base[:3], base[4])} |")
        for off in cfg.ablations:
            found = _over_seeds(res / "ablation", f"{task}_hop_no_{off}", "train", cfg.ppo_seeds)
            if found:
                p = _pooled(found)
                lines.append(f"| without {off} | {_fmt(p[0], p[1], p[2], len(found))} |")
    lines.append("")

    # ---------------------------------------------------------------- claims
    lines.append("## The paper's claims against this run")
    claims = []

    def compare(split: str) -> str:
        hop, scratch = finals.get("hop", {}).get(split), finals.get("scratch", {}).get(split)
        if not hop or not scratch:
            return "not run"
        return f"{_verdict(hop[2], scratch[2])} (HOP {hop[0]:.0%} vs scratch {scratch[0]:.0%})"

    def compare_reach() -> str:
        """The reach rung of the final policies (training objects), where success is 0 for both."""
        task = cfg.ppo_tasks[0] if cfg.ppo_tasks else None
        found = {m: _over_seeds(res / "ppo", f"{task}_{m}", "train", cfg.ppo_seeds) for m in ("hop", "scratch")}
        rates = {m: _pooled(f, "reached_rate") if f else None for m, f in found.items()}
        if not all(rates.values()):
            return ""
        hop, scratch = rates["hop"], rates["scratch"]
        zero = read_json(res / "prior" / f"{task}_zero_shot_train.json")
        start = f"; π_b before PPO: {zero['reached_rate']:.0%}" if zero and "reached_rate" in zero else ""
        return (f"; on reaching the object, {_verdict(hop[2], scratch[2])} (HOP {hop[0]:.0%} {_ci(hop[2])} vs scratch "
                f"{scratch[0]:.0%} {_ci(scratch[2])}{start}; final policies at the same samples: a level, not a sample "
                "efficiency)")  # fmt: skip

    claims.append(("BC from π_b beats BC from scratch at every demo count (paper: < 50 demos succeed where scratch gets 0 %)",
                   _overall(bc_claims["success"]) + f" on success; {_overall(bc_claims['milestone'])} on the milestone "
                   f"({_tally(bc_claims['milestone'])}); {_overall(bc_claims['reached'])} on reaching "
                   f"({_tally(bc_claims['reached']) or 'not evaluated'}); π_b's closest approach vs scratch's: "
                   f"{_tally(bc_claims['closest']) or 'not evaluated'}; π_b's mean return vs scratch's: {_tally(bc_claims['return'])} "
                   "(differences beyond twice the seeds' spread); offline, π_b's held-out demonstration L1 vs "
                   f"scratch's: {_tally(bc_claims['l1']) or 'not run'}"))  # fmt: skip
    if bc_long["verdicts"]:
        claims.append((f"The same claim with {cfg.bc_long_steps}-step BC at {max(cfg.demo_counts)} demonstrations "
                       "(training objects)", "; ".join(f"{label}: {'; '.join(v)}" for label, v in bc_long["verdicts"].items())))  # fmt: skip
    claims.append(("Control: BC from π_b beats BC from the action-shuffled prior (the benefit is behaviour, not exposure)",
                   control["verdict"]))  # fmt: skip
    claims.append(("HOP PPO reaches scratch PPO's final success with ≤ ½ of the samples (paper: 2–5× sample efficiency)",
                   compare("train") + compare_reach() + "; sample efficiency needs curves that reach scratch's final success"))  # fmt: skip
    claims.append(("≥ 2× scratch's success under a force of the object's weight (paper: > 3× robustness)", compare("perturb")))
    claims.append(("≥ 2× scratch's success on held-out objects (paper: > 2×)", compare("heldout")))
    lines.append("| claim | this run |")
    lines.append("|---|---|")
    lines += [f"| {c} | {v} |" for c, v in claims]
    lines.append("")
    overview = _bc_overview(cfg, res) + _zero_shot_lines(cfg, res)
    if overview:
        lines += overview + [""]
    lines.append("Why a verdict can be \"too small to tell\" at this scale, and what would settle it, is written in "
                 "`docs/experiment.md` (the sizes of each scale and what they cannot reach).")  # fmt: skip
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text("\n".join(lines) + "\n")
    return md_path
