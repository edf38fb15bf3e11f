"""Safety filter and watchdog: each rule on its own, with the real kinematics."""

from __future__ import annotations

import numpy as np
import pytest

from hop_robot.embodiment import spec
from hop_robot.safety import Intervention, SafetyConfig, SafetyFilter, Watchdog

Q0 = np.clip(spec.DEFAULT_POSE, spec.JOINT_LOWER + 0.03, spec.JOINT_UPPER - 0.03)  # inside the margin band


@pytest.fixture(scope="module")
def kin():
    from hop_robot.embodiment.model import load_model
    from hop_robot.kinematics import RobotKinematics

    return RobotKinematics(load_model(), sites=("kp_palm",), backend="numpy")


def make(kin, **kw):
    f = SafetyFilter(SafetyConfig(**kw), spec.CONTROL_HZ, kinematics=kin)
    f.reset(Q0)
    return f


def test_reset_is_the_measured_pose_and_in_range_targets_pass(kin):
    f = SafetyFilter(SafetyConfig(), kinematics=kin)
    with pytest.raises(RuntimeError):
        f.filter(Q0, Q0)
    assert np.array_equal(f.reset(Q0), np.clip(Q0, spec.JOINT_LOWER, spec.JOINT_UPPER))
    target = Q0.copy()
    target[0] += 0.01
    target[10] += 0.05
    out, flags = f.filter(target, Q0)
    assert flags == Intervention.NONE and np.allclose(out, target)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_output_holds_the_last_safe_target(kin, bad):
    f = make(kin)
    raw = Q0.copy()
    raw[4] = bad
    out, flags = f.filter(raw, Q0)
    assert flags & Intervention.NONFINITE and flags & Intervention.HOLD
    assert np.isfinite(out).all() and np.array_equal(out, np.clip(Q0, spec.JOINT_LOWER, spec.JOINT_UPPER))
    out, flags = f.filter(None, Q0)  # a missed deadline holds too
    assert flags == Intervention.HOLD and np.isfinite(out).all()
    out, flags = f.filter(np.zeros(5), Q0)  # wrong shape: never sent
    assert flags & Intervention.NONFINITE
    assert f.counts["nonfinite"] == 2 and f.counts["hold"] == 3


def test_limits_are_clamped_with_margin(kin):
    f = make(kin, limit_margin=0.05, max_step_hand=10.0, max_velocity_hand=1000.0, max_lead_hand=10.0)
    raw = Q0.copy()
    raw[spec.HAND] = spec.JOINT_UPPER[spec.HAND] + 1.0  # far beyond every finger limit
    out, flags = f.filter(raw, Q0)
    assert flags & Intervention.LIMIT
    assert np.allclose(out[spec.HAND], spec.JOINT_UPPER[spec.HAND] - 0.05)
    # whatever comes in, the result is inside the hard limits
    rng = np.random.default_rng(0)
    for _ in range(50):
        out, _ = f.filter(rng.uniform(-10, 10, spec.NUM_JOINTS), out)
        assert np.all(out >= spec.JOINT_LOWER) and np.all(out <= spec.JOINT_UPPER)


def test_per_step_change_is_capped(kin):
    f = make(kin)
    raw = Q0.copy()
    raw[spec.ARM] += 0.04  # inside the 0.15 rad lead, beyond nothing
    raw[1] += 0.06  # 0.10 rad on joint 2: twice the 0.05 rad arm step
    raw[spec.HAND] += 0.3
    out, flags = f.filter(raw, Q0)
    assert flags & Intervention.STEP
    step = out - Q0
    assert np.isclose(step[1], spec.ARM_MAX_STEP_PER_SUBSTEP * spec.SUBSTEPS)  # 0.05 = the sim's per-step limit
    assert np.all(np.abs(step[spec.ARM]) <= 0.05 + 1e-12) and np.all(np.abs(step[spec.HAND]) <= 0.25 + 1e-12)
    # the velocity cap binds when it is the tighter one: 0.4 rad/s at 20 Hz = 0.02 rad per step
    g = make(kin, max_velocity_arm=0.4)
    out, flags = g.filter(raw, Q0)
    assert np.all(np.abs(out - Q0)[spec.ARM] <= 0.02 + 1e-12) and flags & Intervention.STEP


def test_target_may_not_run_away_from_the_measured_joints(kin):
    f = make(kin, max_lead_arm=0.1)
    q_measured = Q0.copy()  # the arm is blocked: it stays here while targets advance
    raw = Q0.copy()
    raw[0] += 1.0
    outs = []
    for _ in range(6):
        out, flags = f.filter(raw, q_measured)
        outs.append(out[0] - Q0[0])
    assert np.isclose(outs[0], 0.05) and np.isclose(outs[1], 0.1)
    assert np.allclose(outs[2:], 0.1) and flags & Intervention.LEAD  # never more than 0.1 ahead


def test_palm_workspace_box(kin):
    f = make(kin)
    palm0 = f.palm(Q0)[0]
    assert np.all(palm0 > f.box_low) and np.all(palm0 < f.box_high)
    # a box whose top is just above the current palm: pushing the palm up is stopped at the wall
    tight = make(kin, workspace_high=(0.95, 0.55, float(palm0[2]) + 0.01), max_lead_arm=1.0)
    q = Q0.copy()
    direction = np.zeros(spec.NUM_JOINTS)
    direction[1] = -1.0  # shoulder back: lifts the palm
    assert f.palm(Q0 + 0.05 * direction)[0, 2] > palm0[2]
    for _ in range(20):
        out, flags = tight.filter(q + 0.05 * direction, q)
        q = out
    assert flags & Intervention.WORKSPACE
    assert tight.palm(q)[0, 2] <= palm0[2] + 0.01 + 1e-9
    assert tight.counts["workspace"] >= 1
    # the hand still moves while the arm is held at the wall
    raw = q.copy()
    raw[1] -= 0.05
    raw[spec.HAND] += 0.1
    out, flags = tight.filter(raw, q)
    assert flags & Intervention.WORKSPACE and np.allclose(out[spec.HAND], q[spec.HAND] + 0.1)
    # from outside the box, motion that goes back inside is allowed, motion outward is not
    outside = make(kin, workspace_low=(0.15, -0.55, float(palm0[2]) + 0.05))
    back = Q0.copy()
    back[1] += 0.05  # shoulder forward: lowers the palm... farther out of a box above it
    out, flags = outside.filter(back, Q0)
    assert flags & Intervention.WORKSPACE and np.allclose(out[spec.ARM], Q0[spec.ARM])
    up = Q0 + 0.05 * direction
    out, flags = outside.filter(up, Q0)
    assert not flags & Intervention.WORKSPACE and np.allclose(out, up)


def test_config_validation():
    with pytest.raises(ValueError):
        SafetyConfig(workspace_low=(1, 0, 0), workspace_high=(0, 1, 1)).validate()
    with pytest.raises(ValueError):
        SafetyConfig(max_consecutive_misses=0).validate()
    with pytest.raises(ValueError):
        SafetyConfig(max_step_arm=0.0).validate()


def test_watchdog_counts_misses_in_a_row():
    w = Watchdog(3)
    assert not w.update(True) and not w.update(True)
    assert not w.update(False)  # a good step resets
    assert not w.update(True) and not w.update(True)
    assert w.update(True) and w.total == 5
    with pytest.raises(ValueError):
        Watchdog(0)
