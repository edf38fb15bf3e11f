"""The camera protocol: something that yields the object's point cloud.

A camera is a context manager (``start`` / ``stop``). ``read(q)`` returns
the newest ``CloudFrame`` (``points (P, 3)`` float32 in the robot base frame,
``stamp`` = monotonic time of capture), or ``None`` when no usable frame is
available (the loop counts that as a sensor miss and holds). ``q`` (23,) is
the measured joint state, used by depth cameras to filter the robot's own
points. ``read`` never blocks for long: live cameras keep a background
thread and hand out the latest frame.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Camera", "CameraEnded", "CameraError", "CloudFrame"]


class CameraError(RuntimeError):
    """The camera cannot be opened or has failed."""


class CameraEnded(Exception):
    """A recorded stream has no more frames (the loop ends normally)."""


@dataclass
class CloudFrame:
    points: np.ndarray  # (P, 3) float32, robot base frame, metres
    stamp: float  # time.monotonic() of capture
    info: dict = field(default_factory=dict)


class Camera(ABC):
    name: str = "camera"

    def start(self) -> "Camera":
        return self

    def stop(self) -> None:
        pass

    @abstractmethod
    def read(self, q: np.ndarray | None = None) -> CloudFrame | None: ...

    def __enter__(self) -> "Camera":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
