"""The Allegro Hand v4 (right) over CAN, through ``python-can``.

The protocol is Wonik Robotics' CAN protocol v4 (the Allegro Hand v4 user
manual; the constants of ``candef.h`` in their ``allegro_hand_ros_v4``
driver), written here from those documents:

- Standard 11-bit frames at 1 Mbit/s; ``arbitration_id = command << 2 | device_id``.
- ``0x40`` system (servo) on, ``0x41`` off, no data.
- ``0x60 + f`` set torque of finger f (0 index, 1 middle, 2 ring, 3 thumb):
  four little-endian int16 PWM duties, joint 0..3 of the finger; ±1200 is
  full scale on the 12 V v4 hand.
- ``0xE0 + f`` set pose of finger f: four int16 joint positions (same units
  as the position report; the firmware's own position loop).
- ``0x81`` set period: three int16 periods in ms (joint positions, IMU,
  temperature); 0 stops that report. With a position period of 3 ms the hand
  streams ``0x20 + f`` frames at 333 Hz.
- Remote requests (RTR): ``0x20 + f`` joint positions of finger f (reply: four
  int16, 1 count = 333.3/65536 degree); ``0x80`` hand information (hardware
  version int16, firmware version int16, hand type (0 right, 1 left),
  temperature °C, status byte: 0x01 servo on, 0x02 over-temperature fault;
  the higher bits differ between sources (Wonik's ROS driver: 0x04
  communication fault; a later driver: 0x04 temperature throttling, 0x08
  communication fault, 0x10 palm over-temperature), so they are reported,
  not acted on); ``0x88`` serial (8 ASCII bytes); ``0x38 + s`` temperatures.

Joint order is the hand's own (index, middle, ring, thumb × joint 0..3),
which is ``spec.HAND_JOINT_NAMES``; per-joint ``offsets`` and ``directions``
allow a calibration if a hand's zero differs from the model's.

Control (``mode="torque"``, default, as the ROS driver): a thread reads the
streamed positions and, each time all four fingers have reported (every
3 ms), computes a PD torque toward the current target on the host,
``pwm = kp (target - q) - kd dq`` with the ROS driver's default gains and
per-joint PWM limits, and sends four torque frames. ``mode="position"``
sends the targets as pose frames instead (the firmware's position loop;
documented in ``candef.h`` but not verified here on hardware).

Stopping holds the hand at its current position (a grasped object is not
dropped); disconnecting sends zero torque, switches the servos off and
stops the position stream, then closes the bus.

Tested against a simulated hand on ``python-can``'s virtual bus
(``tests/test_robot_allegro.py``) and a recorded frame trace of a real v4
hand; not verified on hardware here.
"""

from __future__ import annotations

import logging
import math
import struct
import threading
from dataclasses import dataclass

import numpy as np

from hop_robot.embodiment import spec

from .base import Driver, DriverError, JointState, RobotFault, now

__all__ = [
    "AllegroConfig",
    "AllegroHand",
    "CMD_SET_PERIOD",
    "CMD_SET_POSE",
    "CMD_SET_TORQUE",
    "CMD_SYSTEM_OFF",
    "CMD_SYSTEM_ON",
    "COUNTS_PER_RAD",
    "RTR_FINGER_POSE",
    "RTR_HAND_INFO",
    "decode_info",
    "decode_positions",
    "encode_pose",
    "encode_torque",
    "frame_id",
    "split_id",
]

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ protocol v4
CMD_SYSTEM_ON = 0x40
CMD_SYSTEM_OFF = 0x41
CMD_SET_TORQUE = 0x60  # + finger
CMD_SET_POSE = 0xE0  # + finger
CMD_SET_PERIOD = 0x81
CMD_CONFIG = 0x68
RTR_FINGER_POSE = 0x20  # + finger
RTR_IMU = 0x30
RTR_TEMPERATURE = 0x38  # + sensor
RTR_HAND_INFO = 0x80
RTR_SERIAL = 0x88
NUM_FINGERS = 4
PWM_FULL_SCALE = 1200  # v4, 12 V supply
COUNTS_PER_RAD = 65536.0 / 333.3 * 180.0 / math.pi  # position report: 333.3/65536 degree a count
_INT16 = struct.Struct("<4h")

