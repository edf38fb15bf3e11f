"""Hand backends of the lifting stage: per frame, every visible hand's 21
joints in the image (pixels) and in metres about the hand's centre.

- ``MediaPipeHands`` (default): MediaPipe Hands from the ``mediapipe==0.10.21``
  wheel, whose palm-detection and landmark models ship inside the wheel (CPU,
  no download). It needs numpy < 2, so it runs in the lifting environment
  (``.venv-lift``; see docs/lifting.md).
- ``HamerHands``: HaMeR (a ViT hand-mesh regressor with MANO) where its
  package, checkpoint and the MANO model files are installed. Absent any of
  them, constructing it fails at once with a message naming what to install;
  nothing is ever downloaded at run time.

Joint order is MANO / MediaPipe (``hop_data.hoi.HUMAN_JOINT_NAMES``): MediaPipe
and OpenPose-order HaMeR keypoints need no reordering.

Handedness. MediaPipe labels hands as if the image were mirrored (a selfie
camera): on an ordinary video its "Left" is the person's right hand. The
backend swaps the label (``mirrored=False``, the default), so ``side`` is
always the person's own hand.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NUM_JOINTS = 21
MEDIAPIPE_REQUIREMENT = 'mediapipe==0.10.21 "numpy<2" opencv-python-headless'


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence file descriptor 2 for a moment: MediaPipe's C++ side prints
    start-up warnings there (before its logging is configurable). Set
    HOP_LIFT_VERBOSE=1 to see them."""
    if os.environ.get("HOP_LIFT_VERBOSE"):
        yield
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (captured)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, fd)
        os.close(saved)


class HandBackendUnavailable(RuntimeError):
    """A hand (or object) backend whose software, weights or model files are not installed."""


@dataclass
class HandObservation:
    """One hand seen in one frame.

    image_xy (21, 2) pixels; metric (21, 3) metres about the hand's centre in
    camera-aligned axes (x right, y down, z away from the camera); side is the
    person's own hand ("right" / "left"); score in [0, 1]."""

    image_xy: np.ndarray
    metric: np.ndarray
    side: str
    score: float

    def box(self) -> np.ndarray:
        """(4,) x1, y1, x2, y2 pixel box around the image landmarks."""
        return np.concatenate([self.image_xy.min(axis=0), self.image_xy.max(axis=0)])


class MediaPipeHands:
    """MediaPipe Hands on RGB frames (H, W, 3) uint8.

    ``video=True`` uses MediaPipe's tracking mode (landmarks of the previous
    frame seed the next; the palm detector runs only when tracking is lost),
    which is faster and steadier on videos; ``video=False`` treats each frame
    as a separate photo."""

    name = "mediapipe"

    def __init__(
        self,
        max_hands: int = 2,
        model_complexity: int = 1,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        video: bool = True,
        mirrored: bool = False,
    ):
        try:
            with _quiet_native_stderr():
                import mediapipe as mp  # noqa: F401  (heavy; only here)
        except ImportError as e:
            raise HandBackendUnavailable(
                f"the MediaPipe hand backend needs {MEDIAPIPE_REQUIREMENT} (the lifting environment: "
                f"`make lift-env` creates .venv-lift); import failed: {e}"
            ) from e
        from mediapipe.python.solutions import hands as mp_hands

        with _quiet_native_stderr():
            self._hands = mp_hands.Hands(
                static_image_mode=not video,
                max_num_hands=max_hands,
                model_complexity=model_complexity,
                min_detection_confidence=min_detection_confidence,
                min_tracking_confidence=min_tracking_confidence,
            )
        self._mirrored = mirrored
        self._calls = 0

    def __call__(self, rgb: np.ndarray) -> list[HandObservation]:
        """Hands in one RGB frame (H, W, 3) uint8."""
        h, w = rgb.shape[:2]
        self._calls += 1
        if self._calls <= 2:  # the graph's first runs print start-up warnings
            with _quiet_native_stderr():
                result = self._hands.process(np.ascontiguousarray(rgb))
        else:
            result = self._hands.process(np.ascontiguousarray(rgb))
        if not result.multi_hand_landmarks:
            return []
        out = []
        for lm, world, handed in zip(
            result.multi_hand_landmarks, result.multi_hand_world_landmarks, result.multi_handedness
        ):
            xy = np.array([[p.x * w, p.y * h] for p in lm.landmark], dtype=np.float64)
            metric = np.array([[p.x, p.y, p.z] for p in world.landmark], dtype=np.float64)
            label = handed.classification[0].label.lower()  # as if mirrored
            if not self._mirrored:
                label = "right" if label == "left" else "left"
            out.append(HandObservation(xy, metric, label, float(handed.classification[0].score)))
        return out

    def close(self) -> None:
        self._hands.close()

    def __enter__(self) -> MediaPipeHands:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- recovery in a crop
