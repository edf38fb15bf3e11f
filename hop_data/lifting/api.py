"""Lifting a video of a hand handling an object to an HOI trajectory (format 1).

    from hop_data.lifting.api import lift_video
    path = lift_video("clip.mp4", "out/hoi", intrinsics="1100,1100,640,360")

Pipeline per video (docs/lifting.md has the reasoning and the figures):

1. Frames are decoded (OpenCV) and every hand is found in each (``hands``:
   MediaPipe by default, HaMeR where installed): 21 image landmarks plus 21
   metric, hand-centred landmarks.
2. One hand is followed (``hand_choice``): the annotated acting hand (100DOH
   annotations: its side, and its box in annotated frames), else the
   requested side (default ``auto``: the right hand, or the left one if the
   video shows no right hand). Between frames the detection nearest to the
   last one is kept, so a second hand of the same side or a flipped
   handedness label do not make the track jump.
3. One geometry per hand (``hand_shape``): each frame's metric hand as given
   or reflected in depth, chosen for the whole video (no flip between
   frames; frames still of the other hand dropped), one palm fitted rigidly.
   Scale prior: every frame's metric hand is scaled to one size per video
   (the median of the backend's own sizes, or ``hand_size``), then placed in
   the camera frame by fitting it to the image landmarks with the intrinsics
   (given, or estimated from the image size) — ``camera.place_hand``.
4. Outliers are dropped, gaps of at most ``max_gap_s`` bridged and the joints
   smoothed in time (``smooth``). The camera is assumed static; gravity is
   the camera's down axis (0, 1, 0) (a level camera).
5. The object: an anchored proxy (``objects.anchored_object``) with contact
   from the annotations or from the grip.
6. The video is cut into interaction segments (``segments``). The result is
   written as ``<out>/<stem>.hoi.npz`` (validated by ``hop_data.hoi.save``;
   one file per segment when it is not the whole video) with a
   ``<stem>.lift.json`` sidecar of diagnostics.

``lift_video`` runs in-process where MediaPipe is importable (the lifting
environment, e.g. a Ray task with the lifting runtime_env); elsewhere (the
main environment, numpy >= 2) it runs ``hop_data.lifting.worker`` in the
lifting environment's interpreter and exchanges only files.

Errors: ``UnreadableVideoError`` and ``NoHandError`` (both ``LiftError``, a
``ValueError``) for a video that cannot be decoded or shows no hand;
``HandBackendUnavailable`` when a backend is not installed.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from hop_data import hoi
from hop_data.inputs import VIDEO_SUFFIXES

from . import camera, hand_shape, objects, smooth, tracking
from . import contact as scene_contact
from .hand_choice import annotated_side_and_boxes, follow_hand
from .hands import HandBackendUnavailable, HandObservation
from .options import LiftOptions
from .segments import LiftedSegment, cut_segments

# The lifting environment (its interpreter, the worker's command line, the
# video inputs) lives in runtime.py; its names are this module's too.
from .runtime import (  # noqa: E402,F401
    DEFAULT_LIFT_VENV,
    LIFT_PYTHON_ENV,
    expand_videos,
    lift_python,
    lifting_available,
    worker_command,
    worker_env,
)
from .video import LiftError, NoHandError, NoSegmentError, UnreadableVideoError, read_video  # noqa: E402,F401

MIN_SEEN_FRAMES = 2


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
    outputs: list[str] = field(default_factory=list)  # every file written (one per segment)
    segments: list[dict] = field(default_factory=list)  # written: frames [first, last], seconds, file, source
    dropped: list[dict] = field(default_factory=list)  # not written: frames, seconds, reason
    provenance: dict = field(default_factory=dict)  # fraction of the video's frames per provenance
    covered_fraction: float = 0.0  # fraction of the video's frames in written files
    extra: dict = field(default_factory=dict)

    def line(self) -> str:
        """The one line printed per video at the end of a run, ending with what
        a person should know (no interaction: flagged; gravity assumed)."""
        flags = "".join(f"; {flag}" for flag in scene_contact.lift_flags(self.extra))
        return self._line() + (flags if self.status == "ok" else "")

    def _line(self) -> str:
        if self.status == "ok":
            p = self.provenance
            how = ", ".join(f"{k} {p.get(k, 0):.0%}" for k in ("observed", "recovered", "carried", "interpolated") if p.get(k, 0) > 0)
            head = (
                f"{self.video}: {self.frames} frames, hand in {self.detected_fraction:.0%} ({how}), "
                f"{self.hand_side} hand {100 * (self.hand_size_m or 0):.1f} cm"
            )
            if len(self.outputs) == 1 and not self.dropped:
                return f"{head} -> {self.output}"
            kept = "; ".join(f"frames {s['frames'][0]}-{s['frames'][1]} -> {s['file']}" for s in self.segments)
            drop = "; ".join(f"frames {d['frames'][0]}-{d['frames'][1]} ({d['reason']})" for d in self.dropped)
            return (
                f"{head}, {len(self.outputs)} segment{'s' if len(self.outputs) != 1 else ''} covering {self.covered_fraction:.0%}: {kept}"
                + (f"; dropped: {drop}" if drop else "")
            )
        return f"{self.video}: skipped ({self.status}): {self.reason}"


# ================================================================ core
def _odd(n: int) -> int:
    return n if n % 2 == 1 else n + 1


def _as_entries(track: list) -> list[tracking.Entry | None]:
    """Entries from a list of observations / entries / None (one per frame)."""
    out: list[tracking.Entry | None] = []
    for o in track:
        if o is None or isinstance(o, tracking.Entry):
            out.append(o)
        else:
            out.append(tracking.Entry(hoi.OBSERVED, obs=o))
    return out


def carry_joints(joints_anchor: np.ndarray, matrix: np.ndarray, intrinsics: camera.Intrinsics) -> np.ndarray:
    """The 3D hand of an anchor frame (21, 3) moved rigidly with the image
    similarity ``matrix`` (2, 3, anchor pixels -> now): the hand's centre
    goes where the similarity takes its image, at the depth divided by the
    similarity's scale (apparent size grows as depth falls); the hand turns
    about the viewing axis by the similarity's angle."""
    J = np.asarray(joints_anchor, dtype=np.float64)
    P = J.mean(axis=0)
    c = intrinsics.project(P)
    s, theta = tracking.similarity_params(matrix)
    c1 = tracking.apply(matrix, c)
    z1 = P[2] / max(s, 1e-6)
    P1 = np.array([(c1[0] - intrinsics.cx) * z1 / intrinsics.fx, (c1[1] - intrinsics.cy) * z1 / intrinsics.fy, z1])
    R = np.array([[math.cos(theta), -math.sin(theta), 0.0], [math.sin(theta), math.cos(theta), 0.0], [0.0, 0.0, 1.0]])
    return P1 + (J - P) @ R.T