# The ROS driver's defaults (allegro_node_pd.cpp, AllegroHandDrv.cpp), joint order
# index 0-3, middle 0-3, ring 0-3, thumb 0-3. Gains are PWM counts per rad (per rad/s).
ROS_KP = (600.0, 600.0, 600.0, 1000.0) * 3 + (1000.0, 1000.0, 1000.0, 600.0)
ROS_KD = (15.0, 20.0, 15.0, 15.0) * 3 + (30.0, 20.0, 20.0, 15.0)
# PWM limits per joint on the 12 V v4 hand: roll 250, near 450, middle 300, far 190 (×1.5);
# thumb roll 350, near 270, middle 180, far 180 (×1.5); all under the 1200 full scale.
PWM_LIMIT = (375.0, 675.0, 450.0, 285.0) * 3 + (525.0, 405.0, 270.0, 270.0)


def frame_id(command: int, device_id: int = 0) -> int:
    """11-bit arbitration id of ``command`` for hand ``device_id`` (0-3)."""
    return ((command & 0x1FF) << 2) | (device_id & 0x3)


def split_id(arbitration_id: int) -> tuple[int, int]:
    """(command, device_id) of a received frame."""
    return arbitration_id >> 2, arbitration_id & 0x3


def encode_torque(pwm: np.ndarray) -> bytes:
    """Four PWM duties (int16, clipped to ±full scale) of one finger -> 8 data bytes."""
    values = np.clip(np.rint(np.asarray(pwm, dtype=np.float64)), -PWM_FULL_SCALE, PWM_FULL_SCALE).astype(int)
    return _INT16.pack(*values.tolist())


def encode_pose(q: np.ndarray) -> bytes:
    """Four joint positions (rad) of one finger -> 8 data bytes of position counts."""
    counts = np.clip(np.rint(np.asarray(q, dtype=np.float64) * COUNTS_PER_RAD), -32768, 32767).astype(int)
    return _INT16.pack(*counts.tolist())


def decode_positions(data: bytes) -> np.ndarray:
    """8 data bytes of a position report -> four joint angles (rad)."""
    if len(data) != 8:
        raise ValueError(f"a position frame has 8 data bytes, got {len(data)}")
    return np.array(_INT16.unpack(bytes(data)), dtype=np.float64) / COUNTS_PER_RAD


def decode_info(data: bytes) -> dict:
    """Hand information reply (``RTR_HAND_INFO``) -> dict."""
    if len(data) < 7:
        raise ValueError(f"a hand-information frame has >= 7 data bytes, got {len(data)}")
    hw, fw = struct.unpack("<HH", bytes(data[:4]))
    status = data[6]
    return {
        "hardware_version": hw,
        "major_version": hw >> 8,
        "firmware_version": fw,
        "hand": "left" if data[4] else "right",
        "temperature_c": int(data[5]),
        "status": int(status),
        "servo_on": bool(status & 0x01),
        "over_temperature": bool(status & 0x02),
    }


def encode_period(positions_ms: int, imu_ms: int = 0, temperature_ms: int = 0) -> bytes:
    return struct.pack("<3h", positions_ms, imu_ms, temperature_ms)


# ------------------------------------------------------------------ driver
@dataclass(frozen=True)
class AllegroConfig:
    """CAN connection and control settings of the hand."""

    channel: str = "can0"
    interface: str = "socketcan"  # python-can interface ("pcan", "virtual", ...)
    bitrate: int = 1_000_000
    device_id: int = 0  # the hand's CAN device id (0-3)
    mode: str = "torque"  # "torque": host PD at the report rate; "position": firmware pose frames
    period_ms: int = round(1000 / spec.HAND_SERVO_HZ)  # 3 ms: positions at 333 Hz
    kp: tuple[float, ...] = ROS_KP
    kd: tuple[float, ...] = ROS_KD
    pwm_limit: tuple[float, ...] = PWM_LIMIT
    offsets: tuple[float, ...] = (0.0,) * spec.NUM_HAND_JOINTS  # rad, model = direction * (reported - offset)
    directions: tuple[float, ...] = (1.0,) * spec.NUM_HAND_JOINTS
    connect_timeout: float = 0.5  # s to wait for the hand's information and first positions
    max_state_age: float = 0.05  # s; older positions count as a sensor miss in the loop


