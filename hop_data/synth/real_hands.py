"""Synthetic videos with real human hand poses (``hop-data synth --real-hands``).

The synthetic corpus's hands are a kinematic model posed by synergies; real
hands are more varied (finger spread, thumb placement, bone proportions,
asymmetric flexion). This module takes real 3D hand poses from photographs —
MediaPipe Hands' metric ("world") landmarks, run in the lifting environment,
so nothing is downloaded — and carries them along the synthetic corpus's
reach-grasp-lift-place paths: each video keeps its synthetic wrist path,
object and camera, and its fingers become a real open pose before the grasp
that turns into a real grasping pose (one of the most flexed photos) while
the hand holds the object, and back after the release. The poses are put in
the synthetic hand's own frame (wrist at the origin, x to the middle
knuckle, palm across) and scaled to its size, so the path, contact timing
and camera stay the synthetic video's; only the hand's shape is real. The
real grasp is not fitted to the object (the photos hold other objects, or
none): fingers may float or sink a little at the grasp, which retargeting's
keypoint error and contact checks then judge, as for a lifted video.

Left hands in photos are mirrored to right hands (their geometry checked by
``hoi.chirality`` after mirroring); the videos are right-handed. Source ids
are ``synth-real/<seed>/<index:04d>``; video ``i`` takes open pose
``i mod n_open`` and grasp pose ``i mod n_grasp`` and the synthetic video
``i`` of ``seed``, so the corpus is deterministic given the photos.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hop_data import hoi
from hop_data.lifting.objects import hand_frame

from .episode import SynthVideo, make_episode, video_rng

__all__ = ["RealHandPose", "photo_hand_poses", "split_poses", "with_real_hands", "real_hand_corpus", "PHOTO_SUFFIXES"]

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

_DETECT = r"""
import json, sys, numpy as np
from PIL import Image
from hop_data.lifting.hands import make_hand_backend
backend = make_hand_backend("mediapipe")
out = []
for path in sys.argv[1:]:
    for d in backend(np.asarray(Image.open(path).convert("RGB"))):
        out.append({"photo": path, "side": d.side, "score": float(d.score), "metric": np.asarray(d.metric).tolist()})
backend.close()
print(json.dumps(out))
"""


@dataclass(frozen=True)
class RealHandPose:
    """One hand found in a photo: metric joints (21, 3), right-handed."""

    photo: str
    side: str  # as MediaPipe labelled it ("left" hands are mirrored in ``joints``)
    joints: np.ndarray
    flexion: float  # degrees, ``hop_data.lifting.contact.finger_flexion``


def photos_in(paths: list[str | os.PathLike]) -> list[Path]:
    """Image files among ``paths`` (files, or folders searched one level)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.iterdir() if q.suffix.lower() in PHOTO_SUFFIXES)
        elif p.is_file():
            if p.suffix.lower() not in PHOTO_SUFFIXES:
                raise ValueError(f"{p}: not a photo ({', '.join(PHOTO_SUFFIXES)})")
            found.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return found


def photo_hand_poses(photos: list[str | os.PathLike], timeout_s: float = 600.0) -> list[RealHandPose]:
    """Every hand MediaPipe finds in ``photos`` (files or folders) whose
    geometry, made right-handed, is a right hand by retargeting's handedness
    rule (``measured_handedness``). Runs in the lifting environment
    (``hop_data.lifting.runtime``)."""
    from hop_data.lifting.contact import finger_flexion
    from hop_data.lifting.runtime import lift_python, worker_env
    from hop_data.retarget.checks import measured_handedness

    files = photos_in(photos)
    if not files:
        raise ValueError(f"no photos ({', '.join(PHOTO_SUFFIXES)}) in {', '.join(map(str, photos))}")
    run = subprocess.run([str(lift_python()), "-c", _DETECT, *map(str, files)], capture_output=True, text=True,
                         env=worker_env(), timeout=timeout_s)  # fmt: skip
    if run.returncode != 0:
        raise RuntimeError(f"MediaPipe on the photos failed: {run.stderr[-2000:]}")
    poses = []
    for h in json.loads(run.stdout.strip().splitlines()[-1]):
        j = np.asarray(h["metric"], dtype=np.float64)
        if not np.isfinite(j).all():
            continue
        if h["side"] == "left":
            j[:, 0] *= -1.0  # camera-aligned metric joints: a mirror in x makes it right-handed
        if measured_handedness(j[None])[0] != "right":  # the geometry must agree with the (mirrored) label
            continue
        poses.append(RealHandPose(Path(h["photo"]).name, h["side"], j, float(finger_flexion(j[None])[0])))
    return poses


def _local(joints: np.ndarray) -> np.ndarray:
    """Joints (21, 3) in their own hand frame (origin at the wrist), scaled to hand size 1."""
    R, o = hand_frame(joints[None])
    return ((joints - o[0]) @ R[0]) / np.linalg.norm(joints[9] - joints[0])


def with_real_hands(video: SynthVideo, open_pose: RealHandPose, grasp_pose: RealHandPose, source: str) -> hoi.HOITrajectory:
    """``video``'s trajectory with its fingers replaced by ``open_pose`` blended
    into ``grasp_pose`` over the grasp phase and back over the release (module doc)."""
    t = video.traj
    j = t.hand_joints.astype(np.float64)
    seen = np.isfinite(j).all(axis=(1, 2))
    R, o = hand_frame(np.where(seen[:, None, None], j, 0.0))
    size = hoi.hand_size(j)
    a, b = _local(open_pose.joints) * size, _local(grasp_pose.joints) * size
    g0, g1 = video.phases["grasp"]
    r0, r1 = video.phases["release"]
    closing = np.clip((t.times - g0) / max(g1 - g0, 1e-3), 0.0, 1.0)
    opening = np.clip((t.times - r0) / max(r1 - r0, 1e-3), 0.0, 1.0)
    w = closing * (1.0 - opening)
    local = (1.0 - w)[:, None, None] * a + w[:, None, None] * b
    joints = o[:, None, :] + np.einsum("tij,tkj->tki", R, local)
    joints[~seen] = np.nan
    return hoi.validate(replace(t, hand_joints=joints.astype(np.float32), source=source))


def split_poses(poses: list[RealHandPose]) -> tuple[list[RealHandPose], list[RealHandPose]]:
    """(open, grasping) poses: the less flexed half and the more flexed half
    (ordered by flexion, then photo, so the order they come in does not matter)."""
    if not poses:
        raise ValueError("no real hand poses to build videos from")
    by_flexion = sorted(poses, key=lambda p: (p.flexion, p.photo))
    half = max(1, len(by_flexion) // 2)
    return by_flexion[:half], by_flexion[half:] or by_flexion


def real_hand_corpus(out_dir: str | os.PathLike, videos: int, seed: int, poses: list[RealHandPose]) -> list[Path]:
    """Write ``videos`` trajectories with real hand poses to ``out_dir`` as
    ``real-<index:04d>.hoi.npz``; returns their paths (``split_poses``: the
    less flexed half open the hand, the other half grasp)."""
    if videos < 0:
        raise ValueError(f"videos must be >= 0, got {videos}")
    open_poses, grasp_poses = split_poses(poses)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(videos):
        video = make_episode(video_rng(seed, i), i, seed, hand_side="right")
        traj = with_real_hands(video, open_poses[i % len(open_poses)], grasp_poses[i % len(grasp_poses)],
                               source=f"synth-real/{seed}/{i:04d}")  # fmt: skip
        paths.append(hoi.save(out / f"real-{i:04d}.hoi.npz", traj))
    return paths
