"""The xArm driver at the SDK boundary: a recording double of ``xarm.wrapper.XArmAPI``
(tests/_robot_fakes.py) that also blocks one call for 190 ms."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from _robot_fakes import FakeCamera, FakeRobot, FakeXArmAPI, WavePolicy
from hop_robot.drivers.base import RobotFault, RobotStoppedError
from hop_robot.drivers.composite import ArmHandRobot
from hop_robot.drivers.xarm import XArmConfig, XArmDriver
from hop_robot.embodiment import spec
from hop_robot.loop import ControlLoop, LoopConfig

ARM0 = np.array(spec.DEFAULT_ARM_POSE)


def make_arm(read_only=False, **config):
    FakeXArmAPI.instances.clear()
    arm = XArmDriver(XArmConfig(ip="10.0.0.2", **config), read_only=read_only, api_factory=FakeXArmAPI)
    return arm


def fake_hand(read_only=False):
    return FakeRobot(spec.DEFAULT_POSE[spec.HAND], read_only=read_only, num_joints=spec.NUM_HAND_JOINTS,
                     lower=spec.JOINT_LOWER[spec.HAND], upper=spec.JOINT_UPPER[spec.HAND])  # fmt: skip


def test_startup_sequence_enables_servo_mode_before_any_command():
    arm = make_arm()
    with arm:
        api = FakeXArmAPI.instances[0]
        assert api.port == "10.0.0.2" and api.is_radian is True and api.init_kwargs["report_type"] == "real"
        time.sleep(0.1)
        names = api.names()
        setup = [n for n in names if n != "set_servo_angle_j"]
        assert setup[:8] == [
            "register_error_warn_changed_callback", "register_state_changed_callback",
            "register_report_location_callback", "get_servo_angle", "set_collision_sensitivity",
            "motion_enable", "set_mode", "set_state",
        ]  # fmt: skip
        assert "set_reduced_mode" not in setup  # the controller's own reduced-mode setting is left alone
        assert api.calls_to("set_mode")[0][3] == (1,) and api.calls_to("set_state")[0][3] == (0,)
        first_servo = names.index("set_servo_angle_j")
        assert first_servo > names.index("set_state")
        # nothing moves at connect: the servo holds the measured pose
        sent = np.array([c[3][0] for c in api.calls_to("set_servo_angle_j")])
        assert np.allclose(sent, ARM0) and all(c[4]["is_radian"] for c in api.calls_to("set_servo_angle_j"))
        state = arm.observe()
        assert np.allclose(state.q, ARM0) and time.monotonic() - state.stamp < 0.05
    assert api.names()[-4:] == [
        "release_error_warn_changed_callback", "release_state_changed_callback",
        "release_report_location_callback", "disconnect",
    ]  # fmt: skip
    assert api.calls_to("set_state")[-1][3] == (4,)  # stop before release


def test_servo_thread_interpolates_at_its_own_rate_with_a_speed_cap():
    arm = make_arm()
    with arm:
        api = FakeXArmAPI.instances[0]
        target = ARM0 + np.array([0.05, -0.05, 0.0, 0.05, 0.0, 0.0, 0.2])  # joint 7 beyond one period's cap
        t0 = time.monotonic()
        arm.act(target)
        time.sleep(0.5)
        calls = [c for c in api.calls_to("set_servo_angle_j") if c[0] >= t0]
        assert all(c[1] == "hop-xarm-servo" for c in calls)  # never the caller's thread
        rate = (len(calls) - 1) / (calls[-1][0] - calls[0][0])
        assert 60 <= rate <= 105, rate  # 100 Hz; a loaded CI machine slows the thread, never speeds it up
        sent = np.array([c[3][0] for c in calls])
        steps = np.abs(np.diff(np.vstack([ARM0, sent]), axis=0))
        assert steps.max() <= spec.ARM_MAX_VELOCITY / spec.ARM_SERVO_HZ + 1e-9  # 0.01 rad a tick
        assert np.allclose(sent[-1], target, atol=1e-9)  # arrived
        assert np.allclose(arm.observe().q, target, atol=1e-9)  # the report stream says so too


def test_a_190ms_blocking_sdk_call_does_not_stall_the_loop():
    arm = make_arm()
    robot = ArmHandRobot(arm, fake_hand())
    with robot:
        api = FakeXArmAPI.instances[0]
        api.block = ("set_servo_angle_j", 40, 0.19)  # ~0.4 s into the run
        loop = ControlLoop(robot, FakeCamera(), WavePolicy(), config=LoopConfig(duration=1.5))
        summary = loop.run()
    assert summary.reason == "duration reached" and summary.steps + summary.misses["overrun"] == 30
    assert summary.misses["joints"] <= 1, summary  # (policy misses may come from a loaded CI machine, not the stall)
    assert summary.period_ms["max"] < 150, summary.period_ms  # the 190 ms stall never reached the loop
    servo = arm.servo
    assert servo.max_gap_s >= 0.18 and servo.error is None
    sent = np.array([c[3][0] for c in api.calls_to("set_servo_angle_j")])
    assert np.abs(np.diff(sent, axis=0)).max() <= 0.01 + 1e-9  # no jump after the stall


def test_controller_error_stops_the_loop_with_an_emergency_stop():
    arm = make_arm()
    robot = ArmHandRobot(arm, fake_hand())
    with pytest.raises(RobotFault, match="error code 22"):
        with robot:
            api = FakeXArmAPI.instances[0]
            threading.Timer(0.3, lambda: api.inject_error(22)).start()
            ControlLoop(robot, FakeCamera(), WavePolicy(), config=LoopConfig(duration=3.0)).run()
    names = api.names()
    assert "emergency_stop" in names and names[-1] == "disconnect"
    n_after = [c for c in api.calls_to("set_servo_angle_j") if c[0] > api.calls_to("emergency_stop")[0][0]]
    assert n_after == [] and not arm.servo.alive


def test_an_error_present_at_connect_is_refused_and_released():
    FakeXArmAPI.instances.clear()

    def factory(*args, **kwargs):
        api = FakeXArmAPI(*args, **kwargs)
        api.error_code = 31
        return api

    arm = XArmDriver(XArmConfig(), api_factory=factory)
    with pytest.raises(RobotFault, match="error code 31"):
        arm.connect()
    api = FakeXArmAPI.instances[0]
    assert "motion_enable" not in api.names() and api.names()[-1] == "disconnect" and not arm.connected


def test_read_only_never_enables_motion():
    arm = make_arm(read_only=True)
    with arm:
        api = FakeXArmAPI.instances[0]
        assert np.allclose(arm.observe().q, ARM0)
        with pytest.raises(RobotStoppedError):
            arm.act(ARM0)
        time.sleep(0.05)
    names = set(api.names())
    assert not names & {"motion_enable", "set_mode", "set_state", "set_servo_angle_j", "set_collision_sensitivity"}


def test_reduced_mode_and_collision_settings_are_applied_before_motion():
    arm = make_arm(collision_sensitivity=5, reduced_mode=True, reduced_max_joint_speed=0.5,
                   reduced_max_tcp_speed=200.0, reduced_tcp_boundary=(800, 100, 400, -400, 600, 10))  # fmt: skip
    with arm:
        api = FakeXArmAPI.instances[0]
        names = api.names()
        enable = names.index("motion_enable")
        for name in ("set_collision_sensitivity", "set_reduced_max_joint_speed", "set_reduced_max_tcp_speed",
                     "set_reduced_tcp_boundary", "set_reduced_mode"):  # fmt: skip
            assert names.index(name) < enable
        assert api.calls_to("set_collision_sensitivity")[0][3] == (5,)
        assert api.calls_to("set_reduced_max_joint_speed")[0][3] == (0.5,)
        assert api.calls_to("set_reduced_max_joint_speed")[0][4] == {"is_radian": True}
        assert api.calls_to("set_reduced_mode")[0][3] == (True,)
    with pytest.raises(ValueError):
        XArmDriver(XArmConfig(collision_sensitivity=9), api_factory=FakeXArmAPI)


def test_stop_sends_no_further_commands():
    arm = make_arm()
    with arm:
        api = FakeXArmAPI.instances[0]
        arm.act(ARM0 + 0.05)
        time.sleep(0.05)
        arm.stop()
        t_stop = time.monotonic()
        time.sleep(0.1)
        assert [c for c in api.calls_to("set_servo_angle_j") if c[0] > t_stop] == []
        assert api.calls_to("set_state")[-1][3] == (4,)
        with pytest.raises(RobotStoppedError):
            arm.act(ARM0)
