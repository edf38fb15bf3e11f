"""The robot driver protocol: connect / observe / act / stop / disconnect.

Every robot (the MuJoCo simulation, the xArm7, the Allegro hand, the two
together) is a ``Driver``; the 20 Hz loop (``hop_robot.loop``) talks to
nothing else. A driver is a context manager: leaving the ``with`` block,
however it is left (normal end, exception, Ctrl-C), stops the robot and
releases the hardware::

    with SimRobot() as robot:          # connect()
        state = robot.observe()        # JointState: q (23,) rad, stamp (monotonic s)
        robot.act(targets)             # absolute joint targets (23,) rad; returns at once
    # stop() then disconnect(), even on an exception

Rules every driver keeps (the base class enforces the first three):

- ``act`` refuses a target that is not finite, has the wrong shape or lies
  outside the joint limits (``UnsafeCommandError``): the last line of
  defence behind ``hop_robot.safety``.
- ``act`` after ``stop`` raises ``RobotStoppedError``; a read-only driver
  (``read_only=True``, used by ``--dry-run``) never enables motion and
  refuses every ``act``.
- ``stop`` and ``disconnect`` are idempotent and never raise for a robot
  that is already stopped or was never connected.
- ``act`` never blocks on the hardware: drivers hand targets to their own
  servo thread (arm ~100 Hz, hand ~333 Hz) and return.
- ``observe`` never blocks on the hardware either: it returns the latest
  state the driver's threads received, stamped with the monotonic time at
  which it was measured, so the loop can tell a stale sensor from a fresh one.

Time: ``now()`` is the robot side's one clock (``time.monotonic``). Code whose
timing is tested (the 20 Hz loop, the simulated robot's physics thread) takes
a ``Clock`` instead, so that tests run it on a fake clock (``MONOTONIC`` is
the real one).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Clock",
    "Driver",
    "DriverError",
    "JointState",
    "MONOTONIC",
    "MonotonicClock",
    "RobotFault",
    "RobotStoppedError",
    "UnsafeCommandError",
    "now",
]


class DriverError(RuntimeError):
    """A driver cannot do what was asked (not connected, hardware missing...)."""


class RobotFault(DriverError):
    """The robot reported an error (controller fault, lost communication)."""


class RobotStoppedError(DriverError):
    """A command reached a driver that has been stopped (or is read-only)."""


class UnsafeCommandError(ValueError):
    """A command that must never reach hardware: non-finite, wrong shape or outside the limits."""


@dataclass
class JointState:
    """Joint angles ``q`` (n,) rad in the driver's joint order and the monotonic
    time (``time.monotonic()``) at which they were measured."""

    q: np.ndarray
    stamp: float
    extra: dict = field(default_factory=dict)


class Driver(ABC):
    """Base of every robot driver (see the module doc for the contract).

    Subclasses implement ``_connect``, ``_observe``, ``_act``, ``_stop`` and
    ``_disconnect``; the public methods add state checks and validation.

    Args:
        lower, upper: the joint limits of the joints this driver commands
            (a slice of ``spec.JOINT_LOWER/UPPER``); ``act`` refuses anything
            outside them.
        read_only: observe only; motion is never enabled (``--dry-run``).
    """

    name: str = "driver"

    def __init__(self, lower: np.ndarray, upper: np.ndarray, *, read_only: bool = False) -> None:
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        self.num_joints = len(self.lower)
        self.read_only = read_only
        self._connected = False
        self._stopped = False
        self._state_lock = threading.Lock()

    # ------------------------------------------------------------ public API
    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def stopped(self) -> bool:
        return self._stopped

    def connect(self) -> "Driver":
        if not self._connected:
            try:
                self._connect()
            except BaseException:
                # A half-opened connection is released before the error leaves.
                self._safe_disconnect()
                raise
            self._connected = True
            self._stopped = False
        return self

    def observe(self) -> JointState:
        if not self._connected:
            raise DriverError(f"{self.name}: observe() before connect()")
        return self._observe()

    def act(self, targets: np.ndarray) -> None:
        """Send absolute joint targets (n,) rad. Returns at once."""
        if not self._connected:
            raise DriverError(f"{self.name}: act() before connect()")
        if self.read_only:
            raise RobotStoppedError(f"{self.name}: read-only (dry run): no command may be sent")
        with self._state_lock:
            if self._stopped:
                raise RobotStoppedError(f"{self.name}: stopped; no further commands are accepted")
        self._act(self.check_targets(targets))

    def stop(self) -> None:
        """Stop motion now (hold position); idempotent; callable from any thread."""
        with self._state_lock:
            if self._stopped or not self._connected:
                self._stopped = True
                return
            self._stopped = True
        self._stop()

    def emergency_stop(self) -> None:
        """Stop as hard as the hardware allows (a fault); default: ``stop``."""
        self.stop()

    def disconnect(self) -> None:
        """Release the hardware; stops first. Idempotent."""
        if not self._connected:
            return
        try:
            self.stop()
        finally:
            self._safe_disconnect()
            self._connected = False

    def check_targets(self, targets: np.ndarray) -> np.ndarray:
        """``targets`` as float64 (n,), or ``UnsafeCommandError``."""
        q = np.asarray(targets, dtype=np.float64)
        if q.shape != (self.num_joints,):
            raise UnsafeCommandError(f"{self.name}: targets must be ({self.num_joints},), got {q.shape}")
        if not np.isfinite(q).all():
            raise UnsafeCommandError(f"{self.name}: refusing non-finite targets at joints {np.flatnonzero(~np.isfinite(q)).tolist()}")
        bad = (q < self.lower - 1e-9) | (q > self.upper + 1e-9)
        if bad.any():
            raise UnsafeCommandError(f"{self.name}: refusing targets outside the joint limits at joints {np.flatnonzero(bad).tolist()}")
        return q

    def __enter__(self) -> "Driver":
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.disconnect()

    def _safe_disconnect(self) -> None:
        try:
            self._disconnect()
        except Exception:  # releasing must not mask the original error
            import logging

            logging.getLogger(__name__).exception("%s: error while disconnecting", self.name)

    # ------------------------------------------------------------ to implement
    @abstractmethod
    def _connect(self) -> None: ...

    @abstractmethod
    def _observe(self) -> JointState: ...

    @abstractmethod
    def _act(self, targets: np.ndarray) -> None: ...

    @abstractmethod
    def _stop(self) -> None: ...

    @abstractmethod
    def _disconnect(self) -> None: ...


def now() -> float:
    """The one clock of the robot side: ``time.monotonic()`` seconds."""
    return time.monotonic()


@runtime_checkable
class Clock(Protocol):
    """Time as the loop and the simulated robot's physics thread see it.

    Two kinds of waiting are kept apart because a fake clock must treat them
    differently: ``sleep`` lets time pass (a fake clock jumps ahead at once),
    ``wait`` waits for *another thread's work* (a fake clock must wait for
    that thread in real time, however little fake time may pass).
    """

    def now(self) -> float:
        """Seconds on a monotonic scale (the drivers' stamps use the same scale)."""
        ...

    def sleep(self, seconds: float, until: threading.Event | None = None) -> bool:
        """Let ``seconds`` pass, or less if ``until`` gets set; returns whether it is set."""
        ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Wait until another thread sets ``event``, at most ``timeout`` s; returns whether it is set."""
        ...


class MonotonicClock:
    """The real ``Clock``: ``time.monotonic`` and ``threading.Event`` waits."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float, until: threading.Event | None = None) -> bool:
        if until is None:
            time.sleep(max(seconds, 0.0))
            return False
        return until.wait(max(seconds, 0.0))

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(timeout, 0.0))


MONOTONIC: Clock = MonotonicClock()

