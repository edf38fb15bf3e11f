"""The Allegro Hand driver on python-can's virtual bus against a simulated hand,
and its frame codec against a frame trace of a real v4 hand."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

can = pytest.importorskip("can")

from _allegro_fake import FakeAllegroHand  # noqa: E402
from hop_robot.drivers import allegro as A  # noqa: E402
from hop_robot.drivers.base import DriverError, RobotStoppedError  # noqa: E402
from hop_robot.embodiment import spec  # noqa: E402

Q0 = np.clip(spec.DEFAULT_POSE[spec.HAND] + 0.1, spec.JOINT_LOWER[spec.HAND] + 0.05, spec.JOINT_UPPER[spec.HAND] - 0.05)


@pytest.fixture
def channel():
    return f"hop-allegro-{uuid.uuid4().hex[:8]}"


def wait_until(condition, timeout=1.0):
    end = time.monotonic() + timeout
    while not condition() and time.monotonic() < end:
        time.sleep(0.005)
    return condition()


def driver(channel, **kw):
    read_only = kw.pop("read_only", False)
    return A.AllegroHand(A.AllegroConfig(channel=channel, interface="virtual", connect_timeout=0.3, **kw), read_only=read_only)


def test_codec_matches_a_real_hand_trace():
    # positions of finger 0 (id 0x080 = 0x20 << 2) and hand info (id 0x200 = 0x80 << 2) as logged from a v4 hand
    assert A.frame_id(A.RTR_FINGER_POSE) == 0x080 and A.frame_id(A.RTR_FINGER_POSE + 3) == 0x08C
    assert A.frame_id(A.RTR_HAND_INFO) == 0x200 and A.frame_id(A.CMD_SET_TORQUE) == 0x180
    assert A.split_id(0x08C) == (0x23, 0) and A.split_id(0x181) == (0x60, 1)
    q = A.decode_positions(bytes.fromhex("CAFDBDFE90FFCEFF"))
    counts = np.array([-566, -323, -112, -50])
    assert np.allclose(q, np.deg2rad(counts * 333.3 / 65536))
    info = A.decode_info(bytes.fromhex("02040604003C05"))
    assert info["major_version"] == 4 and info["hand"] == "right" and info["temperature_c"] == 60
    assert info["servo_on"] and not info["over_temperature"]
    # torque frames: little-endian int16 duties, clipped to the v4 full scale
    assert A.encode_torque([2, 203, 66, 37]) == bytes.fromhex("0200CB0042002500")
    assert A.encode_torque([5000, -5000, 0, 1]) == bytes.fromhex("B004" "50FB" "0000" "0100")  # ±1200
    assert np.allclose(A.decode_positions(A.encode_pose(Q0[:4])), Q0[:4], atol=1 / A.COUNTS_PER_RAD)


def test_connect_read_track_stop_and_release(channel):
    hand = FakeAllegroHand(channel, Q0)
    try:
        with driver(channel) as d:
            assert d.info["hand"] == "right" and hand.period_ms == 3 and wait_until(lambda: hand.servo_on)
            boot = hand.commands()
            assert boot.index(0x41) < boot.index(0x80) < boot.index(0x81) < boot.index(0x40)  # off, info, period, on
            state = d.observe()
            assert np.allclose(state.q, Q0, atol=2e-3) and time.monotonic() - state.stamp < 0.05
            time.sleep(0.2)
            c0 = d.cycles
            time.sleep(0.2)
            assert (d.cycles - c0) / 0.2 > 100, d.cycles - c0  # ~333 Hz control cycles (fewer on a loaded CI machine)
            target = Q0.copy()
            target[[1, 5, 13]] += 0.2
            d.act(target)
            time.sleep(1.0)
            assert np.allclose(hand.q, target, atol=0.02), hand.q - target
            assert np.allclose(d.observe().q, target, atol=0.02)
            torque = [np.frombuffer(data, "<i2") for c, data, _ in hand.received if 0x60 <= c < 0x64]
            assert np.abs(torque).max() <= 675  # the per-joint PWM limits (largest: finger 'near' joints)
            d.stop()
            held = hand.q.copy()
            with pytest.raises(RobotStoppedError):
                d.act(Q0)
            time.sleep(0.2)
            assert np.allclose(hand.q, held, atol=0.01)  # stop holds, it does not drop the object
        wait_until(lambda: hand.period_ms == 0)
        tail = hand.commands()[-6:]
        assert tail == [0x60, 0x61, 0x62, 0x63, 0x41, 0x81]  # zero torque, servo off, stream off
        assert all(data == bytes(8) for c, data, _ in hand.received[-6:-2])
        assert hand.period_ms == 0 and not hand.servo_on
    finally:
        hand.close()


def test_position_mode_sends_pose_frames(channel):
    hand = FakeAllegroHand(channel, Q0)
    try:
        with driver(channel, mode="position") as d:
            target = Q0.copy()
            target[[0, 9]] += 0.15
            d.act(target)
            time.sleep(0.4)
            assert 0xE0 in hand.commands() and 0x60 not in hand.commands()
            assert np.allclose(hand.q, target, atol=0.01)
    finally:
        hand.close()


def test_read_only_never_switches_the_servos_on(channel):
    hand = FakeAllegroHand(channel, Q0)
    try:
        with driver(channel, read_only=True) as d:
            assert np.allclose(d.observe().q, Q0, atol=2e-3)
            with pytest.raises(RobotStoppedError):
                d.act(Q0)
            time.sleep(0.05)
        assert not {0x40, 0x41} & set(hand.commands()) and not any(0x60 <= c < 0x64 for c in hand.commands())
    finally:
        hand.close()


def test_refusals(channel):
    with pytest.raises(DriverError, match="no reply"):
        driver(channel).connect()  # nobody on the bus
    left = FakeAllegroHand(channel, Q0, left=True)
    try:
        d = driver(channel)
        with pytest.raises(DriverError, match="left hand"):
            d.connect()
        assert not d.connected and 0x40 not in left.commands()
    finally:
        left.close()


def test_a_silent_hand_goes_stale(channel):
    hand = FakeAllegroHand(channel, Q0)
    try:
        with driver(channel) as d:
            assert time.monotonic() - d.observe().stamp < 0.05
            hand.streaming = False
            time.sleep(0.15)
            assert time.monotonic() - d.observe().stamp > 0.1  # the loop counts this as a sensor miss
    finally:
        hand.close()
