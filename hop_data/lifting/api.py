"""Lifting a video of a hand handling an object to an HOI trajectory (format 1).

    from hop_data.lifting.api import lift_video
    path = lift_video("clip.mp4", "out/hoi", intrinsics="1100,1100,640,360")

Pipeline per video (docs/lifting.md has the reasoning and the figures):

1. Frames are decoded (OpenCV) and every hand is found in each (``hands``:
   MediaPipe by default, HaMeR where installed): 21 image landmarks plus 21
   metric, hand-centred landmarks.
2. One hand is followed: the annotated acting hand (100DOH annotations: its
   side, and its box in annotated frames), else the requested side (default
   ``auto``: the right hand, or the left one if the video shows no right
   hand). Between frames the detection nearest to the last one is kept, so a
   second hand of the same side or a flipped handedness label do not make
   the track jump.
3. Scale prior: every frame's metric hand is scaled to one size per video
   (the median of the backend's own sizes, or ``hand_size``), then placed in
   the camera frame by fitting it to the image landmarks with the intrinsics
   (given, or estimated from the image size) — ``camera.place_hand``.
4. Outliers are dropped, gaps of at most ``max_gap_s`` bridged and the joints
   smoothed in time (``smooth``). The camera is assumed static; gravity is
   the camera's down axis (0, 1, 0) (a level camera).
5. The object: an anchored proxy (``objects.anchored_object``) with contact
   from the annotations or from the grip.
6. The result is written as ``<out>/<stem>.hoi.npz`` (validated by
   ``hop_data.hoi.save``) with a ``<stem>.lift.json`` sidecar of diagnostics.

``lift_video`` runs in-process where MediaPipe is importable (the lifting
environment, e.g. a Ray task with the lifting runtime_env); elsewhere (the
main environment, numpy >= 2) it runs ``hop_data.lifting.worker`` in the
lifting environment's interpreter and exchanges only files.

Errors: ``UnreadableVideoError`` and ``NoHandError`` (both ``LiftError``, a
``ValueError``) for a video that cannot be decoded or shows no hand;
``HandBackendUnavailable`` when a backend is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from hop_data import hoi
from hop_data.inputs import VIDEO_SUFFIXES, expand_inputs
from hop_data.options import to_argv

from . import camera, objects, smooth
from .hands import HandBackendUnavailable, HandObservation
from .options import LiftOptions

LIFT_PYTHON_ENV = "HOP_LIFT_PYTHON"  # interpreter of the lifting environment
DEFAULT_LIFT_VENV = ".venv-lift"  # beside the source tree (make lift-env)
MIN_SEEN_FRAMES = 2


class LiftError(ValueError):
    """A video that cannot be lifted; ``video`` names it, ``reason`` says why."""

    kind = "error"

    def __init__(self, video: str, reason: str):
        self.video, self.reason = str(video), reason
        super().__init__(f"{video}: {reason}")


class UnreadableVideoError(LiftError):
    kind = "unreadable"


class NoHandError(LiftError):
    kind = "no_hand"


@dataclass
class LiftReport:
    """One video's outcome (the worker's JSON line, the sidecar's core)."""

    video: str
    status: str  # ok | unreadable | no_hand | error
    output: str | None = None
    source: str | None = None
    frames: int = 0
    detected_fraction: float = 0.0
    hand_side: str | None = None
    hand_size_m: float | None = None
    median_depth_m: float | None = None
    median_reprojection_px: float | None = None
    contact_frames: int = 0
    intrinsics: list[float] | None = None
    fps: float | None = None
    seconds: float = 0.0
    reason: str | None = None
    extra: dict = field(default_factory=dict)

    def line(self) -> str:
        """The one line printed per video at the end of a run."""
        if self.status == "ok":
            return (
                f"{self.video}: {self.frames} frames, hand in {self.detected_fraction:.0%}, "
                f"{self.hand_side} hand {100 * (self.hand_size_m or 0):.1f} cm -> {self.output}"
            )
        return f"{self.video}: skipped ({self.status}): {self.reason}"


