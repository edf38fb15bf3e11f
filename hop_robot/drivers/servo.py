"""A servo thread: sends interpolated joint commands faster than the policy runs.

The policy produces a target every 50 ms; a position servo such as the
xArm's servo mode (``set_servo_angle_j``) executes only the latest command it
received, and the speed comes from step size × send rate. ``ServoThread``
therefore runs at its own rate (~100 Hz), moves its command linearly from
where it was to the newest goal over one control period, and never moves it
more than ``max_velocity / rate_hz`` per tick. If a send blocks (the xArm SDK
occasionally blocks ~190 ms), the thread resumes from where the arm was last
commanded, at the same capped speed: no jump, and the policy loop, which only
calls ``set_goal``, is never held up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np

from .base import now

__all__ = ["ServoThread"]

log = logging.getLogger(__name__)


class ServoThread:
    """Interpolate goals to ``send(command)`` calls at ``rate_hz`` (module doc).

    Args:
        send: called from the servo thread with each command (n,) float64.
        initial: the first command (the measured joints: nothing moves).
        rate_hz: sends per second.
        segment_s: time over which a new goal is reached (the control period).
        max_velocity: rad/s cap, scalar or (n,).
        on_error: called once from the servo thread if ``send`` raises; the
            thread then stops sending.
    """

    def __init__(
        self,
        send: Callable[[np.ndarray], None],
        initial: np.ndarray,
        rate_hz: float,
        segment_s: float,
        max_velocity: float | np.ndarray,
        *,
        name: str = "hop-servo",
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        if rate_hz <= 0 or segment_s <= 0:
            raise ValueError(f"rate_hz and segment_s must be > 0, got {rate_hz}, {segment_s}")
        self._send = send
        self.rate_hz = float(rate_hz)
        self.segment_s = float(segment_s)
        initial = np.asarray(initial, dtype=np.float64).copy()
        self._max_step = np.broadcast_to(np.asarray(max_velocity, dtype=np.float64) / self.rate_hz, initial.shape).copy()
        self._cmd = initial.copy()
        self._start = initial.copy()
        self._goal = initial.copy()
        self._t0 = now()
        self._lock = threading.Lock()
        self._quit = threading.Event()
        self._on_error = on_error
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        # statistics (read after stop, or racily while running)
        self.ticks = 0
        self.late_ticks = 0  # ticks that started more than one period late
        self.max_gap_s = 0.0  # longest time between two sends starting
        self.error: BaseException | None = None

    # ------------------------------------------------------------ control
    def start(self) -> "ServoThread":
        self._thread.start()
        return self

    def set_goal(self, goal: np.ndarray) -> None:
        """Move toward ``goal`` (n,) over one segment, starting from the current command."""
        goal = np.asarray(goal, dtype=np.float64)
        with self._lock:
            self._start = self._cmd.copy()
            self._goal = goal.copy()
            self._t0 = now()

    def hold(self) -> None:
        """Freeze at the current command."""
        with self._lock:
            self._start = self._cmd.copy()
            self._goal = self._cmd.copy()
            self._t0 = now()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop sending and join the thread (returns even if a send is still blocked)."""
        self._quit.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def command(self) -> np.ndarray:
        with self._lock:
            return self._cmd.copy()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # ------------------------------------------------------------ thread
    def _next_command(self, t: float) -> np.ndarray:
        with self._lock:
            u = min(max((t - self._t0) / self.segment_s, 0.0), 1.0)
            desired = self._start + (self._goal - self._start) * u
            self._cmd = self._cmd + np.clip(desired - self._cmd, -self._max_step, self._max_step)
            return self._cmd.copy()

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        next_t = now()
        last_send = None
        while not self._quit.is_set():
            t = now()
            command = self._next_command(t)
            if last_send is not None:
                self.max_gap_s = max(self.max_gap_s, t - last_send)
            last_send = t
            try:
                self._send(command)
            except BaseException as exc:  # noqa: BLE001 - reported to the owner, thread ends
                self.error = exc
                log.error("servo thread %s: send failed: %s", self._thread.name, exc)
                if self._on_error is not None:
                    self._on_error(exc)
                return
            self.ticks += 1
            next_t += period
            delay = next_t - now()
            if delay < -period:  # a blocked send: resume the schedule from now, no burst
                self.late_ticks += 1
                next_t = now()
                delay = 0.0
            if delay > 0:
                self._quit.wait(delay)