class AllegroHand(Driver):
    """``Driver`` for the 16 hand joints (``spec.HAND``) over CAN (module doc).

    Args:
        config: CAN and control settings.
        read_only: read joint positions only; servos are never switched on.
        bus: an open ``can.BusABC`` to use instead of opening ``config``'s
            (the caller keeps ownership: it is not shut down on disconnect).
    """

    name = "allegro"

    def __init__(self, config: AllegroConfig = AllegroConfig(), *, read_only: bool = False, bus=None) -> None:
        super().__init__(spec.JOINT_LOWER[spec.HAND], spec.JOINT_UPPER[spec.HAND], read_only=read_only)
        if config.mode not in ("torque", "position"):
            raise ValueError(f"mode must be 'torque' or 'position', got {config.mode!r}")
        for name in ("kp", "kd", "pwm_limit", "offsets", "directions"):
            if len(getattr(config, name)) != spec.NUM_HAND_JOINTS:
                raise ValueError(f"AllegroConfig.{name} must have {spec.NUM_HAND_JOINTS} values")
        self.config = config
        self._external_bus = bus
        self.bus = None
        self.info: dict | None = None
        self._kp = np.array(config.kp)
        self._kd = np.array(config.kd)
        self._pwm_limit = np.array(config.pwm_limit)
        self._offsets = np.array(config.offsets)
        self._directions = np.array(config.directions)
        self._lock = threading.Lock()
        self._quit = threading.Event()
        self._thread: threading.Thread | None = None
        self._raw = np.zeros(spec.NUM_HAND_JOINTS)  # latest reported positions, model convention
        self._q = np.zeros(spec.NUM_HAND_JOINTS)  # filtered
        self._dq = np.zeros(spec.NUM_HAND_JOINTS)  # filtered velocity
        self._stamp = 0.0
        self._have_state = threading.Event()
        self._goal = np.zeros(spec.NUM_HAND_JOINTS)
        self._motors_on = False
        self._fault: str | None = None
        self.cycles = 0  # complete position sets handled
        self.frames_sent = 0

    # ------------------------------------------------------------ CAN helpers
    def _message(self, command: int, data: bytes = b"", remote: bool = False):
        import can

        return can.Message(
            arbitration_id=frame_id(command, self.config.device_id), data=data, is_extended_id=False,
            is_remote_frame=remote, dlc=0 if remote else len(data),
        )  # fmt: skip

    def _send(self, command: int, data: bytes = b"", remote: bool = False) -> None:
        self.bus.send(self._message(command, data, remote), timeout=0.01)
        self.frames_sent += 1

    def _open_bus(self):
        if self._external_bus is not None:
            return self._external_bus
        try:
            import can
        except ImportError as exc:
            raise DriverError("the Allegro driver needs python-can: pip install 'hop[allegro]'") from exc
        cfg = self.config
        try:
            return can.Bus(interface=cfg.interface, channel=cfg.channel, bitrate=cfg.bitrate)
        except Exception as exc:  # noqa: BLE001 - python-can raises per-interface errors
            raise DriverError(f"cannot open CAN {cfg.interface}:{cfg.channel} for the Allegro hand: {exc}") from exc

    # ------------------------------------------------------------ driver API
    def _connect(self) -> None:
        cfg = self.config
        self.bus = self._open_bus()
        while self.bus.recv(timeout=0.0) is not None:  # drain stale frames
            pass
        if not self.read_only:
            self._send(CMD_SYSTEM_OFF)
        self._send(RTR_HAND_INFO, remote=True)
        deadline = now() + cfg.connect_timeout
        while self.info is None and now() < deadline:
            msg = self.bus.recv(timeout=max(0.0, deadline - now()))
            if msg is not None and not msg.is_remote_frame and split_id(msg.arbitration_id) == (RTR_HAND_INFO, cfg.device_id):
                self.info = decode_info(msg.data)
        if self.info is None:
            raise DriverError(f"no reply from an Allegro hand (device {cfg.device_id}) on {cfg.interface}:{cfg.channel}: "
                              "is it powered and is this the right channel?")  # fmt: skip
        if self.info["hand"] != "right":
            raise DriverError(f"the embodiment {spec.EMBODIMENT_NAME} has a right hand; this Allegro is a {self.info['hand']} hand")
        if self.info["over_temperature"]:
            raise RobotFault(f"Allegro hand reports over-temperature: {self.info}")
        self._send(CMD_SET_PERIOD, encode_period(cfg.period_ms))
        self._quit.clear()
        self._thread = threading.Thread(target=self._run, name="hop-allegro", daemon=True)
        self._thread.start()
        if not self._have_state.wait(cfg.connect_timeout):
            raise DriverError(f"the Allegro hand sends no joint positions on {cfg.channel}")
        if self.read_only:
            return
        with self._lock:
            self._goal = self._q.copy()  # hold where it is: nothing moves at switch-on
            self._motors_on = True
        self._send(CMD_SYSTEM_ON)

    def _observe(self) -> JointState:
        with self._lock:
            if self._fault is not None:
                raise RobotFault(self._fault)
            return JointState(self._q.copy(), self._stamp)

    def _act(self, targets: np.ndarray) -> None:
        if self._fault is not None:
            raise RobotFault(self._fault)
        with self._lock:
            self._goal = targets.copy()

    def _stop(self) -> None:
        with self._lock:  # hold the current position
            self._goal = self._q.copy()

    def _disconnect(self) -> None:
        self._quit.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        if self.bus is None:
            return
        try:
            if self._motors_on:
                for finger in range(NUM_FINGERS):
                    self._send(CMD_SET_TORQUE + finger, encode_torque(np.zeros(4)))
                self._send(CMD_SYSTEM_OFF)
                self._motors_on = False
            self._send(CMD_SET_PERIOD, encode_period(0))
        finally:
            if self._external_bus is None:
                self.bus.shutdown()
            self.bus = None

    # ------------------------------------------------------------ thread
    def _run(self) -> None:
        cfg = self.config
        got = 0
        fresh = np.zeros(spec.NUM_HAND_JOINTS)
        last_cycle = None
        while not self._quit.is_set():
            try:
                msg = self.bus.recv(timeout=0.01)
            except Exception as exc:  # noqa: BLE001 - a dead bus is a fault
                self._set_fault(f"Allegro CAN receive failed: {exc}")
                return
            if msg is None:
                continue
            if msg.is_error_frame:
                self._set_fault("Allegro CAN error frame received")
                continue
            command, device = split_id(msg.arbitration_id)
            if device != cfg.device_id or msg.is_remote_frame:
                continue
            finger = command - RTR_FINGER_POSE
            if 0 <= finger < NUM_FINGERS and len(msg.data) == 8:
                sl = slice(4 * finger, 4 * finger + 4)
                fresh[sl] = self._directions[sl] * (decode_positions(msg.data) - self._offsets[sl])
                got |= 1 << finger
            elif command == RTR_HAND_INFO:
                self.info = decode_info(msg.data)
                if self.info["over_temperature"]:
                    self._set_fault(f"Allegro hand reports over-temperature: {self.info}")
            if got != (1 << NUM_FINGERS) - 1:
                continue
            got = 0
            t = now()
            dt = (t - last_cycle) if last_cycle is not None else cfg.period_ms / 1000.0
            last_cycle = t
            self._cycle(fresh.copy(), max(dt, 1e-4), t)

    def _cycle(self, q_raw: np.ndarray, dt: float, t: float) -> None:
        """One control cycle on a complete set of positions."""
        with self._lock:
            if not self._have_state.is_set():
                self._q[:] = q_raw
                self._raw[:] = q_raw
            # low-pass filters on position and velocity as the ROS driver's (its
            # 0.6/0.198/0.198 weights, rounded to sum to 1 so that a still hand reads true)
            q_prev = self._q.copy()
            self._q = 0.6 * self._q + 0.2 * (self._raw + q_raw)
            self._raw = q_raw
            self._dq = 0.6 * self._dq + 0.4 * (self._q - q_prev) / dt
            self._stamp = t
            goal, q, dq = self._goal.copy(), self._q.copy(), self._dq.copy()
            motors_on = self._motors_on and self._fault is None
        self._have_state.set()
        self.cycles += 1
        if not motors_on:
            return
        try:
            if self.config.mode == "torque":
                pwm = np.clip(self._kp * (goal - q) - self._kd * dq, -self._pwm_limit, self._pwm_limit)
                for finger in range(NUM_FINGERS):
                    self._send(CMD_SET_TORQUE + finger, encode_torque(pwm[4 * finger:4 * finger + 4]))
            else:
                raw_goal = goal / self._directions + self._offsets
                for finger in range(NUM_FINGERS):
                    self._send(CMD_SET_POSE + finger, encode_pose(raw_goal[4 * finger:4 * finger + 4]))
        except Exception as exc:  # noqa: BLE001 - a send failure is a fault
            self._set_fault(f"Allegro CAN send failed: {exc}")

    def _set_fault(self, reason: str) -> None:
        with self._lock:
            if self._fault is None:
                self._fault = reason
                log.error("%s", reason)

    @property
    def fault(self) -> str | None:
        return self._fault