# ================================================================ video input
def read_video(path: str | os.PathLike, max_frames: int | None = None) -> tuple[Iterator[np.ndarray], float, int, int, int]:
    """(RGB frame iterator, fps (0 if unknown), width, height, frame count
    (0 if unknown)). Raises UnreadableVideoError when the file cannot be opened
    or its first frame cannot be decoded."""
    import cv2  # lifting environment only

    path = str(path)
    if not os.path.isfile(path):
        raise UnreadableVideoError(path, "no such file")
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise UnreadableVideoError(path, "cannot be opened as a video (unknown container or codec)")
    ok, first = cap.read()
    if not ok or first is None:
        cap.release()
        raise UnreadableVideoError(path, "no frame could be decoded")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    height, width = first.shape[:2]

    def frames() -> Iterator[np.ndarray]:
        try:
            frame, n = first, 0
            while frame is not None:
                yield frame[:, :, ::-1]
                n += 1
                if max_frames is not None and n >= max_frames:
                    return
                ok, frame = cap.read()
                if not ok:
                    return
        finally:
            cap.release()

    if max_frames is not None and count:
        count = min(count, max_frames)
    return frames(), fps, width, height, count


# ================================================================ the hand to follow
def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def choose_side(detections: list[list[HandObservation]], requested: str) -> str:
    """``right`` / ``left`` as requested; ``auto``: right unless right hands
    appear in under 10 % of the frames that show a hand (then left)."""
    if requested in ("right", "left"):
        return requested
    with_hand = sum(1 for d in detections if d)
    right = sum(1 for d in detections if any(h.side == "right" for h in d))
    left = sum(1 for d in detections if any(h.side == "left" for h in d))
    if with_hand == 0 or right >= 0.1 * with_hand or left == 0:
        return "right"
    return "left"


def select_track(
    detections: list[list[HandObservation]],
    side: str,
    boxes: dict[int, np.ndarray] | None = None,
) -> list[HandObservation | None]:
    """Per frame the observation to follow (None where none fits).

    Annotated frames (``boxes``: frame -> the acting hand's box) take the
    detection overlapping that box most (IoU >= 0.1), whatever its label.
    Other frames take a detection labelled ``side``: the one nearest the last
    followed wrist when there is one within 1.5 hand lengths (pixels), else the
    most confident. A detection with the other label is accepted only when it
    sits where the followed hand just was (within half a hand length: a label
    flip of the same hand)."""
    track: list[HandObservation | None] = []
    last: HandObservation | None = None
    last_t = -(10**9)
    for t, dets in enumerate(detections):
        chosen = None
        if boxes is not None and t in boxes and dets:
            ious = [_iou(d.box(), boxes[t]) for d in dets]
            if max(ious) >= 0.1:
                chosen = dets[int(np.argmax(ious))]
        if chosen is None and dets:
            recent = last is not None and t - last_t <= 15
            span = float(np.linalg.norm(last.image_xy[9] - last.image_xy[0])) if recent else 0.0
            same = [d for d in dets if d.side == side]
            if same:
                if recent:
                    dist = [float(np.linalg.norm(d.image_xy[0] - last.image_xy[0])) for d in same]
                    near = int(np.argmin(dist))
                    chosen = same[near] if dist[near] <= 1.5 * span else max(same, key=lambda d: d.score)
                else:
                    chosen = max(same, key=lambda d: d.score)
            elif recent:
                dist = [float(np.linalg.norm(d.image_xy[0] - last.image_xy[0])) for d in dets]
                near = int(np.argmin(dist))
                if dist[near] <= 0.5 * span:
                    chosen = dets[near]
        track.append(chosen)
        if chosen is not None:
            last, last_t = chosen, t
    return track


# ================================================================ core
def _odd(n: int) -> int:
    return n if n % 2 == 1 else n + 1