class CropRedetector:
    """Find a hand again in a crop around where it is predicted.

    The whole-frame palm detector sees the frame shrunk to 192 px: a small,
    far, blurred or half-hidden hand falls under its threshold. Here the
    square around the predicted hand box (``scales`` times its size, in
    turn, at least ``min_crop_px``) is cut out, upscaled to ``crop_px`` and
    given to MediaPipe in photo mode with a lower detection threshold
    (``min_detection_confidence``: a crop holds at most the hand and what it
    touches, so a weaker detection there is far less likely a false one than
    over the whole frame). ``recover(rgb, box)`` tries the scales in turn
    until one finds a hand; ``recover(rgb, box, attempt)`` (what
    ``tracking.HandTracker`` calls, once per frame while a hand is lost)
    tries only scale ``attempt`` modulo their number, so successive frames
    try successive scales at the cost of one. Found landmarks are mapped back
    to frame pixels. ``calls`` counts the MediaPipe runs."""

    def __init__(
        self,
        scales: tuple[float, ...] = (3.5, 2.5),
        crop_px: int = 256,
        min_crop_px: int = 96,
        min_detection_confidence: float = 0.3,
        model_complexity: int = 1,
    ):
        self.scales, self.crop_px, self.min_crop_px = tuple(scales), int(crop_px), int(min_crop_px)
        self._hands = MediaPipeHands(
            max_hands=2, model_complexity=model_complexity, min_detection_confidence=min_detection_confidence, video=False
        )
        self.calls = 0

    def __call__(self, rgb: np.ndarray, box: np.ndarray, attempt: int | None = None) -> list[HandObservation]:
        import cv2

        cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
        size = max(box[2] - box[0], box[3] - box[1], 1.0)
        scales = self.scales if attempt is None else (self.scales[attempt % len(self.scales)],)
        for k in scales:
            side = max(self.min_crop_px, k * size)
            x0, y0 = cx - side / 2.0, cy - side / 2.0
            # affine crop with zero padding outside the image (sub-pixel exact mapping back)
            a = self.crop_px / side
            M = np.array([[a, 0.0, -a * x0], [0.0, a, -a * y0]])
            crop = cv2.warpAffine(rgb, M, (self.crop_px, self.crop_px), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            self.calls += 1
            found = self._hands(crop)
            if found:
                return [
                    HandObservation(o.image_xy / a + np.array([x0, y0]), o.metric, o.side, o.score) for o in found
                ]
        return []

    def close(self) -> None:
        self._hands.close()


# ---------------------------------------------------------------- HaMeR
HAMER_CHECKPOINT_ENV = "HOP_HAMER_CHECKPOINT"  # path to hamer.ckpt
MANO_DIR_ENV = "HOP_MANO_DIR"  # folder holding MANO_RIGHT.pkl


def hamer_missing() -> list[str]:
    """What HaMeR still needs here (empty when everything is installed)."""
    missing = []
    for package, what in (("torch", "PyTorch (pip install torch)"), ("hamer", "the HaMeR package (pip install -e <hamer checkout>)")):
        if importlib.util.find_spec(package) is None:
            missing.append(what)
    ckpt = os.environ.get(HAMER_CHECKPOINT_ENV)
    if not ckpt or not Path(ckpt).is_file():
        missing.append(
            f"the HaMeR checkpoint (hamer.ckpt from the HaMeR release; set ${HAMER_CHECKPOINT_ENV} to its path"
            + (f", now {ckpt!r} which is not a file" if ckpt else "")
            + ")"
        )
    mano = os.environ.get(MANO_DIR_ENV)
    if not mano or not (Path(mano) / "MANO_RIGHT.pkl").is_file():
        missing.append(
            f"the MANO model files (MANO_RIGHT.pkl from mano.is.tue.mpg.de, licence required; set ${MANO_DIR_ENV} to their folder)"
        )
    return missing


class HamerHands:
    """HaMeR on RGB frames, with MediaPipe's detections as the hand boxes (so
    no ViTDet / detectron2 is needed). Requires torch, the ``hamer`` package,
    its checkpoint (``$HOP_HAMER_CHECKPOINT``) and MANO (``$HOP_MANO_DIR``).

    Untested here (none of these can be installed on the project's machines);
    the output contract is the same as ``MediaPipeHands``."""

    name = "hamer"

    def __init__(self, device: str | None = None, **mediapipe_options: object):
        missing = hamer_missing()
        if missing:
            raise HandBackendUnavailable("--hands hamer needs " + "; ".join(missing) + ". Nothing is downloaded at run time.")
        import torch
        from hamer.models import load_hamer  # type: ignore[import-not-found]

        self._torch = torch
        self._device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        os.environ.setdefault("MANO_DIR", os.environ[MANO_DIR_ENV])
        self._model, self._cfg = load_hamer(os.environ[HAMER_CHECKPOINT_ENV])
        self._model = self._model.to(self._device).eval()
        self._boxes = MediaPipeHands(**mediapipe_options)  # type: ignore[arg-type]

    def __call__(self, rgb: np.ndarray) -> list[HandObservation]:
        torch = self._torch
        detections = self._boxes(rgb)
        out = []
        size = int(self._cfg.MODEL.IMAGE_SIZE)
        mean = np.asarray(self._cfg.MODEL.IMAGE_MEAN, dtype=np.float32) * 255.0
        std = np.asarray(self._cfg.MODEL.IMAGE_STD, dtype=np.float32) * 255.0
        for det in detections:
            x1, y1, x2, y2 = det.box()
            c = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
            half = 1.25 * max(x2 - x1, y2 - y1) / 2  # square crop with margin
            right = det.side == "right"
            crop = _square_crop(rgb, c, half, size)
            if not right:  # HaMeR regresses right hands; left hands are flipped in and out
                crop = crop[:, ::-1]
            img = torch.from_numpy(((crop - mean) / std).transpose(2, 0, 1).copy()).float()[None].to(self._device)
            with torch.no_grad():
                pred = self._model({"img": img})
            kp3 = pred["pred_keypoints_3d"][0].cpu().numpy().astype(np.float64)  # (21, 3) metres
            kp2 = pred["pred_keypoints_2d"][0].cpu().numpy().astype(np.float64)  # (21, 2) in [-0.5, 0.5] of the crop
            if not right:
                kp3[:, 0] *= -1
                kp2[:, 0] *= -1
            xy = c + kp2 * (2 * half)
            out.append(HandObservation(xy, kp3 - kp3.mean(axis=0), det.side, det.score))
        return out

    def close(self) -> None:
        self._boxes.close()

    def __enter__(self) -> HamerHands:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _square_crop(rgb: np.ndarray, centre: np.ndarray, half: float, size: int) -> np.ndarray:
    """(size, size, 3) float32 crop of a square of half-width ``half`` about
    ``centre``, nearest-pixel sampling, zeros outside the image."""
    h, w = rgb.shape[:2]
    grid = (np.arange(size) + 0.5) / size * 2 * half - half
    xs = np.floor(centre[0] + grid).astype(int)
    ys = np.floor(centre[1] + grid).astype(int)
    out = np.zeros((size, size, 3), dtype=np.float32)
    vx, vy = (xs >= 0) & (xs < w), (ys >= 0) & (ys < h)
    out[np.ix_(vy, vx)] = rgb[np.ix_(ys[vy], xs[vx])]
    return out


BACKENDS = ("mediapipe", "hamer")


def make_hand_backend(name: str, **options: object) -> MediaPipeHands | HamerHands:
    """The hand backend called ``name`` (``mediapipe`` or ``hamer``)."""
    if name == "mediapipe":
        return MediaPipeHands(**options)  # type: ignore[arg-type]
    if name == "hamer":
        return HamerHands(**options)  # type: ignore[arg-type]
    raise ValueError(f"unknown hand backend {name!r}; choose one of {list(BACKENDS)}")
