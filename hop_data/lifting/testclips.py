"""Videos with a known answer, made from real photographs (tests and bench).

A crop window sliding across a still photo is a video of the photo's real
hand moving across a static camera's image by a known number of pixels per
frame; with the crop's intrinsics given and the hand's depth fixed, the
hand's true metric motion is known: dx_metric = dx_pixels * Z / fx, no motion
in y or depth. A window that shrinks about the hand and is resized to a fixed
frame size is a zoom by a known factor s(t), equivalent (for a hand much
smaller than its depth) to the hand coming closer: Z(t) = Z(0) / s(t).

Needs numpy, Pillow and imageio with its ffmpeg plugin (the main
environment); the photos live in the project's shared data folder
(``../shared/data`` beside the repository).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
# The drink photo (1280 x 720): a bartender pours from a bottle in his right
# hand (wrist near (469, 458) px) with his left hand raised (near (857, 530)).
DRINK = "hoi_drink_v_1F96GArORtg_frame000084.jpg"
DRINK_RIGHT_WRIST = (469.0, 458.0)


@dataclass
class Clip:
    """A made video: path, frames, fps, crop size, intrinsics string, and the
    known answer: per-frame image offset of the photo (dx, dy px; the photo
    content moves by -offset) and zoom factor."""

    path: Path
    frames: int
    fps: float
    width: int
    height: int
    intrinsics: str
    offset_px: np.ndarray  # (T, 2) crop window origin change since frame 0
    zoom: np.ndarray  # (T,) apparent magnification relative to frame 0


def _photo(name: str) -> np.ndarray:
    from PIL import Image

    path = SHARED_DATA / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the shared test photos are not there")
    return np.asarray(Image.open(path).convert("RGB"))


def _write(path: Path, frames: list[np.ndarray], fps: float) -> None:
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    with imageio.get_writer(str(path), fps=fps, codec="libx264", quality=9, macro_block_size=16, ffmpeg_log_level="error") as w:
        for f in frames:
            w.append_data(f)


def sliding_clip(
    out: str | os.PathLike,
    photo: str = DRINK,
    frames: int = 30,
    fps: float = 30.0,
    size: tuple[int, int] = (640, 480),
    start: tuple[int, int] = (150, 200),
    step_px: tuple[float, float] = (4.0, 0.0),
    focal: float = 800.0,
) -> Clip:
    """A ``size`` window whose origin starts at ``start`` in the photo and moves
    by ``step_px`` per frame (sub-pixel steps by bilinear resampling). The hand
    therefore moves by -step_px per frame in the video."""
    from PIL import Image

    img = Image.fromarray(_photo(photo))
    w, h = size
    frames_out, offsets = [], []
    for t in range(frames):
        x0, y0 = start[0] + step_px[0] * t, start[1] + step_px[1] * t
        crop = img.transform((w, h), Image.Transform.AFFINE, (1, 0, x0, 0, 1, y0), resample=Image.Resampling.BILINEAR)
        frames_out.append(np.asarray(crop))
        offsets.append((step_px[0] * t, step_px[1] * t))
    path = Path(out)
    _write(path, frames_out, fps)
    return Clip(path, frames, fps, w, h, f"{focal},{focal},{w / 2},{h / 2}", np.array(offsets), np.ones(frames))


def zoom_clip(
    out: str | os.PathLike,
    photo: str = DRINK,
    centre: tuple[float, float] = (DRINK_RIGHT_WRIST[0] + 40, DRINK_RIGHT_WRIST[1] - 60),
    frames: int = 30,
    fps: float = 30.0,
    size: tuple[int, int] = (640, 480),
    zoom_end: float = 1.3,
    focal: float = 800.0,
) -> Clip:
    """A window centred on ``centre`` whose width shrinks so that the apparent
    magnification grows linearly from 1 to ``zoom_end``; output ``size``."""
    from PIL import Image

    img = Image.fromarray(_photo(photo))
    w, h = size
    zoom = np.linspace(1.0, zoom_end, frames)
    frames_out = []
    for s in zoom:
        # output pixel (u, v) samples photo (cx + (u - w/2) / s, cy + (v - h/2) / s)
        a = 1.0 / s
        coeffs = (a, 0, centre[0] - a * w / 2, 0, a, centre[1] - a * h / 2)
        frames_out.append(np.asarray(img.transform((w, h), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)))
    path = Path(out)
    _write(path, frames_out, fps)
    return Clip(path, frames, fps, w, h, f"{focal},{focal},{w / 2},{h / 2}", np.zeros((frames, 2)), zoom)


def still_clip(out: str | os.PathLike, rgb: np.ndarray, frames: int = 10, fps: float = 30.0) -> Path:
    """A video of one image held still (e.g. a photo with no hand)."""
    h, w = rgb.shape[:2]
    rgb = np.ascontiguousarray(rgb[: h - h % 16, : w - w % 16])
    path = Path(out)
    _write(path, [rgb] * frames, fps)
    return path
