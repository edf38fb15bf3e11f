"""Test doubles for the robot side: an in-memory robot, a camera, policies, and a
recording double of ``xarm.wrapper.XArmAPI`` (same method names and signatures
as xarm-python-sdk 1.18)."""

from __future__ import annotations

import threading
import time

import numpy as np

from hop_robot.cameras.base import Camera, CloudFrame
from hop_robot.drivers.base import Driver, JointState
from hop_robot.embodiment import spec

CLOUD = (np.random.default_rng(0).normal(0.0, 0.02, (spec.NUM_POINTS, 3)) + [0.5, -0.1, 0.05]).astype(np.float32)


class FakeRobot(Driver):
    """23 joints that follow their targets instantly; records every call."""

    name = "fake"

    def __init__(self, q0=spec.DEFAULT_POSE, *, read_only=False, num_joints=spec.NUM_JOINTS, lower=None, upper=None):
        lower = spec.JOINT_LOWER if lower is None else lower
        upper = spec.JOINT_UPPER if upper is None else upper
        super().__init__(lower[:num_joints], upper[:num_joints], read_only=read_only)
        self.q = np.array(q0[:num_joints], dtype=np.float64)
        self.acts: list[np.ndarray] = []
        self.events: list[str] = []
        self.stale_after: float | None = None  # stamps stop advancing after this many seconds
        self._t0 = None

    def _connect(self):
        self.events.append("connect")
        self._t0 = time.monotonic()

    def _observe(self):
        t = time.monotonic()
        if self.stale_after is not None and t - self._t0 > self.stale_after:
            t = self._t0 + self.stale_after
        return JointState(self.q.copy(), t)

    def _act(self, targets):
        self.acts.append(targets.copy())
        self.q = targets.copy()

    def _stop(self):
        self.events.append("stop")

    def emergency_stop(self):
        self.events.append("emergency_stop")
        super().emergency_stop()

    def _disconnect(self):
        self.events.append("disconnect")


class FakeCamera(Camera):
    """The same cloud every read, stamped now; ``fail_after`` reads then None or an exception."""

    def __init__(self, cloud=CLOUD, *, fail_after=None, failure=None):
        self.cloud, self.reads = cloud, 0
        self.fail_after, self.failure = fail_after, failure

    def read(self, q=None):
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            if self.failure is not None:
                raise self.failure
            return None
        return CloudFrame(self.cloud.copy(), time.monotonic())


class ConstPolicy:
    """Always the same target (and records the history lengths it saw)."""

    context = spec.CONTEXT

    def __init__(self, target=spec.DEFAULT_POSE, delay=0.0):
        self.target, self.delay, self.lengths = np.asarray(target, dtype=np.float64), delay, []

    def __call__(self, proprio, points):
        if proprio.size:  # warm-up calls have real shapes too
            self.lengths.append(len(proprio))
        if self.delay:
            time.sleep(self.delay)
        return self.target.copy()


class WavePolicy:
    """Arm joint 1 swings ±0.3 rad around the default pose at 0.5 Hz."""

    context = spec.CONTEXT

    def __init__(self):
        self.t0 = None

    def __call__(self, proprio, points):
        self.t0 = self.t0 or time.monotonic()
        target = spec.DEFAULT_POSE.copy()
        target[0] += 0.3 * np.sin(2 * np.pi * 0.5 * (time.monotonic() - self.t0))
        return target


class NaNPolicy:
    context = spec.CONTEXT

    def __call__(self, proprio, points):
        out = spec.DEFAULT_POSE.copy()
        out[3] = np.nan
        return out


class RaisingPolicy:
    context = spec.CONTEXT

    def __init__(self, after=3):
        self.calls, self.after = 0, after

    def __call__(self, proprio, points):
        if proprio.size == 0 or proprio.shape[0] == 0:
            return spec.DEFAULT_POSE.copy()
        self.calls += 1
        if self.calls > self.after + 3 * spec.CONTEXT:  # after the warm-up's calls
            raise RuntimeError("policy bug")
        return spec.DEFAULT_POSE.copy()


