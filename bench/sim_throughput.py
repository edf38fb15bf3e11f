"""Physics throughput of the batched MuJoCo backend.

Prints one JSON object: physics steps per second (scenes x substeps / s) for
1, 64 and 700 scenes on all cores; the same 700 scenes on one thread (the
batch must use both cores: aim >= 1.7x); a serial Python loop of
``mujoco.mj_step`` over one MjData per scene with the same control law, in the
same run (the baseline); and the share of wall time spent outside MuJoCo.

    .venv/bin/python bench/sim_throughput.py [--steps 40]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import mujoco
import numpy as np

from hop_robot.sim.mujoco_batch import MujocoSimulator, default_threads
from hop_robot.sim import SceneParams
from hop_robot.embodiment import spec


def box_points(n: int = 512, half=(0.03, 0.04, 0.08), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-1, 1, size=(n, 3))
    axis = np.argmax(np.abs(pts), axis=1)
    pts[np.arange(n), axis] = np.sign(pts[np.arange(n), axis])
    return pts * np.asarray(half)


def targets_at(k: int, n: int, rng_phase: np.ndarray) -> np.ndarray:
    """A smooth reach-and-grasp-like joint target per scene."""
    t = k / spec.CONTROL_HZ
    q = np.tile(spec.DEFAULT_POSE, (n, 1))
    q[:, spec.ARM] += 0.3 * np.sin(2 * np.pi * 0.5 * t + rng_phase)[:, None]
    q[:, spec.HAND] += 0.6 * (1 - np.cos(2 * np.pi * 0.25 * t))
    return spec.clip_to_limits(q)


def object_pose(n: int) -> np.ndarray:
    pose = np.zeros((n, 7))
    pose[:, 0], pose[:, 2], pose[:, 3] = 0.5, 0.1, 1.0
    return pose


def scene_draws(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-scene phase and joint friction, the same for every path measured."""
    rng = np.random.default_rng(1)
    return rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 0.05, (n, spec.NUM_JOINTS))


def run_batched(n: int, steps: int, nthread: int) -> dict:
    phase, friction = scene_draws(n)
    sim = MujocoSimulator.from_points(box_points(), n, nthread=nthread)
    params = SceneParams.default(n)
    params.joint_friction[:] = friction
    pose = object_pose(n)
    sim.reset(np.tile(spec.DEFAULT_POSE, (n, 1)), pose, params)
    sim.physics_seconds = 0.0  # the simulator times its own MuJoCo calls
    plan = [targets_at(k, n, phase) for k in range(steps)]
    t0 = time.perf_counter()
    for k in range(steps):
        sim.step(plan[k], pose)
    wall = time.perf_counter() - t0
    inner = sim.physics_seconds
    sim.close()
    physics_steps = n * steps * spec.SUBSTEPS
    return {
        "scenes": n,
        "threads": nthread,
        "physics_steps_per_s": physics_steps / wall,
        "control_steps_per_s": n * steps / wall,
        "outside_mujoco_share": max(0.0, 1.0 - inner / wall),
    }


def run_serial_loop(n: int, steps: int) -> dict:
    """Baseline: one MjData per scene, a Python loop calling mj_step, each
    scene with its own joint friction (written into the model before its steps)."""
    phase, friction = scene_draws(n)
    proto = MujocoSimulator.from_points(box_points(), 1, nthread=1)
    model, ix = proto.model, proto.index
    datas = [mujoco.MjData(model) for _ in range(n)]
    for d in datas:
        d.qpos[ix.qpos] = spec.DEFAULT_POSE
        d.ctrl[ix.actuator] = spec.DEFAULT_POSE
        d.mocap_pos[ix.object_mocap] = [0.5, 0.0, 0.1]
        mujoco.mj_forward(model, d)
    arm_target = np.tile(spec.DEFAULT_POSE[spec.ARM], (n, 1))
    plan = [targets_at(k, n, phase) for k in range(steps)]
    limit = spec.ARM_MAX_STEP_PER_SUBSTEP
    act_arm, act_hand = ix.actuator[spec.ARM], ix.actuator[spec.HAND]
    base_friction = model.dof_frictionloss[ix.dof].copy()
    t0 = time.perf_counter()
    for k in range(steps):
        for i, d in enumerate(datas):
            model.dof_frictionloss[ix.dof] = base_friction + friction[i]
            d.ctrl[act_hand] = plan[k][i, spec.HAND]
            for _ in range(spec.SUBSTEPS):
                arm_target[i] += np.clip(plan[k][i, spec.ARM] - arm_target[i], -limit, limit)
                d.ctrl[act_arm] = arm_target[i]
                mujoco.mj_step(model, d)
    wall = time.perf_counter() - t0
    return {"scenes": n, "threads": 1, "physics_steps_per_s": n * steps * spec.SUBSTEPS / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="control steps per measurement")
    args = parser.parse_args()
    threads = default_threads()
    batched = {n: run_batched(n, args.steps, threads) for n in (1, 64, 700)}
    one_thread = run_batched(700, args.steps, 1)
    serial = run_serial_loop(64, args.steps)
    result = {
        "bench": "sim_throughput",
        "machine": {"cpus": threads, "python": platform.python_version(), "mujoco": mujoco.__version__},
        "control_steps": args.steps,
        "substeps": spec.SUBSTEPS,
        "batched": [batched[n] for n in (1, 64, 700)],
        "batched_700_one_thread": one_thread,
        "serial_python_loop_64": serial,
        "thread_scaling_700": batched[700]["physics_steps_per_s"] / one_thread["physics_steps_per_s"],
        "batched_64_vs_serial_loop_64": batched[64]["physics_steps_per_s"] / serial["physics_steps_per_s"],
        "outside_mujoco_share_700": batched[700]["outside_mujoco_share"],
        "aims": {"thread_scaling_700": ">= 1.7", "outside_mujoco_share_700": "<= 0.10"},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
