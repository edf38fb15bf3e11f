"""A simulated Allegro Hand v4 on a python-can bus, written from the CAN protocol
(ids: command << 2 | device; little-endian int16 payloads; 333.3/65536 degree a
position count) independently of hop_robot.drivers.allegro's helpers."""

from __future__ import annotations

import math
import struct
import threading
import time

import can
import numpy as np

COUNT = 333.3 / 65536.0 * math.pi / 180.0  # rad per position count


class FakeAllegroHand:
    """Streams joint positions every ``period`` ms once told to, answers remote
    requests, and moves its 16 joints: in torque mode as a heavily damped motor
    (joint speed proportional to the PWM duty), in pose mode toward the pose."""

    def __init__(self, channel: str, q0: np.ndarray, *, left: bool = False, device: int = 0, speed_per_pwm: float = 0.01):
        self.bus = can.Bus(interface="virtual", channel=channel)
        self.q = np.array(q0, dtype=np.float64)
        self.left, self.device, self.k = left, device, speed_per_pwm
        self.period_ms = 0
        self.servo_on = False
        self.pwm = np.zeros(16)
        self.pose: np.ndarray | None = None
        self.received: list[tuple[int, bytes, bool]] = []  # (command, data, remote)
        self.streaming = True  # False: goes silent (unplugged)
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def close(self):
        self._quit.set()
        self._thread.join(1.0)
        self.bus.shutdown()

    def commands(self):
        return [c for c, _, _ in self.received]

    def _send(self, command: int, data: bytes):
        self.bus.send(can.Message(arbitration_id=(command << 2) | self.device, data=data, is_extended_id=False))

    def _positions(self):
        counts = np.clip(np.rint(self.q / COUNT), -32768, 32767).astype(int)
        for finger in range(4):
            self._send(0x20 + finger, struct.pack("<4h", *counts[4 * finger:4 * finger + 4].tolist()))

    def _run(self):
        last = time.monotonic()
        next_report = last
        while not self._quit.is_set():
            msg = self.bus.recv(timeout=0.001)
            now = time.monotonic()
            dt, last = now - last, now
            if self.servo_on:  # motion model
                if self.pose is not None:
                    self.q += (self.pose - self.q) * min(1.0, dt * 20.0)
                else:
                    self.q += dt * self.k * self.pwm
            if msg is not None and (msg.arbitration_id & 0x3) == self.device:
                command = msg.arbitration_id >> 2
                self.received.append((command, bytes(msg.data), msg.is_remote_frame))
                if msg.is_remote_frame and command == 0x80:
                    # hw 0x0402 (v4), fw 0x0406, hand type, 40 °C, status
                    self._send(0x80, struct.pack("<HHBBB", 0x0402, 0x0406, int(self.left), 40, int(self.servo_on)))
                elif msg.is_remote_frame and 0x20 <= command < 0x24:
                    self._positions()
                elif command == 0x40:
                    self.servo_on = True
                elif command == 0x41:
                    self.servo_on, self.pwm[:] = False, 0.0
                elif command == 0x81:
                    self.period_ms = struct.unpack("<3h", bytes(msg.data[:6]))[0]
                elif 0x60 <= command < 0x64:
                    f = command - 0x60
                    self.pwm[4 * f:4 * f + 4] = struct.unpack("<4h", bytes(msg.data))
                    self.pose = None
                elif 0xE0 <= command < 0xE4:
                    f = command - 0xE0
                    if self.pose is None:
                        self.pose = self.q.copy()
                    self.pose[4 * f:4 * f + 4] = np.array(struct.unpack("<4h", bytes(msg.data))) * COUNT
            if self.period_ms > 0 and self.streaming and now >= next_report:
                self._positions()
                next_report = now + self.period_ms / 1000.0
