"""The simulated robot: same control as data generation, a dynamic object on the
table, real time; and the moved scene module."""

from __future__ import annotations

import numpy as np
import pytest

from _robot_fakes import FakeClock
from hop_robot.drivers.base import RobotStoppedError, UnsafeCommandError
from hop_robot.drivers.sim import SimRobot, SimRobotConfig
from hop_robot.embodiment import spec
from hop_robot.sim import SceneConfig, SceneError, compile_scene


@pytest.fixture(scope="module")
def lockstep():
    robot = SimRobot(SimRobotConfig(realtime=False))
    with robot:
        yield robot


def test_one_simulation_core_for_robot_and_data_generation(lockstep):
    """The sim robot runs on hop_robot.sim's backend (the one retargeting uses), object dynamic."""
    from hop_robot.sim.mujoco_batch import MujocoSimulator

    assert isinstance(lockstep.sim, MujocoSimulator) and lockstep.sim.dynamic
    points = np.random.default_rng(0).uniform(-0.03, 0.03, (50, 3))
    _, kinematic = compile_scene(points)
    assert kinematic.object_mocap == 0 and kinematic.object_qpos == -1
    model, dynamic = compile_scene(points, SceneConfig(object_dynamic=True, object_collision=True))
    assert dynamic.object_mocap == -1 and dynamic.object_qpos >= 0 and model.nq == 23 + 7
    with pytest.raises(SceneError, match="object_collision"):
        compile_scene(points, SceneConfig(object_dynamic=True))


def test_same_control_as_data_generation(lockstep):
    """Lock-step SimRobot and the retargeting simulator (kinematic object), same targets: same joints."""
    from hop_robot.sim.mujoco_batch import MujocoSimulator

    rng = np.random.default_rng(1)
    q0 = np.array(lockstep.config.initial_qpos)
    far = np.array([[0.6, 0.4, 0.3, 1.0, 0.0, 0.0, 0.0]])  # the kinematic object out of the way
    robot = SimRobot(SimRobotConfig(realtime=False))
    with robot, MujocoSimulator.from_points(robot.object_points, 1, nthread=1) as sim:
        sim.reset(q0[None], far)
        target = q0.copy()
        for _ in range(15):
            target = np.clip(target + rng.normal(0, 0.08, 23) * (np.arange(23) < 7) + rng.normal(0, 0.2, 23) * (np.arange(23) >= 7),
                             spec.JOINT_LOWER + 0.05, spec.JOINT_UPPER - 0.05)  # fmt: skip
            target[spec.ARM] = np.clip(target[spec.ARM], q0[spec.ARM] - 0.3, q0[spec.ARM] + 0.3)
            robot.act(target)
            obs = sim.step(target[None], far)
            assert np.allclose(robot.observe().q, obs.qpos[0], atol=1e-6)


def test_object_rests_on_the_table_and_stop_holds(lockstep):
    pose0 = lockstep.object_pose()
    assert abs(pose0[0] - 0.50) < 1e-6 and pose0[2] > 0.04
    q0 = lockstep.observe().q
    for _ in range(20):
        lockstep.act(q0)
    pose = lockstep.object_pose()
    assert np.linalg.norm(pose[:3] - pose0[:3]) < 0.005  # settled, not falling through
    cloud, _ = lockstep.object_cloud_truth()
    assert cloud.shape == (spec.NUM_POINTS, 3) and cloud[:, 2].min() > -0.002


def test_driver_contract(lockstep):
    with pytest.raises(UnsafeCommandError):
        lockstep.act(np.full(23, np.nan))
    ro = SimRobot(SimRobotConfig(realtime=False), read_only=True)
    with ro:
        with pytest.raises(RobotStoppedError):
            ro.act(spec.DEFAULT_POSE)
    robot = SimRobot(SimRobotConfig(realtime=False))
    with robot:
        target = robot.observe().q.copy()
        target[0] += 0.2
        robot.act(target)
        robot.stop()
        q_stop = robot.observe().q
        robot.step(12)
        assert np.allclose(robot.observe().q[spec.ARM], q_stop[spec.ARM], atol=2e-3)  # holds where it stopped
        with pytest.raises(RobotStoppedError):
            robot.act(target)


def test_real_time_physics_thread():
    """The physics thread's schedule on a fake clock: 120 substeps per second,
    and after a stall it resumes from now instead of bursting."""
    clock = FakeClock()
    robot = SimRobot(clock=clock)
    try:
        with robot:
            clock.until_asleep()  # the thread has run its first substep
            assert robot.substeps == 1
            dt = 1.0 / spec.SIM_HZ
            clock.sleep(0.5 + dt / 2)
            assert robot.substeps == 1 + 60 and robot.late_resyncs == 0
            clock.jump(0.3)  # the machine stalls 0.3 s
            clock.sleep(dt / 2)
            assert robot.late_resyncs == 1 and robot.substeps == 61 + 2  # the late one, then one more from now
            clock.sleep(0.5)
            assert robot.substeps == 63 + 60 and robot.late_resyncs == 1  # no burst of the 36 lost substeps
        assert robot._thread is None
    finally:
        clock.close()