def lift_observations(
    track: list,
    fps: float,
    intrinsics: camera.Intrinsics,
    side: str,
    source: str,
    options: LiftOptions,
    contact: np.ndarray | None = None,
    object_box_px: float | None = None,
) -> tuple[hoi.HOITrajectory, dict]:
    """The followed hand, one item per frame (a ``HandObservation``, a
    ``tracking.Entry`` — observed, recovered or carried — or None where
    unseen) -> (trajectory in the camera frame over the whole video, NaN
    where still unseen, with its ``hand_provenance``; diagnostics). Steps 3-5
    of the module doc; no I/O."""
    entries = _as_entries(track)
    T = len(entries)
    rule = hoi.RETARGET_RULE
    has_obs = np.array([e is not None and e.obs is not None for e in entries])
    if has_obs.sum() < MIN_SEEN_FRAMES:
        raise NoHandError(source, f"a {side} hand is seen in {int(has_obs.sum())} of {T} frames")
    xy = np.full((T, 21, 2), np.nan)
    metric = np.full((T, 21, 3), np.nan)
    for t, e in enumerate(entries):
        if e is not None and e.obs is not None:
            xy[t], metric[t] = e.obs.image_xy, e.obs.metric
    # one geometry per hand: no flip between frames (a frame still of the other hand is not
    # trusted: dropped, bridged where short), one size, one palm
    metric, agree = hand_shape.steady_reflections(metric, side)
    other_hand = agree < -hand_shape.OTHER_HAND
    metric[other_hand] = np.nan
    xy[other_hand] = np.nan
    sizes = np.linalg.norm(metric[:, 9] - metric[:, 0], axis=-1)
    size = float(options.hand_size) if options.hand_size else float(np.nanmedian(sizes))
    metric = metric * (size / sizes)[:, None, None]
    palm_moved = np.full(T, np.nan)
    if not options.no_rigid_palm:
        metric, palm_moved = hand_shape.rigid_palm(metric)
    t_cam, reproj = camera.place_hand(xy, metric, intrinsics)
    joints = metric + t_cam[:, None, :]
    prov = np.full(T, hoi.UNSEEN, dtype=np.uint8)
    for t, e in enumerate(entries):
        if e is not None and e.obs is not None and np.isfinite(joints[t]).all():
            prov[t] = e.provenance
    # carried frames: the anchor's hand moved with the object
    carried = np.zeros(T, bool)
    for t, e in enumerate(entries):
        if e is not None and e.carry is not None and np.isfinite(joints[e.carry.anchor]).all():
            joints[t] = carry_joints(joints[e.carry.anchor], e.carry.matrix, intrinsics)
            carried[t] = True
            prov[t] = hoi.CARRIED
    valid = np.isfinite(joints).all(axis=(1, 2))
    # clean-up: depth steadied, outliers, short gaps, smoothing
    if options.depth_window_s > 0:
        joints = smooth.stabilise_depth(joints, valid, _odd(max(3, int(round(options.depth_window_s * fps)))))
    valid = smooth.reject_outliers(joints.mean(axis=1), valid, options.outlier_m)
    joints[~valid] = np.nan
    prov[~valid] = hoi.UNSEEN
    before = valid.copy()
    max_gap = min(rule.max_gap_frames(fps), max(0, int(math.floor(options.max_gap_s * fps + 1e-9))))
    joints, valid = smooth.fill_gaps(joints, valid, max_gap, ends=True)
    prov[valid & ~before] = hoi.INTERPOLATED
    window = _odd(max(3, int(round(options.smooth_window_s * fps))))
    joints = smooth.savgol(joints, valid, window, order=2)
    joints[~valid] = np.nan
    if valid.sum() < MIN_SEEN_FRAMES:
        raise NoHandError(source, f"only {int(valid.sum())} frames survive the outlier check")

    diameter = None
    depth = float(np.nanmedian(joints[valid][:, :, 2]))
    if object_box_px is not None:
        diameter = object_box_px * depth / intrinsics.fx
    if contact is None:
        contact = objects.contact_from_grip(joints, fps) | carried
    proxy = objects.anchored_object(joints, fps, contact=contact, diameter=diameter, shape=options.object_shape)
    traj = hoi.HOITrajectory(
        hand_joints=joints.astype(np.float32),
        object_pose=proxy.pose,
        object_points=proxy.points,
        fps=float(fps),
        gravity=np.array(hoi.CAMERA_GRAVITY, dtype=np.float32),
        hand_side=side,
        source=source,
        hand_provenance=prov,
    )
    stats = {
        "detected_fraction": float(has_obs.mean()),
        "kept_fraction": float(valid.mean()),
        "provenance": {k: round(v, 4) for k, v in hoi.provenance_fractions(prov).items()},
        "hand_size_m": float(hoi.hand_size(joints[valid])),
        "median_depth_m": float(np.nanmedian(joints[valid][:, 0, 2])),
        "median_reprojection_px": float(np.nanmedian(reproj)) if np.isfinite(reproj).any() else None,
        "contact_frames": int(proxy.contact.sum()),
        "object_diameter_m": proxy.diameter,
        "object_height_m": proxy.height,
        "smoothing_window_frames": window,
        "other_hand_frames_dropped": int(other_hand.sum()),
        "other_hand_frames": np.flatnonzero(other_hand).tolist(),
        "palm_moved_median_m": round(float(np.nanmedian(palm_moved)), 4) if np.isfinite(palm_moved).any() else None,
        "object_box_px": object_box_px,
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
    recover: Callable[[np.ndarray, np.ndarray], list[HandObservation]] | None = None,
    object_mask: np.ndarray | None = None,
) -> tuple[hoi.HOITrajectory, dict]:
    """RGB frames (H, W, 3) -> (whole-video trajectory of the followed hand,
    NaN where unseen, with its provenance; diagnostics). ``backend`` defaults
    to the one ``options.hands`` names (created and closed here), ``recover``
    to a crop re-detector (MediaPipe, unless ``options.no_recover``);
    ``annotations`` is a ``doh100.VideoAnnotations`` or None; ``object_mask``
    (H, W) bool the object in the first frame, or None."""
    options = (options or LiftOptions()).validated()
    if options.objects != "anchored":
        objects.MccHoObjects()  # raises, naming what is missing
    intr = camera.Intrinsics.parse(options.intrinsics) if options.intrinsics else camera.estimate_intrinsics(width, height, options.fov_deg)
    own = backend is None
    own_recover = recover is None and not options.no_recover and options.hands == "mediapipe"
    if own:
        from .hands import make_hand_backend

        backend = make_hand_backend(options.hands)
    if own_recover:
        from .hands import CropRedetector

        recover = CropRedetector()
    params = tracking.TrackerParams(max_carry_s=options.max_carry_s)
    tracker = tracking.HandTracker(
        fps, params, recover=None if options.no_recover else recover, carry=not options.no_carry, object_mask=object_mask
    )
    T = 0
    t0 = time.process_time()
    try:
        for frame in frames:
            tracker.step(T, backend(frame), frame)
            T += 1
            if progress is not None:
                progress(1)
    finally:
        if own:
            backend.close()  # type: ignore[union-attr]
        if own_recover:
            recover.close()  # type: ignore[union-attr]
    cpu = time.process_time() - t0
    if T < MIN_SEEN_FRAMES:
        raise UnreadableVideoError(source, f"only {T} frame(s) could be decoded")
    tracks = tracker.finish()
    boxes = contact = None
    object_px = None
    side = options.side
    if annotations is not None:
        side, boxes, contact, object_px = annotated_side_and_boxes(annotations, side, T)
    try:
        entries, side, facts = follow_hand(tracks, T, fps, side, boxes, intr, options, lift_observations)
    except NoHandError as e:
        raise NoHandError(source, f"{e.reason} in {T} frames") from None
    traj, stats = lift_observations(entries, fps, intr, side, source, options, contact, object_px)
    stats.update(facts)
    stats.update(
        {
            "frames": T,
            "any_hand_fraction": float(np.mean([any(tr.entries.get(t) is not None for tr in tracks) for t in range(T)])) if tracks else 0.0,
            "recover_calls": tracker.recover_calls,
            "tracking_cpu_s": round(cpu, 3),
            "intrinsics": intr.as_list(),
            "intrinsics_estimated": options.intrinsics is None,
            "annotated": annotations is not None,
            "hand_backend": options.hands,
            "object_backend": options.objects,
            "contact_mask": None if contact is None else contact.tolist(),
            "object_mask_given": object_mask is not None,
            "object_followed_frames": len(tracker.object_mats),
        }
    )
    return traj, stats


