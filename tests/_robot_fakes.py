"""Test doubles for the robot side: a fake clock, an in-memory robot, a camera,
policies, and a recording double of ``xarm.wrapper.XArmAPI`` (same method names
and signatures as xarm-python-sdk 1.18)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from hop_robot.cameras.base import Camera, CloudFrame
from hop_robot.drivers.base import MONOTONIC, Clock, Driver, JointState
from hop_robot.embodiment import spec

CLOUD = (np.random.default_rng(0).normal(0.0, 0.02, (spec.NUM_POINTS, 3)) + [0.5, -0.1, 0.05]).astype(np.float32)


class FakeClock:
    """Virtual time (a ``hop_robot.drivers.base.Clock``): timing logic tested
    without the wall clock, so the same result on an idle laptop or a loaded CI.

    The thread that creates the clock drives time:

    - its ``sleep`` jumps ahead at once; other threads' sleeps that fall due on
      the way are woken in order, and each runs (in real time) until it sleeps
      on the clock again before time goes on;
    - its ``wait(event, timeout)`` waits in real time for the thread that will
      set ``event`` (it is computing), unless that thread is asleep on this
      clock past the deadline: then the deadline passes at once (a policy that
      "takes" 0.3 s answers too late every time);
    - ``jump(s)`` moves time without waking anyone on the way (a stall of the
      whole machine).

    Other threads' ``sleep``/``wait`` block until the driver's time reaches
    their wake-up time, ``until`` is set, or ``close()``. A thread woken by the
    driver's ``sleep`` must sleep on the clock again or end (a policy thread
    that answers and goes idle is only supported inside the driver's
    ``wait`` for its answer); otherwise the driver fails after ``patience``
    real seconds instead of hanging.
    """

    def __init__(self, start: float = 1000.0, *, patience: float = 30.0) -> None:
        self._t = float(start)
        self._cv = threading.Condition()
        self._sleepers: dict[threading.Thread, float] = {}
        self._running: set[threading.Thread] = set()  # woken by the driver, not asleep again yet
        self._driver = threading.current_thread()
        self._closed = False
        self.patience = patience

    def now(self) -> float:
        with self._cv:
            return self._t

    def jump(self, seconds: float) -> None:
        with self._cv:
            self._t += seconds

    def until_asleep(self, count: int = 1) -> None:
        """Wait (real time) until ``count`` other threads sleep on the clock: the
        event after which advancing time is meaningful (a thread just started)."""
        give_up = time.monotonic() + self.patience
        with self._cv:
            while len(self._sleepers) < count:
                if not self._cv.wait(max(give_up - time.monotonic(), 0.0)):
                    raise AssertionError(f"FakeClock: {count} sleeping threads expected within {self.patience} s")

    def close(self) -> None:
        """Release every sleeping thread (end of a test)."""
        with self._cv:
            self._closed = True
            self._sleepers.clear()
            self._cv.notify_all()

    def sleep(self, seconds: float, until: threading.Event | None = None) -> bool:
        if threading.current_thread() is not self._driver:
            return self._block(seconds, until)
        with self._cv:
            end = self._t + max(seconds, 0.0)
            while not (until is not None and until.is_set()):
                self._settle()
                due = [thread for thread, wake in self._sleepers.items() if wake <= end]
                if not due:
                    self._t = max(self._t, end)
                    break
                self._wake(min(due, key=self._sleepers.__getitem__))
            return until is not None and until.is_set()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if threading.current_thread() is not self._driver:
            return self._block(timeout, event)
        with self._cv:
            end = self._t + max(timeout, 0.0)
        give_up = time.monotonic() + self.patience
        while not event.is_set():
            with self._cv:
                self._settle(event)
                if event.is_set():
                    break
                if self._sleepers:
                    thread, wake = min(self._sleepers.items(), key=lambda item: item[1])
                    if wake > end:  # the worker sleeps past the deadline: it passes now
                        self._t = max(self._t, end)
                        return False
                    self._wake(thread)
                    continue
            # nobody asleep: the other thread is computing in real time
            if event.wait(0.002):
                break
            if time.monotonic() > give_up:
                raise AssertionError(f"FakeClock.wait: nothing set the event within {self.patience} s (real)")
        with self._cv:
            self._running.clear()  # whoever was woken for this wait has delivered
        return True

    # ---------------------------------------------------------------- internals
    def _wake(self, thread: threading.Thread) -> None:
        self._t = max(self._t, self._sleepers.pop(thread))
        self._running.add(thread)
        self._cv.notify_all()

    def _settle(self, event: threading.Event | None = None) -> None:
        """(lock held) Until every woken thread sleeps again or has ended."""
        give_up = time.monotonic() + self.patience
        while True:
            self._running = {t for t in self._running if t.is_alive()}
            if not self._running or (event is not None and event.is_set()):
                return
            if time.monotonic() > give_up:
                names = [t.name for t in self._running]
                raise AssertionError(f"FakeClock: {names} woke and neither slept again nor ended "
                                     f"within {self.patience} s")  # fmt: skip
            self._cv.wait(0.005)  # a thread that ends does not notify

    def _block(self, seconds: float, until: threading.Event | None) -> bool:
        me = threading.current_thread()
        with self._cv:
            self._running.discard(me)
            if not self._closed:
                self._sleepers[me] = self._t + max(seconds, 0.0)
                self._cv.notify_all()
            while me in self._sleepers and not (until is not None and until.is_set()):
                self._cv.wait(0.005 if until is not None else None)  # another thread's event does not notify
            if self._sleepers.pop(me, None) is not None:
                self._cv.notify_all()
        return until is not None and until.is_set()


class FakeRobot(Driver):
    """23 joints that follow their targets instantly; records every call.
    Stamps come from ``clock`` (the loop's, for fake-clock tests)."""

    name = "fake"

    def __init__(self, q0=spec.DEFAULT_POSE, *, read_only=False, num_joints=spec.NUM_JOINTS, lower=None, upper=None,
                 clock: Clock = MONOTONIC):  # fmt: skip
        lower = spec.JOINT_LOWER if lower is None else lower
        upper = spec.JOINT_UPPER if upper is None else upper
        super().__init__(lower[:num_joints], upper[:num_joints], read_only=read_only)
        self.q = np.array(q0[:num_joints], dtype=np.float64)
        self.acts: list[np.ndarray] = []
        self.events: list[str] = []
        self.stale_after: float | None = None  # stamps stop advancing after this many seconds
        self.clock = clock
        self._t0 = None

    def _connect(self):
        self.events.append("connect")
        self._t0 = self.clock.now()

    def _observe(self):
        t = self.clock.now()
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
    """The same cloud every read, stamped now; ``fail_after`` reads then None or an exception.
    ``on_read = {n: function}`` calls ``function()`` during the n-th read (1-based): an
    event at a known point of a run (a signal, a stall), not at a time."""

    def __init__(self, cloud=CLOUD, *, fail_after=None, failure=None, clock: Clock = MONOTONIC,
                 on_read: dict[int, Callable[[], None]] | None = None):  # fmt: skip
        self.cloud, self.reads = cloud, 0
        self.fail_after, self.failure = fail_after, failure
        self.clock, self.on_read = clock, dict(on_read or {})

    def read(self, q=None):
        self.reads += 1
        if self.reads in self.on_read:
            self.on_read[self.reads]()
        if self.fail_after is not None and self.reads > self.fail_after:
            if self.failure is not None:
                raise self.failure
            return None
        return CloudFrame(self.cloud.copy(), self.clock.now())


class ConstPolicy:
    """Always the same target (and records the history lengths it saw); each call
    takes ``delay`` s on ``clock``."""

    context = spec.CONTEXT

    def __init__(self, target=spec.DEFAULT_POSE, delay=0.0, clock: Clock = MONOTONIC):
        self.target, self.delay, self.lengths = np.asarray(target, dtype=np.float64), delay, []
        self.clock = clock

    def __call__(self, proprio, points):
        if proprio.size:  # warm-up calls have real shapes too
            self.lengths.append(len(proprio))
        if self.delay:
            self.clock.sleep(self.delay)
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
