"""The UFactory xArm7 through ``xarm-python-sdk`` (``xarm.wrapper.XArmAPI``).

Servo mode: after ``motion_enable(True)``, ``set_mode(1)``, ``set_state(0)``
the controller executes only the latest ``set_servo_angle_j`` command (its
speed arguments are ignored; speed = step size × send rate). A
``ServoThread`` therefore sends commands at ``spec.ARM_SERVO_HZ`` (~100 Hz),
interpolating the 20 Hz targets and capping the speed at
``XArmConfig.max_velocity`` (default ``spec.ARM_MAX_VELOCITY``, the fastest
the arm moved in training). SDK calls can block (~190 ms have been
reported); they happen only on that thread, so the policy loop keeps its
rate. Joint angles come from the SDK's report stream (a callback; no
request), stamped on arrival.

Faults: the SDK's error/warning callback, a controller state of 4/5
(stopped/error) while we are servoing, or a non-zero return code of a servo
command mark the driver faulted; ``observe`` then raises ``RobotFault`` and
the loop stops. An error already present at connect is refused (clear it on
the controller after finding its cause) unless ``clear_errors=True``.

Exposed controller safety settings (``XArmConfig``): collision sensitivity
(0-5) and reduced mode (max joint speed, max TCP speed, joint ranges, TCP
boundary), applied at connect before motion is enabled.

Not verified against hardware here: the SDK is exercised through a recording
double of ``XArmAPI`` in ``tests/test_robot_xarm.py``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hop_robot.embodiment import spec

from .base import Driver, DriverError, JointState, RobotFault, now
from .servo import ServoThread

__all__ = ["XArmConfig", "XArmDriver"]

log = logging.getLogger(__name__)

# xArm controller states (SDK docs): 1 moving, 2 sleeping, 3 paused, 4 stopped, 5 error/not ready
_STOPPED_STATES = (4, 5)


@dataclass(frozen=True)
class XArmConfig:
    """Connection and controller-safety settings of the arm."""

    ip: str = "192.168.1.185"  # the SDK's documented example address; use your controller's
    servo_hz: float = spec.ARM_SERVO_HZ
    max_velocity: float = spec.ARM_MAX_VELOCITY  # rad/s per joint, servo-side cap
    # 'real' = the 100 Hz real-time report (port 30003): fresh joint angles for the
    # 20 Hz loop. The 'normal'/'rich' reports are slower but carry error codes.
    report_type: str = "real"
    collision_sensitivity: int | None = 3  # 0 (off) .. 5 (most sensitive); None: leave the controller's
    # True: enable the controller's reduced mode (with the limits below); False: disable it;
    # None: leave it as configured on the controller (a site's own limits stay in force)
    reduced_mode: bool | None = None
    reduced_max_joint_speed: float | None = None  # rad/s
    reduced_max_tcp_speed: float | None = None  # mm/s
    reduced_joint_range: tuple[float, ...] | None = None  # rad, (j1 min, j1 max, ..., j7 min, j7 max)
    reduced_tcp_boundary: tuple[float, ...] | None = None  # mm, (x max, x min, y max, y min, z max, z min)
    clear_errors: bool = False  # clear an error present at connect instead of refusing
    max_state_age: float = 0.1  # s; older joint reports count as a sensor miss in the loop


class XArmDriver(Driver):
    """``Driver`` for the arm's 7 joints (``spec.ARM``).

    Args:
        config: connection and safety settings.
        read_only: connect and read joints; motion is never enabled.
        control_hz: the rate of ``act`` calls (the interpolation segment).
        api_factory: constructs the SDK object; default ``xarm.wrapper.XArmAPI``
            (tests pass a recording double).
    """

    name = "xarm"

    def __init__(
        self,
        config: XArmConfig = XArmConfig(),
        *,
        read_only: bool = False,
        control_hz: float = spec.CONTROL_HZ,
        api_factory: Callable[..., object] | None = None,
    ) -> None:
        super().__init__(spec.JOINT_LOWER[spec.ARM], spec.JOINT_UPPER[spec.ARM], read_only=read_only)
        if config.collision_sensitivity is not None and not 0 <= config.collision_sensitivity <= 5:
            raise ValueError(f"collision_sensitivity must be 0..5 or None, got {config.collision_sensitivity}")
        self.config = config
        self.control_hz = float(control_hz)
        self._factory = api_factory
        self.api = None
        self._servo: ServoThread | None = None
        self._q = np.zeros(spec.NUM_ARM_JOINTS)
        self._stamp = 0.0
        self._fault: str | None = None
        self._servoing = False
        self._ready_seen = False
        self._lock = threading.Lock()
        self.error_code = 0
        self.warn_code = 0

    # ------------------------------------------------------------ SDK plumbing
    def _make_api(self):
        if self._factory is not None:
            return self._factory(self.config.ip, is_radian=True, report_type=self.config.report_type)
        try:
            from xarm.wrapper import XArmAPI
        except ImportError as exc:
            raise DriverError("the xArm driver needs xarm-python-sdk: pip install 'hop[xarm]'") from exc
        return XArmAPI(self.config.ip, is_radian=True, report_type=self.config.report_type)

    def _call(self, what: str, *args, **kwargs):
        code = getattr(self.api, what)(*args, **kwargs)
        code = code[0] if isinstance(code, tuple) else code
        if code != 0:
            raise DriverError(f"xArm {what}{args if args else ''} failed with code {code}")

    def _on_report(self, item: dict) -> None:
        joints = item.get("joints") if isinstance(item, dict) else None
        if joints is None or len(joints) < spec.NUM_ARM_JOINTS:
            return
        q = np.asarray(joints[: spec.NUM_ARM_JOINTS], dtype=np.float64)
        if np.isfinite(q).all():
            with self._lock:
                self._q, self._stamp = q, now()

    def _on_error_warn(self, item: dict) -> None:
        self.error_code = int(item.get("error_code", 0) or 0)
        self.warn_code = int(item.get("warn_code", 0) or 0)
        if self.warn_code:
            log.warning("xArm warning code %d", self.warn_code)
        if self.error_code:
            self._set_fault(f"xArm controller error code {self.error_code}")

    def _on_state(self, item: dict) -> None:
        state = int(item.get("state", 0) or 0)
        if not self._servoing or self.stopped:
            return
        if state not in _STOPPED_STATES:
            self._ready_seen = True
        elif self._ready_seen:  # a report from before set_state(0) took effect is not a fault
            self._set_fault(f"xArm controller entered state {state} (stopped/error) while servoing")

    def _set_fault(self, reason: str) -> None:
        with self._lock:
            if self._fault is None:
                self._fault = reason
                log.error("%s", reason)
        if self._servo is not None:
            self._servo.hold()

    def _send(self, command: np.ndarray) -> None:
        if self._fault is not None:
            return
        code = self.api.set_servo_angle_j(command.tolist(), is_radian=True)
        if code != 0:
            raise RobotFault(f"xArm set_servo_angle_j returned code {code}")

    # ------------------------------------------------------------ driver API
    def _connect(self) -> None:
        cfg = self.config
        self.api = self._make_api()
        if not getattr(self.api, "connected", True):
            raise DriverError(f"xArm at {cfg.ip}: not connected")
        self.api.register_error_warn_changed_callback(self._on_error_warn)
        self.api.register_state_changed_callback(self._on_state)
        self.api.register_report_location_callback(self._on_report, report_cartesian=False, report_joints=True)
        error = int(getattr(self.api, "error_code", 0) or 0)
        if error:
            if not cfg.clear_errors:
                raise RobotFault(f"xArm at {cfg.ip} reports error code {error}; find its cause and clear it "
                                 "(or pass clear_errors=True)")  # fmt: skip
            self._call("clean_error")
        code, angles = self.api.get_servo_angle(is_radian=True)
        if code != 0 or angles is None:
            raise DriverError(f"xArm get_servo_angle failed with code {code}")
        with self._lock:
            self._q = np.asarray(angles[: spec.NUM_ARM_JOINTS], dtype=np.float64)
            self._stamp = now()
        if self.read_only:
            return
        if getattr(self.api, "warn_code", 0):
            self._call("clean_warn")
        if cfg.collision_sensitivity is not None:
            self._call("set_collision_sensitivity", int(cfg.collision_sensitivity))
        if cfg.reduced_max_joint_speed is not None:
            self._call("set_reduced_max_joint_speed", float(cfg.reduced_max_joint_speed), is_radian=True)
        if cfg.reduced_max_tcp_speed is not None:
            self._call("set_reduced_max_tcp_speed", float(cfg.reduced_max_tcp_speed))
        if cfg.reduced_joint_range is not None:
            self._call("set_reduced_joint_range", [float(v) for v in cfg.reduced_joint_range], is_radian=True)
        if cfg.reduced_tcp_boundary is not None:
            self._call("set_reduced_tcp_boundary", [float(v) for v in cfg.reduced_tcp_boundary])
        if cfg.reduced_mode is not None:
            self._call("set_reduced_mode", bool(cfg.reduced_mode))
        self._call("motion_enable", enable=True)
        self._call("set_mode", 1)  # servo motion mode
        self._call("set_state", 0)  # ready
        with self._lock:
            start = self._q.copy()
        self._servo = ServoThread(
            self._send, start, cfg.servo_hz, 1.0 / self.control_hz, cfg.max_velocity,
            name="hop-xarm-servo", on_error=lambda exc: self._set_fault(f"xArm servo thread: {exc}"),
        )  # fmt: skip
        self._servoing = True
        self._servo.start()

    def _observe(self) -> JointState:
        with self._lock:
            if self._fault is not None:
                raise RobotFault(self._fault)
            return JointState(self._q.copy(), self._stamp, {"error_code": self.error_code, "warn_code": self.warn_code})

    def _act(self, targets: np.ndarray) -> None:
        if self._fault is not None:
            raise RobotFault(self._fault)
        if self._servo is None:
            raise DriverError("xArm: motion is not enabled")
        self._servo.set_goal(targets)

    def _stop(self) -> None:
        self._servoing = False
        if self._servo is not None:
            self._servo.stop()
        if self.api is not None and not self.read_only:
            self.api.set_state(4)  # stop: the controller halts and holds

    def emergency_stop(self) -> None:
        """The SDK's emergency stop (stop state; does not clear errors)."""
        self._servoing = False
        with self._state_lock:
            self._stopped = True
        if self._servo is not None:
            self._servo.stop()
        if self.api is not None:
            self.api.emergency_stop()

    def _disconnect(self) -> None:
        if self._servo is not None:
            self._servo.stop()
        api, self.api = self.api, None
        if api is None:
            return
        for release, cb in (
            ("release_error_warn_changed_callback", self._on_error_warn),
            ("release_state_changed_callback", self._on_state),
            ("release_report_location_callback", self._on_report),
        ):
            try:
                getattr(api, release)(cb)
            except Exception:  # noqa: BLE001 - best effort while releasing
                pass
        api.disconnect()

    @property
    def servo(self) -> ServoThread | None:
        return self._servo

    @property
    def fault(self) -> str | None:
        return self._fault
