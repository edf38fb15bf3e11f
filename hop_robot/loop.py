"""The closed loop: every 50 ms observe, run the policy, apply safety, send.

``ControlLoop(robot, camera, policy, ...).run()`` on the calling thread
(the main thread, so that SIGINT/SIGTERM are caught):

1. **Startup** (nothing moves): wait for a fresh joint state and an object
   cloud (``startup_timeout``); the first safe target is the measured pose.
   Optionally (``home``) move to ``spec.DEFAULT_POSE`` through the same
   safety filter first.
2. **Ticks** at ``t0 + k / hz`` on the loop's clock (``time.monotonic``
   unless a test injects a fake one; absolute schedule, no drift): read the
   joints (``robot.observe``, non-blocking) and the cloud
   (``camera.read``), append both to the history (last ``context`` = 16
   steps), hand the history to the policy **worker thread**, wait for its
   answer until ``policy_deadline`` × period after the tick, pass the answer
   (or ``None``) through ``SafetyFilter``, send the safe target
   (``robot.act``, non-blocking: the drivers' own servo threads do the
   rest), record the row.
3. **Watchdog**: a step is *missed* when the policy did not answer in time
   (or is still busy with an older step), answered NaN/inf, or a sensor was
   stale (joints older than ``max_joint_age``, cloud older than
   ``max_cloud_age`` or not found). A missed step holds the last safe
   target; ``SafetyConfig.max_consecutive_misses`` in a row stop the robot.
   A tick that starts more than a period late (the machine stalled) skips
   the lost ticks and counts them as misses.
4. **Always** (``finally``): the robot is stopped (``emergency_stop`` after a
   robot fault), the policy worker told to quit, signal handlers restored,
   the recording written. ``summary.cause`` says why it stopped (``StopCause``).

``dry_run``: everything is computed and logged, nothing is sent (use a
read-only driver so that motion is not even enabled).

Because the policy runs on its own thread, a policy that hangs cannot stall
the loop: the loop keeps holding, the watchdog stops the robot, and Ctrl-C
is honoured within one period (also during the warm-up). A policy call that
is still running when the loop ends cannot be interrupted (TorchScript holds
the thread): ``run`` returns without waiting for it, ``join_policy`` waits a
bounded time, and a process that must end while the call is in flight ends
with ``os._exit`` (``hop_robot.cli``): at normal interpreter shutdown a daemon
thread inside TorchScript aborts the process ("terminate called without an
active exception", SIGABRT).

Signals: while ``run`` runs on the main thread it installs its own SIGINT and
SIGTERM handlers whatever the inherited disposition (a background job or
``nohup`` inherits SIGINT ignored: the robot must still stop on it) and
restores the previous ones when it returns. A handler only records the
signal (``on_signal``, no lock: see there); the loop acts on it at its next
check, within a period.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from enum import Enum

import numpy as np

from hop_robot.cameras.base import Camera, CameraEnded
from hop_robot.drivers.base import MONOTONIC, Clock, Driver, RobotFault
from hop_robot.embodiment import spec
from hop_robot.record import EpisodeRecorder
from hop_robot.safety import INTERVENTION_NAMES, Intervention, SafetyConfig, SafetyFilter, Watchdog

__all__ = ["ControlLoop", "LoopConfig", "LoopError", "LoopSummary", "PolicyError", "StopCause", "realtime_priority",
           "warm_up"]  # fmt: skip

log = logging.getLogger(__name__)

PolicyFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class LoopError(RuntimeError):
    """The loop could not start or continue (no sensors, homing failed)."""


class PolicyError(RuntimeError):
    """The policy raised (other than a refused non-finite output)."""


class StopCause(str, Enum):
    """Why a run ended (``LoopSummary.cause``): what a caller branches on
    (``hop-robot run`` maps each to its exit status); ``reason`` is the text."""

    DURATION = "duration"  # the planned duration was reached
    CAMERA_ENDED = "camera_ended"  # a recorded camera stream ended
    REQUESTED = "requested"  # request_stop() from code
    SIGNAL = "signal"  # SIGINT or SIGTERM (LoopSummary.signal names it)
    WATCHDOG = "watchdog"  # too many missed steps in a row
    POLICY_ERROR = "policy_error"  # the policy raised
    ROBOT_FAULT = "robot_fault"  # the robot reported a fault
    STARTUP = "startup"  # could not start: no sensors, warm-up or homing failed
    ERROR = "error"  # anything else (camera or driver error, a bug)


@dataclass(frozen=True)
class LoopConfig:
    """Timing of the loop (the defaults are the paper's 20 Hz)."""

    hz: float = spec.CONTROL_HZ
    duration: float | None = 30.0  # s of policy control (paper: 30 s episodes); None = until stopped
    dry_run: bool = False
    policy_deadline: float = 0.9  # the policy's answer must be in by this fraction of the period after the tick
    max_joint_age: float = 0.1  # s
    max_cloud_age: float = 0.2  # s (a 30 fps camera delivers every 33 ms)
    startup_timeout: float = 5.0  # s to wait for the first joint state and object cloud
    home: bool = False  # move to spec.DEFAULT_POSE before the policy starts
    home_tolerance: float = 0.03  # rad, max |q - home| to count as arrived
    home_timeout: float = 30.0  # s
    switch_interval: float | None = 0.0005  # s; Python's GIL switch interval while running (None: unchanged)
    warm_up: bool = True  # call the policy on every history length on its thread before the robot is observed
    warm_up_timeout: float = 120.0  # s for the whole warm-up
    policy_grace: float = 1.0  # s join_policy() waits by default for a call still running at the end


@dataclass
class LoopSummary:
    """What happened (printed at the end; ``--json``)."""

    reason: str = ""
    cause: str = ""  # a StopCause value
    signal: str | None = None  # "SIGINT" / "SIGTERM" when a signal stopped the run
    policy_in_flight: bool = False  # a policy call was still running when the loop ended
    steps: int = 0
    duration_s: float = 0.0
    target_hz: float = 0.0
    achieved_hz: float = 0.0
    period_ms: dict = field(default_factory=dict)  # p50, p99, max of tick-to-tick times
    jitter_ms: dict = field(default_factory=dict)  # p50, p99, max of |period - 1/hz|
    policy_latency_ms: dict = field(default_factory=dict)  # p50, p99, max of the policy call alone
    cycle_ms: dict = field(default_factory=dict)  # p50, p99, max from tick start to command sent
    misses: dict = field(default_factory=dict)
    interventions: dict = field(default_factory=dict)
    dry_run: bool = False
    commands_sent: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        def q(d: dict) -> str:
            return " ".join(f"{k} {v:.2f}" for k, v in d.items()) if d else "-"

        lines = [
            f"stopped: {self.reason}" + ("  [a policy call was still running]" if self.policy_in_flight else ""),
            f"steps {self.steps} in {self.duration_s:.2f} s: {self.achieved_hz:.3f} Hz (target {self.target_hz:g})"
            + ("  [dry run: nothing sent]" if self.dry_run else f"  commands sent {self.commands_sent}"),
            f"loop period ms     {q(self.period_ms)}",
            f"period jitter ms   {q(self.jitter_ms)}",
            f"policy latency ms  {q(self.policy_latency_ms)}",
            f"tick to command ms {q(self.cycle_ms)}",
            "deadline misses    " + " ".join(f"{k} {v}" for k, v in self.misses.items()),
            "safety             " + " ".join(f"{k} {v}" for k, v in self.interventions.items()),
        ]
        return "\n".join(lines)


def _stats(values_s: list[float]) -> dict:
    v = np.asarray([x for x in values_s if np.isfinite(x)], dtype=np.float64) * 1e3
    if len(v) == 0:
        return {}
    return {"p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99)), "max": float(v.max())}


class _PolicyWorker:
    """Runs the policy on its own (daemon) thread, one job at a time.

    A daemon thread so that a hung call cannot keep the process alive; the
    owner decides what happens to a call still running at the end
    (``ControlLoop.join_policy``)."""

    def __init__(self, policy: PolicyFn, clock: Clock) -> None:
        self._policy = policy
        self._clock = clock
        self._cv = threading.Condition()
        self._job: tuple[np.ndarray, np.ndarray] | None = None
        self._busy = False
        self._quit = False
        self._done = threading.Event()
        self._result: tuple[object, float] | None = None
        self._thread = threading.Thread(target=self._run, name="hop-policy", daemon=True)
        self._thread.start()

    def submit(self, proprio: np.ndarray, points: np.ndarray) -> bool:
        """Start a job; False if the previous one is still running."""
        with self._cv:
            if self._busy:
                return False
            self._job, self._busy, self._result = (proprio, points), True, None
            self._done.clear()
            self._cv.notify()
        return True

    def wait(self, timeout: float) -> bool:
        return self._clock.wait(self._done, timeout)

    @property
    def busy(self) -> bool:
        """A job was submitted and has not returned yet."""
        with self._cv:
            return self._busy

    def take(self) -> tuple[object, float]:
        with self._cv:
            result, self._result = self._result, None
        return result

    def close(self) -> None:
        """Ask the thread to end after its current call (does not wait: a call
        inside TorchScript cannot be interrupted)."""
        with self._cv:
            self._quit = True
            self._cv.notify()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s (real time) for the thread to end; True if it has."""
        self._thread.join(max(timeout, 0.0))
        return not self._thread.is_alive()

    def call(self, function: Callable[[], None], timeout: float, stopping: Callable[[], bool]) -> None:
        """Run ``function`` on the worker thread and wait for it (warm-up: TorchScript
        and the thread's own pools initialise on the first calls made *on that thread*).
        Gives up when ``stopping()`` (Ctrl-C during a long warm-up)."""
        policy = self._policy
        self._policy = lambda *_: function()
        try:
            if not self.submit(np.zeros(0), np.zeros(0)):
                raise LoopError("the policy worker is busy")
            deadline = self._clock.now() + timeout
            # in slices, so that a stop request is honoured within 50 ms
            while not self.wait(min(0.05, deadline - self._clock.now())):
                if stopping():
                    raise LoopError("stopped during the policy warm-up")
                if self._clock.now() >= deadline:
                    raise LoopError(f"policy warm-up did not finish within {timeout:g} s")
            out, _ = self.take()
            if isinstance(out, BaseException):
                raise PolicyError(f"the policy failed during warm-up: {out!r}") from out
        finally:
            self._policy = policy

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._job is None and not self._quit:
                    self._cv.wait()
                if self._quit:
                    return
                job, self._job = self._job, None
            t = self._clock.now()
            try:
                out: object = self._policy(*job)
            except BaseException as exc:  # noqa: BLE001 - handed to the loop
                out = exc
            latency = self._clock.now() - t
            with self._cv:
                self._result, self._busy = (out, latency), False
                self._done.set()


@contextlib.contextmanager
def realtime_priority(priority: int | None) -> Iterator[bool]:
    """Run the calling thread, and every thread it starts meanwhile (drivers'
    servo threads, the simulation, the policy worker: Linux threads inherit the
    policy), under ``SCHED_FIFO`` at ``priority`` (1-99), as robot control
    processes usually run. Needs root, CAP_SYS_NICE or an rtprio limit; if it
    is not allowed, logs a warning and yields False. ``None``: no change."""
    if priority is None:
        yield False
        return
    if not hasattr(os, "SCHED_FIFO"):
        log.warning("real-time scheduling is not available on this system")
        yield False
        return
    before = (os.sched_getscheduler(0), os.sched_getparam(0))
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(priority)))
    except (PermissionError, OSError) as exc:
        log.warning("cannot use SCHED_FIFO priority %s (%s): running with normal scheduling", priority, exc)
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setscheduler(0, before[0], before[1])


def warm_up(policy: PolicyFn, context: int, num_points: int = spec.NUM_POINTS, repeats: int = 3) -> None:
    """Call the policy on every history length 1..context so that TorchScript
    has specialised for each before the robot is connected (the first calls
    of a new shape are slow)."""
    rng = np.random.default_rng(0)
    for t in range(1, context + 1):
        for _ in range(repeats):
            proprio = np.tile(spec.DEFAULT_POSE, (t, 1)).astype(np.float32)
            points = (rng.normal(0.0, 0.03, (t, num_points, 3)) + [0.5, 0.0, 0.05]).astype(np.float32)
            policy(proprio, points)


class ControlLoop:
    """The 20 Hz loop (module doc).

    Args:
        robot: a connected ``Driver`` (23 joints).
        camera: a started ``Camera``.
        policy: ``policy(proprio_hist (T, 23), points_hist (T, P, 3)) -> (23,)``
            rad (``hop_robot.policy.ExportedPolicy``); its ``context``
            attribute (default ``spec.CONTEXT``) bounds T.
        config: timing.
        safety: safety limits.
        recorder: if given, every policy step is recorded and saved at the end.
        meta: extra fields for the recording's metadata.
        safety_filter: a prepared filter (default: one from ``safety``).
        clock: the loop's time (default ``MONOTONIC``; tests inject a fake
            clock). Joint and cloud stamps must be on the same scale.
    """

    def __init__(
        self,
        robot: Driver,
        camera: Camera,
        policy: PolicyFn,
        *,
        config: LoopConfig = LoopConfig(),
        safety: SafetyConfig = SafetyConfig(),
        recorder: EpisodeRecorder | None = None,
        meta: dict | None = None,
        safety_filter: SafetyFilter | None = None,
        clock: Clock = MONOTONIC,
    ) -> None:
        if robot.num_joints != spec.NUM_JOINTS:
            raise ValueError(f"the loop drives {spec.NUM_JOINTS} joints; {robot.name} has {robot.num_joints}")
        if config.hz <= 0 or not 0 < config.policy_deadline <= 1:
            raise ValueError(f"hz must be > 0 and policy_deadline in (0, 1], got {config.hz}, {config.policy_deadline}")
        self.robot, self.camera, self.policy = robot, camera, policy
        self.config, self.safety_config = config, safety
        self.context = int(getattr(policy, "context", spec.CONTEXT))
        self.safety = safety_filter if safety_filter is not None else SafetyFilter(safety, config.hz)
        self.watchdog = Watchdog(safety.max_consecutive_misses)
        self.recorder = recorder
        self.meta = dict(meta or {})
        self.clock = clock
        self._stop = threading.Event()
        self._stop_reason: str | None = None
        self._signal: str | None = None
        self._pending_signal: str | None = None  # set by signal handlers, lock-free (see on_signal)
        self._worker: _PolicyWorker | None = None
        self.summary = LoopSummary(target_hz=config.hz, dry_run=config.dry_run)
        self._cloud: np.ndarray | None = None
        self._cloud_stamp = -np.inf
        self._proprio: deque[np.ndarray] = deque(maxlen=self.context)
        self._points: deque[np.ndarray] = deque(maxlen=self.context)
        self._misses = {"policy": 0, "nonfinite": 0, "joints": 0, "cloud": 0, "overrun": 0}
        self._starts: list[float] = []
        self._latencies: list[float] = []
        self._cycles: list[float] = []
        self._sent = 0
        self._asked = False  # the policy has been called in the control phase

    # ------------------------------------------------------------ control
    def request_stop(self, reason: str = "requested", *, signal_name: str | None = None) -> None:
        """Stop at the next tick (thread-safe; not from a signal handler: ``on_signal``).
        The first request's reason (or signal) is the one reported."""
        if self._stop_reason is None:
            self._stop_reason, self._signal = (signal_name or reason), signal_name
        self._stop.set()

    def on_signal(self, signal_name: str) -> None:
        """What a signal handler calls: only an assignment, no lock. A handler runs
        on the main thread between two bytecodes, possibly inside ``Event.wait``
        while it holds the lock that ``Event.set`` takes: a deadlock. The main
        thread turns this into ``request_stop`` at its next check (within a period)."""
        if self._pending_signal is None:
            self._pending_signal = signal_name

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set() or self._pending_signal is not None

    def _stopping(self) -> bool:
        """(main thread) Whether to stop, a signal received meanwhile included."""
        if self._pending_signal is not None and not self._stop.is_set():
            self.request_stop(self._pending_signal, signal_name=self._pending_signal)
        return self._stop.is_set()

    def run(self) -> LoopSummary:
        """Warm up, start, run the ticks, stop the robot (module doc); the
        summary says why it ended. Exceptions other than ``CameraEnded`` are
        re-raised after the robot was stopped and the summary completed."""
        cfg = self.config
        previous = self._install_signals()
        switch = sys.getswitchinterval()
        if cfg.switch_interval is not None:
            sys.setswitchinterval(cfg.switch_interval)
        worker = self._worker = _PolicyWorker(self.policy, self.clock)
        reason, cause, fault = "", StopCause.ERROR, False
        try:
            if cfg.warm_up:
                num_points = int(getattr(self.policy, "num_points", spec.NUM_POINTS))
                worker.call(lambda: warm_up(self.policy, self.context, num_points), cfg.warm_up_timeout, self._stopping)
            # Everything allocated so far (torch, the model) leaves the collector's
            # view, so that a collection during the loop is short.
            gc.collect()
            gc.freeze()
            self._startup()
            if cfg.home:
                self._home()
            cause, reason = self._control(worker)
        except CameraEnded as exc:
            cause, reason = StopCause.CAMERA_ENDED, f"camera ended ({exc})"
        except RobotFault as exc:
            cause, reason, fault = StopCause.ROBOT_FAULT, f"robot fault: {exc}", True
            raise
        except PolicyError as exc:
            cause, reason = StopCause.POLICY_ERROR, f"policy error: {exc}"
            raise
        except LoopError as exc:
            stopping = self._stopping()
            cause = StopCause.SIGNAL if self._signal else StopCause.REQUESTED if stopping else StopCause.STARTUP
            reason = f"{exc} ({self._stop_reason})" if stopping else str(exc)
            raise
        except BaseException as exc:
            reason = f"error: {exc!r}"
            raise
        finally:
            try:
                if fault:
                    self.robot.emergency_stop()
                else:
                    self.robot.stop()
            except Exception:  # noqa: BLE001 - report, then the driver's __exit__ tries again
                log.exception("stopping the robot failed")
            finally:
                worker.close()
                gc.unfreeze()
                sys.setswitchinterval(switch)
                self._restore_signals(previous)
                self._finish(StopCause(cause), reason)
        return self.summary

    def join_policy(self, timeout: float | None = None) -> bool:
        """After ``run``: wait up to ``timeout`` s (default ``config.policy_grace``,
        real time) for a policy call that was still running to return and the
        worker thread to end. True when no policy thread is left; False: the
        call is still running (it cannot be interrupted: see the module doc)."""
        if self._worker is None:
            return True
        return self._worker.join(self.config.policy_grace if timeout is None else timeout)

    # ------------------------------------------------------------ phases
    def _startup(self) -> None:
        cfg, now = self.config, self.clock.now
        deadline = now() + cfg.startup_timeout
        state = None
        while now() < deadline and not self._stopping():
            state = self.robot.observe()
            t = now()
            fresh = t - state.stamp <= cfg.max_joint_age and np.isfinite(state.q).all()
            if fresh:
                frame = self.camera.read(state.q)
                if frame is not None and t - frame.stamp <= cfg.max_cloud_age:
                    self._cloud, self._cloud_stamp = frame.points, frame.stamp
                    self.safety.reset(state.q)
                    return
            self.clock.sleep(0.02, until=self._stop)
        if self._stopping():
            raise LoopError("stopped during startup")
        what = "a fresh joint state" if state is None or now() - state.stamp > cfg.max_joint_age else "an object cloud"
        raise LoopError(f"no {what} within {cfg.startup_timeout:g} s: nothing was sent")

    def _home(self) -> None:
        cfg, now = self.config, self.clock.now
        if cfg.dry_run:
            log.warning("dry run: skipping the move to the home pose")
            return
        home = np.clip(spec.DEFAULT_POSE, self.safety.lower, self.safety.upper)
        period = 1.0 / cfg.hz
        t0, k = now(), 0
        log.info("moving to the home pose (safety-limited)")
        while not self._stopping():
            state = self.robot.observe()
            if np.max(np.abs(state.q - home)) < cfg.home_tolerance:
                log.info("home pose reached in %.1f s", now() - t0)
                self.safety.reset(state.q)
                return
            if now() - t0 > cfg.home_timeout:
                raise LoopError(f"home pose not reached within {cfg.home_timeout:g} s")
            target, _ = self.safety.filter(home, state.q)
            self.robot.act(target)
            self._sent += 1
            k += 1
            self.clock.sleep(t0 + k * period - now(), until=self._stop)
        raise LoopError("stopped while moving home")

    def _control(self, worker: _PolicyWorker) -> tuple[StopCause, str]:
        cfg, now = self.config, self.clock.now
        period = 1.0 / cfg.hz
        max_steps = None if cfg.duration is None else max(1, int(round(cfg.duration * cfg.hz)))
        t0 = now()
        k = 0
        while max_steps is None or k < max_steps:
            tick = t0 + k * period
            delay = tick - now()
            if delay > 0:
                self.clock.sleep(delay, until=self._stop)
            if self._stopping():
                cause = StopCause.SIGNAL if self._signal else StopCause.REQUESTED
                return cause, f"stop requested ({self._stop_reason})"
            start = now()
            late = start - tick
            if late > period:  # stalled: skip the lost ticks, count them as misses
                lost = int(late // period)
                if max_steps is not None:
                    lost = min(lost, max_steps - k)  # none past the end of the run
                k += lost
                tick += lost * period
                self._misses["overrun"] += lost
                for _ in range(lost):
                    if self.watchdog.update(True):
                        return self._trip()
                if max_steps is not None and k >= max_steps:
                    break
            if self._step(worker, tick, start, period):
                return self._trip()
            k += 1
        return StopCause.DURATION, "duration reached"

    def _trip(self) -> tuple[StopCause, str]:
        log.error("watchdog: %d steps in a row without policy output or fresh sensors: stopping",
                  self.watchdog.consecutive)  # fmt: skip
        return StopCause.WATCHDOG, f"watchdog ({self.watchdog.consecutive} missed steps in a row)"

    def _step(self, worker: _PolicyWorker, tick: float, start: float, period: float) -> bool:
        """One tick; True when the watchdog trips."""
        cfg, now = self.config, self.clock.now
        self._starts.append(start)
        state = self.robot.observe()
        joint_age = now() - state.stamp
        frame = self.camera.read(state.q)
        joint_ok = joint_age <= cfg.max_joint_age and np.isfinite(state.q).all()
        if frame is not None:
            self._cloud, self._cloud_stamp = frame.points, frame.stamp
        cloud_age = now() - self._cloud_stamp
        cloud_ok = frame is not None and cloud_age <= cfg.max_cloud_age
        self._proprio.append(np.asarray(state.q, dtype=np.float32))
        self._points.append(np.asarray(self._cloud, dtype=np.float32))
        raw, latency, missed = None, np.nan, False
        if not joint_ok:
            self._misses["joints"] += 1
        if not cloud_ok:
            self._misses["cloud"] += 1
        if joint_ok and cloud_ok:
            if worker.submit(np.stack(self._proprio), np.stack(self._points)):
                if not self._asked:  # once: the policy now has the robot
                    self._asked = True
                    log.info("policy control started: first policy call at step %d (%g Hz)", len(self._starts) - 1,
                             cfg.hz)  # fmt: skip
                if worker.wait(tick + cfg.policy_deadline * period - now()):
                    out, latency = worker.take()
                    self._latencies.append(latency)
                    if isinstance(out, FloatingPointError):  # the runner refused NaN/inf
                        raw = np.full(spec.NUM_JOINTS, np.nan)
                    elif isinstance(out, BaseException):
                        raise PolicyError(f"the policy raised: {out!r}") from out
                    else:
                        raw = np.asarray(out, dtype=np.float64)
                else:
                    missed = True
                    self._misses["policy"] += 1
            else:  # still busy with an earlier step
                missed = True
                self._misses["policy"] += 1
        target, flags = self.safety.filter(raw, state.q)
        if flags & Intervention.NONFINITE:
            self._misses["nonfinite"] += 1
        missed = missed or not (joint_ok and cloud_ok) or bool(flags & Intervention.NONFINITE)
        sent = False
        if not cfg.dry_run:
            self.robot.act(target)
            sent = True
            self._sent += 1
        self._cycles.append(now() - start)
        if cfg.dry_run:
            log.info("tick %d: max |target - q| %.4f rad, flags %s, policy %.1f ms%s", len(self._starts) - 1,
                     float(np.max(np.abs(target - state.q))), _flag_names(flags), latency * 1e3,
                     " MISS" if missed else "")  # fmt: skip
        if self.recorder is not None:
            self.recorder.append(
                proprio=state.q, action=target, object_pc=self._cloud,
                policy_action=raw if raw is not None else np.full(spec.NUM_JOINTS, np.nan),
                time=start - self._starts[0], joint_age=joint_age, cloud_age=cloud_age,
                policy_latency=latency, miss=missed, intervention=int(flags), sent=sent,
            )  # fmt: skip
        return self.watchdog.update(missed)

    # ------------------------------------------------------------ end
    def _finish(self, cause: StopCause, reason: str) -> None:
        s = self.summary
        s.cause, s.reason, s.signal = cause.value, reason or "not started", self._signal
        s.policy_in_flight = self._worker is not None and self._worker.busy
        if s.policy_in_flight:
            log.warning("the loop ended while a policy call was still running")
        s.steps = len(self._starts)
        starts = np.asarray(self._starts)
        if len(starts) >= 2:
            periods = np.diff(starts)
            s.duration_s = float(starts[-1] - starts[0])
            s.achieved_hz = float((len(starts) - 1) / s.duration_s)
            s.period_ms = _stats(list(periods))
            s.jitter_ms = _stats(list(np.abs(periods - 1.0 / self.config.hz)))
        s.policy_latency_ms = _stats(self._latencies)
        s.cycle_ms = _stats(self._cycles)
        s.misses = {**self._misses, "total": self.watchdog.total, "max_in_a_row_allowed": self.watchdog.max_consecutive}
        s.interventions = dict(self.safety.counts)
        s.commands_sent = self._sent
        if self.recorder is not None and len(self.recorder):
            path = self.recorder.save({**self.meta, "summary": s.to_dict(), "safety": asdict(self.safety_config),
                                       "loop": asdict(self.config)})  # fmt: skip
            log.info("recording written: %s (%d steps)", path, len(self.recorder))

    # ------------------------------------------------------------ signals
    def _install_signals(self) -> dict:
        """Our handlers for SIGINT and SIGTERM, whatever was there before (also
        SIG_IGN, inherited by background jobs); returns what to restore."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)
        return previous

    def _on_signal(self, signum: int, frame: object) -> None:
        self.on_signal(signal.Signals(signum).name)

    @staticmethod
    def _restore_signals(previous: dict) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _flag_names(flags: Intervention) -> str:
    names = [name for flag, name in INTERVENTION_NAMES.items() if flags & flag]
    return ",".join(names) if names else "-"