def video_stem(video: str) -> str:
    """The file name without its video suffix (``clip.mp4`` -> ``clip``)."""
    stem = Path(video).name
    for suffix in VIDEO_SUFFIXES:
        if stem.lower().endswith(suffix):
            return stem[: -len(suffix)]
    return Path(video).stem


def find_object_mask(stem: str, directory: str, video: str) -> np.ndarray | None:
    """The object's mask in the video's first frame from ``directory``
    (``<stem>_mask.png``, ``<stem>.mask.png`` or ``<stem>.png``; non-zero = the
    object), or None when there is none. An unreadable or empty one is an
    error naming it."""
    import cv2

    for name in (f"{stem}_mask.png", f"{stem}.mask.png", f"{stem}.png"):
        path = Path(directory) / name
        if path.is_file():
            m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if m is None or not (m > 0).any():
                raise LiftError(video, f"object mask {path} is unreadable or empty")
            return m > 0
    return None


def _describe_unseen(prov: np.ndarray, segments: list[LiftedSegment], fps: float, other_hand: list[int] = ()) -> list[dict]:
    """The runs of frames outside every piece (the hand neither seen, recovered
    nor carried; or seen, but its joints formed the other hand: ``other_hand``)."""
    inside = np.zeros(len(prov), bool)
    for seg in segments:
        inside[seg.start : seg.stop] = True
    other = np.zeros(len(prov), bool)
    other[list(other_hand)] = True
    out = []
    for s, e in smooth.runs(~inside):
        reason = "hand not found (not recovered, not carried)"
        if other[s:e].any():
            reason += f"; {int(other[s:e].sum())} of its frames dropped: the joints formed the other hand"
        out.append({"frames": [s, e - 1], "seconds": round((e - s) / fps, 3), "reason": reason})
    return out


