"""Safety between the policy and the drivers: what may be sent, and when to stop.

``SafetyFilter.filter(raw, q)`` turns a policy output (or ``None`` when the
policy or a sensor missed its deadline) into the joint targets that are
sent, in this order:

1. **non-finite** output (NaN/inf) or no output: hold the last safe target;
2. **joint limits**: clamp into ``[lower + margin, upper - margin]``;
3. **lead cap** (joint velocity): a target may be at most ``max_lead`` ahead
   of the measured joints, so a robot that lags or is blocked is not
   commanded ever further away;
4. **per-step change**: at most ``min(max_step, max_velocity / hz)`` per
   joint from the last safe target (defaults: the arm's
   ``spec.ARM_MAX_STEP_PER_SUBSTEP * SUBSTEPS`` = 0.05 rad, the most the arm
   target ever moved per step in training);
5. **palm workspace box**: the palm (keypoint ``kp_palm``) of the target
   must stay inside the box; if it would leave it, the arm's step is
   shortened to the last fraction (of 8) that keeps it inside (or, from
   outside, that does not take it farther out); the hand is unaffected.

The result is always finite and inside the hard limits, and every change is
reported as ``Intervention`` flags. ``Watchdog`` stops the robot after
``max_consecutive_misses`` steps in a row without a usable policy output or
sensor reading. The drivers re-check shape, finiteness and limits
(``Driver.check_targets``) as a last line.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from hop_robot.embodiment import spec

__all__ = ["Intervention", "SafetyConfig", "SafetyFilter", "Watchdog"]


class Intervention(enum.IntFlag):
    NONE = 0
    HOLD = 1  # no usable policy output this step (missed deadline, sensor miss): last target held
    NONFINITE = 2  # the policy produced NaN or inf: last target held
    LIMIT = 4  # clamped to the joint limits (with margin)
    LEAD = 8  # too far ahead of the measured joints
    STEP = 16  # per-step change capped
    WORKSPACE = 32  # the palm would have left the workspace box: arm step shortened


INTERVENTION_NAMES = {flag: flag.name.lower() for flag in Intervention if flag is not Intervention.NONE}


@dataclass(frozen=True)
class SafetyConfig:
    """Safety limits (defaults: the training envelope, DESIGN.md, with margins)."""

    limit_margin: float = 0.02  # rad inside each joint limit
    max_step_arm: float = spec.ARM_MAX_STEP_PER_SUBSTEP * spec.SUBSTEPS  # rad per control step (0.05)
    max_step_hand: float = 0.25  # rad per control step
    max_velocity_arm: float = spec.ARM_MAX_VELOCITY  # rad/s (1.0): also the xArm servo thread's cap
    max_velocity_hand: float = 5.0  # rad/s
    max_lead_arm: float = 0.15  # rad between target and measured joint
    max_lead_hand: float = 0.6  # rad (fingers stop on contact while the target closes further)
    # Palm (kp_palm) box in the robot base frame (m): over the default table
    # (x 0.35-0.95, y ±0.5, top z 0), above its surface, below 0.7 m.
    workspace_low: tuple[float, float, float] = (0.15, -0.55, 0.03)
    workspace_high: tuple[float, float, float] = (0.95, 0.55, 0.70)
    max_consecutive_misses: int = 5  # 250 ms at 20 Hz without policy or sensor: stop

    def per_joint(self, hz: float) -> tuple[np.ndarray, np.ndarray]:
        """(max step per control step (23,), max lead (23,))."""
        step = np.empty(spec.NUM_JOINTS)
        step[spec.ARM] = min(self.max_step_arm, self.max_velocity_arm / hz)
        step[spec.HAND] = min(self.max_step_hand, self.max_velocity_hand / hz)
        lead = np.empty(spec.NUM_JOINTS)
        lead[spec.ARM], lead[spec.HAND] = self.max_lead_arm, self.max_lead_hand
        return step, lead

    def validate(self) -> None:
        low, high = np.asarray(self.workspace_low), np.asarray(self.workspace_high)
        if low.shape != (3,) or high.shape != (3,) or not np.all(low < high):
            raise ValueError(f"workspace box must have low < high in x, y, z; got {self.workspace_low}, {self.workspace_high}")
        if min(self.max_step_arm, self.max_step_hand, self.max_velocity_arm, self.max_velocity_hand) <= 0:
            raise ValueError("step and velocity caps must be > 0")
        if self.limit_margin < 0 or self.max_consecutive_misses < 1:
            raise ValueError("limit_margin must be >= 0 and max_consecutive_misses >= 1")


class SafetyFilter:
    """Policy output -> safe joint targets (module doc). Call ``reset(q)`` first."""

    FRACTIONS = np.linspace(0.0, 1.0, 9)  # candidate fractions of a step for the workspace check

    def __init__(self, config: SafetyConfig = SafetyConfig(), hz: float = spec.CONTROL_HZ, kinematics=None) -> None:
        config.validate()
        self.config = config
        self.hz = float(hz)
        self.max_step, self.max_lead = config.per_joint(self.hz)
        self.lower = spec.JOINT_LOWER + config.limit_margin
        self.upper = spec.JOINT_UPPER - config.limit_margin
        if kinematics is None:
            from hop_robot.embodiment.model import load_model
            from hop_robot.kinematics import RobotKinematics

            kinematics = RobotKinematics(load_model(), sites=("kp_palm",), backend="numpy")
        self.kinematics = kinematics
        self.box_low = np.asarray(config.workspace_low, dtype=np.float64)
        self.box_high = np.asarray(config.workspace_high, dtype=np.float64)
        self.last: np.ndarray | None = None
        self.counts = {name: 0 for name in INTERVENTION_NAMES.values()}

    def reset(self, q_measured: np.ndarray) -> np.ndarray:
        """Start from the measured joints (nothing moves): the first safe target."""
        q = np.asarray(q_measured, dtype=np.float64)
        if q.shape != (spec.NUM_JOINTS,) or not np.isfinite(q).all():
            raise ValueError(f"measured joints must be finite ({spec.NUM_JOINTS},), got {q}")
        self.last = np.clip(q, spec.JOINT_LOWER, spec.JOINT_UPPER)
        return self.last.copy()

    def palm(self, q: np.ndarray) -> np.ndarray:
        """Palm positions (N, 3) for joint angles (N, 23)."""
        return self.kinematics.sites(np.atleast_2d(q))[:, 0, :]

    def box_excess(self, points: np.ndarray) -> np.ndarray:
        """(N,) distance (m) of points outside the workspace box (0 inside)."""
        return np.linalg.norm(np.maximum(np.maximum(self.box_low - points, points - self.box_high), 0.0), axis=-1)

    def hold(self) -> tuple[np.ndarray, Intervention]:
        if self.last is None:
            raise RuntimeError("SafetyFilter.reset(q) must be called first")
        self._count(Intervention.HOLD)
        return self.last.copy(), Intervention.HOLD

    def filter(self, raw: np.ndarray | None, q_measured: np.ndarray) -> tuple[np.ndarray, Intervention]:
        """(safe targets (23,), flags). ``raw`` None = no usable output: hold."""
        if self.last is None:
            raise RuntimeError("SafetyFilter.reset(q) must be called first")
        if raw is None:
            return self.hold()
        raw = np.asarray(raw, dtype=np.float64)
        if raw.shape != (spec.NUM_JOINTS,) or not np.isfinite(raw).all():
            flags = Intervention.NONFINITE | Intervention.HOLD
            self._count(flags)
            return self.last.copy(), flags
        flags = Intervention.NONE
        tol = 1e-12
        target = np.clip(raw, self.lower, self.upper)
        if np.any(np.abs(target - raw) > tol):
            flags |= Intervention.LIMIT
        q = np.asarray(q_measured, dtype=np.float64)
        led = np.clip(target, q - self.max_lead, q + self.max_lead)
        if np.any(np.abs(led - target) > tol):
            flags |= Intervention.LEAD
        stepped = self.last + np.clip(led - self.last, -self.max_step, self.max_step)
        if np.any(np.abs(stepped - led) > tol):
            flags |= Intervention.STEP
        target = self._workspace(stepped)
        if np.any(np.abs(target - stepped) > tol):
            flags |= Intervention.WORKSPACE
        target = np.clip(target, spec.JOINT_LOWER, spec.JOINT_UPPER)  # hard limits, whatever happened above
        self.last = target
        self._count(flags)
        return target.copy(), flags

    def _workspace(self, target: np.ndarray) -> np.ndarray:
        """Shorten the arm's step from ``self.last`` toward ``target`` to keep the palm in the box."""
        if np.allclose(target[spec.ARM], self.last[spec.ARM]):
            return target
        candidates = np.repeat(self.last[None], len(self.FRACTIONS), axis=0)
        candidates[:, spec.ARM] += self.FRACTIONS[:, None] * (target[spec.ARM] - self.last[spec.ARM])
        excess = self.box_excess(self.palm(candidates))
        allowed = excess <= excess[0] + 1e-9  # inside, or no farther out than where we are
        if allowed.all():
            return target
        k = int(np.argmin(allowed)) - 1  # the last fraction before the first disallowed one
        out = target.copy()
        out[spec.ARM] = candidates[max(k, 0), spec.ARM]
        return out

    def _count(self, flags: Intervention) -> None:
        for flag, name in INTERVENTION_NAMES.items():
            if flags & flag:
                self.counts[name] += 1


class Watchdog:
    """Counts steps without a usable policy output or sensor reading; trips after
    ``max_consecutive`` in a row (a good step resets the count)."""

    def __init__(self, max_consecutive: int) -> None:
        if max_consecutive < 1:
            raise ValueError(f"max_consecutive must be >= 1, got {max_consecutive}")
        self.max_consecutive = max_consecutive
        self.consecutive = 0
        self.total = 0

    def update(self, missed: bool) -> bool:
        """Record one step; True when the robot must stop."""
        if missed:
            self.consecutive += 1
            self.total += 1
        else:
            self.consecutive = 0
        return self.consecutive >= self.max_consecutive