# --------------------------------------------------------------------------- xArm SDK double
class FakeXArmAPI:
    """Recording double of ``xarm.wrapper.XArmAPI``.

    Every call is recorded as (monotonic time, thread name, method, args, kwargs).
    The report thread calls the location callbacks at 100 Hz, as the SDK's
    real-time report does. ``block = (method, call number, seconds)`` makes
    that call block (the ~190 ms stalls reported for the SDK).
    """

    instances: list["FakeXArmAPI"] = []

    def __init__(self, port=None, is_radian=False, do_not_open=False, **kwargs):
        self.port, self.is_radian, self.init_kwargs = port, is_radian, kwargs
        self.calls: list[tuple] = []
        self.connected = True
        self.error_code = 0
        self.warn_code = 0
        self.state = 2
        self.mode = 0
        self.motion_enabled = False
        self._angles = list(spec.DEFAULT_ARM_POSE)
        self.block: tuple[str, int, float] | None = None
        self._counts: dict[str, int] = {}
        self._report_cbs, self._error_cbs, self._state_cbs = [], [], []
        self._lock = threading.Lock()
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._report, name="fake-xarm-report", daemon=True)
        self._thread.start()
        FakeXArmAPI.instances.append(self)

    # ------------------------------------------------------------ helpers
    def _record(self, method, *args, **kwargs):
        with self._lock:
            self.calls.append((time.monotonic(), threading.current_thread().name, method, args, kwargs))
            n = self._counts.get(method, 0) + 1
            self._counts[method] = n
        if self.block and self.block[0] == method and self.block[1] == n:
            time.sleep(self.block[2])

    def names(self):
        return [c[2] for c in self.calls]

    def calls_to(self, method):
        return [c for c in self.calls if c[2] == method]

    def _report(self):
        while not self._quit.wait(0.01):
            for cb in list(self._report_cbs):
                cb({"joints": list(self._angles)})

    def inject_error(self, code):
        self.error_code, self.state = code, 4
        for cb in list(self._error_cbs):
            cb({"error_code": code, "warn_code": 0})
        for cb in list(self._state_cbs):
            cb({"state": 4})

    # ------------------------------------------------------------ SDK surface
    @property
    def angles(self):
        return list(self._angles)

    def register_report_location_callback(self, callback=None, report_cartesian=True, report_joints=True):
        self._record("register_report_location_callback", report_cartesian=report_cartesian, report_joints=report_joints)
        self._report_cbs.append(callback)
        return True

    def register_error_warn_changed_callback(self, callback=None):
        self._record("register_error_warn_changed_callback")
        self._error_cbs.append(callback)
        return True

    def register_state_changed_callback(self, callback=None):
        self._record("register_state_changed_callback")
        self._state_cbs.append(callback)
        return True

    def release_report_location_callback(self, callback=None):
        self._record("release_report_location_callback")
        self._report_cbs = [c for c in self._report_cbs if c != callback]
        return True

    def release_error_warn_changed_callback(self, callback=None):
        self._record("release_error_warn_changed_callback")
        self._error_cbs = [c for c in self._error_cbs if c != callback]
        return True

    def release_state_changed_callback(self, callback=None):
        self._record("release_state_changed_callback")
        self._state_cbs = [c for c in self._state_cbs if c != callback]
        return True

    def get_servo_angle(self, servo_id=None, is_radian=None, is_real=False):
        self._record("get_servo_angle", is_radian=is_radian)
        return 0, list(self._angles)

    def clean_error(self):
        self._record("clean_error")
        self.error_code = 0
        return 0

    def clean_warn(self):
        self._record("clean_warn")
        self.warn_code = 0
        return 0

    def motion_enable(self, enable=True, servo_id=None):
        self._record("motion_enable", enable=enable)
        self.motion_enabled = enable
        return 0

    def set_mode(self, mode=0, detection_param=0):
        self._record("set_mode", mode)
        self.mode = mode
        return 0

    def set_state(self, state=0):
        self._record("set_state", state)
        self.state = state
        for cb in list(self._state_cbs):  # the report stream announces the change
            cb({"state": state})
        return 0

    def set_collision_sensitivity(self, value, wait=True):
        self._record("set_collision_sensitivity", value)
        return 0

    def set_reduced_mode(self, on):
        self._record("set_reduced_mode", on)
        return 0

    def set_reduced_max_joint_speed(self, speed, is_radian=None):
        self._record("set_reduced_max_joint_speed", speed, is_radian=is_radian)
        return 0

    def set_reduced_max_tcp_speed(self, speed):
        self._record("set_reduced_max_tcp_speed", speed)
        return 0

    def set_reduced_joint_range(self, joint_range, is_radian=None):
        self._record("set_reduced_joint_range", joint_range, is_radian=is_radian)
        return 0

    def set_reduced_tcp_boundary(self, boundary):
        self._record("set_reduced_tcp_boundary", boundary)
        return 0

    def set_servo_angle_j(self, angles, speed=None, mvacc=None, mvtime=None, is_radian=None, **kwargs):
        self._record("set_servo_angle_j", list(angles), is_radian=is_radian)
        if self.mode == 1 and self.state == 0 and self.motion_enabled and self.error_code == 0:
            self._angles = list(angles)  # the servo reaches the latest command
            return 0
        return 9  # SDK: not ready to move

    def emergency_stop(self):
        self._record("emergency_stop")
        self.state = 4

    def disconnect(self):
        self._record("disconnect")
        self.connected = False
        self._quit.set()