def _lift_here(video_path: str | os.PathLike, out_dir: str | os.PathLike, options: LiftOptions, progress: Callable[[int], None] | None = None, on_start: Callable[[int], None] | None = None) -> LiftReport:
    """Lift one video in this process (the lifting environment): one
    ``.hoi.npz`` per usable segment (``<stem>.hoi.npz`` when the whole video is
    one, else ``<stem>.f<first>-<last>.hoi.npz``) and a ``<stem>.lift.json``."""
    t0 = time.perf_counter()
    video = str(video_path)
    stem = video_stem(video)
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
    mask = find_object_mask(stem, options.object_masks, video) if options.object_masks else None
    try:
        traj, stats = lift_frames(frames, fps, width, height, source, options, annotations=annotations, progress=progress, object_mask=mask)
    except LiftError as e:
        raise type(e)(video, e.reason) from None
    contact = None if stats.get("contact_mask") is None else np.asarray(stats.pop("contact_mask"), dtype=bool)
    stats.pop("contact_mask", None)
    other_hand = stats.pop("other_hand_frames", [])
    intr = camera.Intrinsics(*stats["intrinsics"])
    pieces = cut_segments(traj, options, contact, stats.get("object_box_px"), intr)
    kept = [p for p in pieces if p.traj is not None]
    T = stats["frames"]
    dropped = [dict(p.as_dict(fps)) for p in pieces if p.traj is None] + _describe_unseen(hoi.provenance(traj), pieces, fps, other_hand)
    dropped.sort(key=lambda d: d["frames"][0])
    if not kept:
        why = "; ".join(f"frames {d['frames'][0]}-{d['frames'][1]}: {d['reason']}" for d in dropped) or "nothing usable"
        raise NoSegmentError(video, f"no segment passes the retargeting rule ({why})")
    # what the whole video says about the scene: contact phases (no interaction is flagged and
    # recorded as no contact frame, which retargeting refuses) and gravity (given, estimated, or assumed)
    scene, scene_stats = scene_contact.annotate_trajectory(traj, contact, options.camera_pitch)
    stats.update(scene_stats)
    for p in kept:
        p.traj = replace(p.traj, gravity=scene.gravity, contact=scene.contact[p.start : p.stop])  # type: ignore[arg-type]
    # the last word is retargeting's own loader: what it would refuse is not written — except a
    # piece without interaction: it is written, flagged (its line, `flagged`), and its file records
    # no contact frame, so retargeting refuses it unless told --allow-no-interaction
    from hop_data.retarget.checks import check_handedness

    for p in list(kept):
        try:
            hoi.prepare(check_handedness(p.traj))  # type: ignore[arg-type]
        except hoi.HOIFormatError as e:
            kept.remove(p)
            dropped.append({**p.as_dict(fps), "reason": f"refused by retargeting: {e.problem}"})
    dropped.sort(key=lambda d: d["frames"][0])
    if not kept:
        why = "; ".join(f"frames {d['frames'][0]}-{d['frames'][1]}: {d['reason']}" for d in dropped) or "nothing usable"
        raise NoSegmentError(video, f"no segment passes the retargeting rule ({why})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    whole = len(kept) == 1 and kept[0].start == 0 and kept[0].stop == T
    written, segments = [], []
    for p in kept:
        name = f"{stem}.hoi.npz" if whole else f"{stem}.f{p.start}-{p.stop - 1}.hoi.npz"
        path = hoi.save(out / name, p.traj)  # type: ignore[arg-type]
        written.append(str(path))
        seg = p.as_dict(fps)
        seg.update(file=str(path), source=p.traj.source, provenance={k: round(v, 4) for k, v in hoi.provenance_fractions(hoi.provenance(p.traj)).items()})  # type: ignore[union-attr]
        segments.append(seg)
    covered = sum(p.stop - p.start for p in kept) / T
    report = LiftReport(
        video=video, status="ok", output=written[0], source=kept[0].traj.source, frames=T,  # type: ignore[union-attr]
        detected_fraction=stats["detected_fraction"], hand_side=traj.hand_side, hand_size_m=stats["hand_size_m"],
        median_depth_m=stats["median_depth_m"], median_reprojection_px=stats["median_reprojection_px"],
        contact_frames=stats["contact_frames"], intrinsics=stats["intrinsics"], fps=float(fps),
        seconds=time.perf_counter() - t0, outputs=written, segments=segments, dropped=dropped,
        provenance=stats["provenance"], covered_fraction=covered,
        extra={k: v for k, v in stats.items() if k not in asdict(LiftReport("", "")).keys()},
    )  # fmt: skip
    sidecar = out / f"{stem}.lift.json"
    sidecar.write_text(json.dumps(asdict(report), indent=1))
    return report


_ERRORS = {"unreadable": UnreadableVideoError, "no_hand": NoHandError, "no_segment": NoSegmentError}


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