def lift_observations(
    track: list[HandObservation | None],
    fps: float,
    intrinsics: camera.Intrinsics,
    side: str,
    source: str,
    options: LiftOptions,
    contact: np.ndarray | None = None,
    object_box_px: float | None = None,
) -> tuple[hoi.HOITrajectory, dict]:
    """Followed observations (one per frame, None where unseen) -> (trajectory
    in the camera frame, diagnostics). Steps 3-5 of the module doc; no I/O."""
    T = len(track)
    seen = np.array([o is not None for o in track])
    if seen.sum() < MIN_SEEN_FRAMES:
        raise NoHandError(source, f"a {side} hand is seen in {int(seen.sum())} of {T} frames")
    xy = np.full((T, 21, 2), np.nan)
    metric = np.full((T, 21, 3), np.nan)
    for t, o in enumerate(track):
        if o is not None:
            xy[t], metric[t] = o.image_xy, o.metric
    # scale prior: one hand size per video
    sizes = np.linalg.norm(metric[:, 9] - metric[:, 0], axis=-1)
    size = float(options.hand_size) if options.hand_size else float(np.nanmedian(sizes))
    metric = metric * (size / sizes)[:, None, None]
    t_cam, reproj = camera.place_hand(xy, metric, intrinsics)
    joints = metric + t_cam[:, None, :]
    valid = np.isfinite(joints).all(axis=(1, 2))
    # clean-up: outliers, short gaps, smoothing
    valid = smooth.reject_outliers(joints.mean(axis=1), valid, options.outlier_m)
    joints[~valid] = np.nan
    joints, valid = smooth.fill_gaps(joints, valid, max(0, int(math.floor(options.max_gap_s * fps + 1e-9))))
    window = _odd(max(3, int(round(options.smooth_window_s * fps))))
    joints = smooth.savgol(joints, valid, window, order=2)
    joints[~valid] = np.nan
    if valid.sum() < MIN_SEEN_FRAMES:
        raise NoHandError(source, f"only {int(valid.sum())} frames survive the outlier check")

    diameter = None
    if object_box_px is not None:
        depth = float(np.nanmedian(joints[valid][:, :, 2]))
        diameter = object_box_px * depth / intrinsics.fx
    proxy = objects.anchored_object(joints, fps, contact=contact, diameter=diameter, shape=options.object_shape)
    traj = hoi.HOITrajectory(
        hand_joints=joints.astype(np.float32),
        object_pose=proxy.pose,
        object_points=proxy.points,
        fps=float(fps),
        gravity=np.array(hoi.CAMERA_GRAVITY, dtype=np.float32),
        hand_side=side,
        source=source,
    )
    stats = {
        "detected_fraction": float(seen.mean()),
        "kept_fraction": float(valid.mean()),
        "hand_size_m": float(hoi.hand_size(joints[valid])),
        "median_depth_m": float(np.nanmedian(joints[valid][:, 0, 2])),
        "median_reprojection_px": float(np.nanmedian(reproj)) if np.isfinite(reproj).any() else None,
        "contact_frames": int(proxy.contact.sum()),
        "object_diameter_m": proxy.diameter,
        "object_height_m": proxy.height,
        "smoothing_window_frames": window,
    }
    return traj, stats


