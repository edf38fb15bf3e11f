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
    blank: tuple[int, int] | None = None,
) -> Clip:
    """A ``size`` window whose origin starts at ``start`` in the photo and moves
    by ``step_px`` per frame (sub-pixel steps by bilinear resampling). The hand
    therefore moves by -step_px per frame in the video. ``blank`` = (a, b):
    frames a..b-1 show a hand-less part of the photo instead (the hand gone)."""
    from PIL import Image

    img = Image.fromarray(_photo(photo))
    w, h = size
    frames_out, offsets = [], []
    for t in range(frames):
        x0, y0 = start[0] + step_px[0] * t, start[1] + step_px[1] * t
        if blank is not None and blank[0] <= t < blank[1]:
            x0, y0 = 0.0, -h / 2.0  # above the photo's top edge: shelves and wall, no hand
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


# ---------------------------------------------------------------- a hand carried out of sight (numpy only)
def right_hand(size: float = 0.09) -> np.ndarray:
    """(21, 3) a right hand in metres about its wrist, palm facing +z (away from
    a camera looking along +z), fingers along +x, slightly curled; wrist ->
    middle knuckle = ``size``."""
    base = np.zeros((21, 3))
    mcps = {5: (0.085, 0.024, -0.002), 9: (0.09, 0.0, 0.0), 13: (0.085, -0.02, -0.004), 17: (0.077, -0.039, -0.009)}
    for mcp, p in mcps.items():
        base[mcp] = p
        for k in range(1, 4):
            base[mcp + k] = np.array(p) + [0.03 * k, 0.0, -0.012 * k * k]
    base[1:5] = [(0.024, 0.022, -0.014), (0.045, 0.045, -0.03), (0.06, 0.06, -0.045), (0.075, 0.07, -0.055)]
    return base * (size / 0.09)


@dataclass
class CarryClip:
    """Frames of a textured object carried across a static textured scene; the
    hand holding it is detected (``detections``) until ``hidden_from``, then
    hidden. ``joints`` (T, 21, 3) is where the hand truly is (it moves rigidly
    with the object: translation, depth, turn about the viewing axis)."""

    frames: list[np.ndarray]
    detections: list[list]
    joints: np.ndarray
    fps: float
    intrinsics: tuple[float, float, float, float]
    hidden_from: int
    object_mask: np.ndarray  # (H, W) bool: the object in the first frame


def carry_clip(
    frames: int = 60,
    hidden_from: int = 20,
    fps: float = 30.0,
    size: tuple[int, int] = (640, 480),
    focal: float = 800.0,
    move: tuple[float, float, float] = (0.15, -0.06, -0.12),
    turn_rad: float = 0.35,
    seed: int = 0,
) -> CarryClip:
    """A constructed occlusion (see ``CarryClip``): an 8 cm fronto-parallel
    square of random texture (an object) at the hand's grip, 0.6 m away,
    moving by ``move`` (m) and turning by ``turn_rad`` about the viewing axis
    over the clip, in front of a static random-textured background. Its
    image motion is exactly a similarity (a plane parallel to the image)."""
    from .hands import HandObservation

    rng = np.random.default_rng(seed)
    w, h = size
    fx = fy = focal
    cx, cy = w / 2.0, h / 2.0
    # textures: background smooth noise, object 16 x 16 blocks of strong contrast
    bg = rng.uniform(60, 190, (h // 8 + 1, w // 8 + 1, 3))
    bg = np.kron(bg, np.ones((8, 8, 1)))[:h, :w]
    tex = rng.uniform(0, 255, (16, 16, 3))
    # the hand, palm towards the camera's view axis, turned in the image plane; its centre 0.6 m away
    hand = right_hand() @ np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).T  # fingers up the image
    hand = hand - hand.mean(axis=0) + [-0.05, 0.02, 0.6]
    grip = 0.5 * (hand[4] + 0.5 * (hand[8] + hand[12]))
    obj0 = np.array([grip[0], grip[1], hand.mean(axis=0)[2]])  # the object's centre: at the grip, at the hand's depth
    half = 0.04
    T = frames
    u = np.arange(T) / max(1, T - 1)
    joints = np.empty((T, 21, 3))
    out_frames, dets, mask0 = [], [], None
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    for t in range(T):
        obj = obj0 + np.asarray(move) * u[t]
        a = turn_rad * u[t]
        Rz = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
        joints[t] = obj + (hand - obj0) @ Rz.T
        # render: pixels -> the object plane (z = obj z) -> texture
        X = (xs - cx) * obj[2] / fx - obj[0]
        Y = (ys - cy) * obj[2] / fy - obj[1]
        qx = np.cos(a) * X + np.sin(a) * Y  # rotate back by -a
        qy = -np.sin(a) * X + np.cos(a) * Y
        inside = (np.abs(qx) < half) & (np.abs(qy) < half)
        ix = np.clip(((qx + half) / (2 * half) * 16).astype(int), 0, 15)
        iy = np.clip(((qy + half) / (2 * half) * 16).astype(int), 0, 15)
        img = bg.copy()
        img[inside] = tex[iy[inside], ix[inside]]
        if mask0 is None:
            mask0 = inside.copy()
        out_frames.append(img.astype(np.uint8))
        if t < hidden_from:
            J = joints[t]
            xy = np.stack([fx * J[:, 0] / J[:, 2] + cx, fy * J[:, 1] / J[:, 2] + cy], axis=-1)
            dets.append([HandObservation(xy, J - J.mean(axis=0), "right", 0.9)])
        else:
            dets.append([])
    return CarryClip(out_frames, dets, joints, fps, (fx, fy, cx, cy), hidden_from, mask0)