def lift_frames(
    frames: Iterable[np.ndarray],
    fps: float,
    width: int,
    height: int,
    source: str,
    options: LiftOptions | None = None,
    backend: Callable[[np.ndarray], list[HandObservation]] | None = None,
    annotations: object | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[hoi.HOITrajectory, dict]:
    """RGB frames (H, W, 3) -> (trajectory, diagnostics). ``backend`` defaults
    to the one ``options.hands`` names (created and closed here);
    ``annotations`` is a ``doh100.VideoAnnotations`` or None."""
    options = (options or LiftOptions()).validated()
    if options.objects != "anchored":
        objects.MccHoObjects()  # raises, naming what is missing
    intr = camera.Intrinsics.parse(options.intrinsics) if options.intrinsics else camera.estimate_intrinsics(width, height, options.fov_deg)
    own = backend is None
    if own:
        from .hands import make_hand_backend

        backend = make_hand_backend(options.hands)
    detections: list[list[HandObservation]] = []
    try:
        for frame in frames:
            detections.append(backend(frame))
            if progress is not None:
                progress(1)
    finally:
        if own:
            backend.close()  # type: ignore[union-attr]
    T = len(detections)
    if T < MIN_SEEN_FRAMES:
        raise UnreadableVideoError(source, f"only {T} frame(s) could be decoded")
    boxes = contact = None
    object_px = None
    side = options.side
    if annotations is not None:
        side = annotations.acting_side() or side  # type: ignore[attr-defined]
        if side == "auto":
            side = choose_side(detections, "auto")
        boxes = {}
        sizes = []
        for k in annotations.frames:  # type: ignore[attr-defined]
            hand = annotations.acting_hand(k, side)  # type: ignore[attr-defined]
            if hand is not None and 0 <= k < T:
                boxes[k] = np.asarray(hand.box, dtype=np.float64)
                obox = annotations.object_box(k, side)  # type: ignore[attr-defined]
                if obox is not None:
                    sizes.append(max(obox[2] - obox[0], obox[3] - obox[1]))
        contact = annotations.contact_mask(T, side)  # type: ignore[attr-defined]
        if contact is not None and not contact.any():
            contact = None  # never holding a portable object: fall back to the grip
        object_px = float(np.median(sizes)) if sizes else None
    else:
        side = choose_side(detections, side)
    track = select_track(detections, side, boxes)
    traj, stats = lift_observations(track, fps, intr, side, source, options, contact, object_px)
    stats.update(
        {
            "frames": T,
            "any_hand_fraction": float(np.mean([bool(d) for d in detections])),
            "intrinsics": intr.as_list(),
            "intrinsics_estimated": options.intrinsics is None,
            "annotated": annotations is not None,
            "hand_backend": options.hands,
            "object_backend": options.objects,
        }
    )
    return traj, stats


def _lift_here(video_path: str | os.PathLike, out_dir: str | os.PathLike, options: LiftOptions, progress: Callable[[int], None] | None = None, on_start: Callable[[int], None] | None = None) -> LiftReport:
    """Lift one video in this process (the lifting environment)."""
    t0 = time.perf_counter()
    video = str(video_path)
    stem = Path(video).name
    for suffix in VIDEO_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    else:
        stem = Path(video).stem
    frames, fps, width, height, count = read_video(video, options.max_frames)
    fps = options.fps or fps
    if not fps or not math.isfinite(fps) or fps <= 0:
        raise UnreadableVideoError(video, "the file gives no frame rate; pass --fps")
    if on_start is not None:
        on_start(count)
    annotations = None
    if options.annotations:
        from hop_data.sources.doh100 import find_annotations

        annotations = find_annotations(stem, options.annotations)
    source = f"{options.source_prefix}/{stem}"
    try:
        traj, stats = lift_frames(frames, fps, width, height, source, options, annotations=annotations, progress=progress)
    except LiftError as e:
        raise type(e)(video, e.reason) from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = hoi.save(out / f"{stem}.hoi.npz", traj)
    report = LiftReport(
        video=video, status="ok", output=str(path), source=source, frames=stats["frames"],
        detected_fraction=stats["detected_fraction"], hand_side=traj.hand_side, hand_size_m=stats["hand_size_m"],
        median_depth_m=stats["median_depth_m"], median_reprojection_px=stats["median_reprojection_px"],
        contact_frames=stats["contact_frames"], intrinsics=stats["intrinsics"], fps=float(fps),
        seconds=time.perf_counter() - t0, extra={k: v for k, v in stats.items() if k not in asdict(LiftReport("", "")).keys()},
    )  # fmt: skip
    sidecar = out / f"{stem}.lift.json"
    sidecar.write_text(json.dumps(asdict(report), indent=1))
    return report


# ================================================================ environment
def lifting_available() -> bool:
    """True when this interpreter can lift in-process (MediaPipe and OpenCV importable)."""
    return importlib.util.find_spec("mediapipe") is not None and importlib.util.find_spec("cv2") is not None


def lift_python() -> Path:
    """The lifting environment's interpreter: ``$HOP_LIFT_PYTHON``, else
    ``.venv-lift/bin/python`` beside the source tree. FileNotFoundError says
    how to create it."""
    env = os.environ.get(LIFT_PYTHON_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise FileNotFoundError(f"${LIFT_PYTHON_ENV} = {env} is not a file")
        return path
    path = Path(__file__).resolve().parents[2] / DEFAULT_LIFT_VENV / "bin" / "python"
    if not path.is_file():
        raise FileNotFoundError(
            f"the lifting environment is missing ({path}): run `make lift-env` in the source tree "
            f"or set ${LIFT_PYTHON_ENV} to a Python with mediapipe==0.10.21 and numpy<2"
        )
    return path


def worker_env() -> dict[str, str]:
    """Environment for the worker: this source tree (only hop_data and
    hop_robot) first on PYTHONPATH, nothing of the main environment's site-packages."""
    root = Path(__file__).resolve().parents[2]
    if root.name in ("site-packages", "dist-packages"):  # an installed copy: expose only our packages
        link_root = Path(tempfile.gettempdir()) / f"hop-lift-path-{os.getuid()}"
        link_root.mkdir(exist_ok=True)
        for pkg in ("hop_data", "hop_robot"):
            link = link_root / pkg
            if not link.exists():
                link.symlink_to(root / pkg)
        root = link_root
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def worker_command(videos: list[str], out_dir: str, options: LiftOptions, results: str | None = None, quiet: bool = False) -> list[str]:
    """The command line running ``hop_data.lifting.worker`` in the lifting environment."""
    cmd = [str(lift_python()), "-m", "hop_data.lifting.worker", "--out", str(out_dir), *to_argv(options)]
    if results:
        cmd += ["--results", results]
    if quiet:
        cmd.append("--quiet")
    return cmd + ["--", *videos]


_ERRORS = {"unreadable": UnreadableVideoError, "no_hand": NoHandError}


def lift_video(video_path: str | os.PathLike, out_dir: str | os.PathLike, **options: object) -> Path:
    """Lift one video to ``<out_dir>/<stem>.hoi.npz`` and return its path.

    ``options`` are ``LiftOptions`` fields (hands, objects, intrinsics,
    annotations, side, hand_size, fps, ...). Raises ``UnreadableVideoError``
    / ``NoHandError`` (``ValueError`` subclasses with the reason) for videos
    that cannot be decoded or show no hand, ``ValueError`` for bad options,
    ``HandBackendUnavailable`` for a backend that is not installed. Runs
    in-process in the lifting environment, else through the worker there."""
    opts = LiftOptions(**options).validated()  # type: ignore[arg-type]
    if lifting_available():
        return Path(_lift_here(video_path, out_dir, opts).output)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory(prefix="hop-lift-") as tmp:
        results = os.path.join(tmp, "results.jsonl")
        proc = subprocess.run(
            worker_command([str(video_path)], str(out_dir), opts, results=results, quiet=True),
            env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        reports = []
        if os.path.exists(results):
            reports = [json.loads(line) for line in Path(results).read_text().splitlines() if line.strip()]
    if not reports:
        raise RuntimeError(f"lifting worker failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    r = reports[0]
    if r["status"] == "ok":
        return Path(r["output"])
    if r["status"] == "backend_unavailable":
        raise HandBackendUnavailable(r["reason"])
    raise _ERRORS.get(r["status"], LiftError)(r["video"], r["reason"])


def expand_videos(items: list[str]) -> list[str]:
    """Files, directories (their video files, recursively) and glob patterns ->
    sorted unique paths; an item matching nothing is kept so it is reported."""
    return expand_inputs(items, VIDEO_SUFFIXES)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `hop-data lift` or `python -m hop_data.lifting.worker`")
