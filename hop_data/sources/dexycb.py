"""DexYCB importer: the release as published -> one HOI trajectory per sequence.

Layout read (the DexYCB release and its toolkit's ``dex_ycb.py`` /
``sequence_loader.py``)::

    <root>/calibration/intrinsics/<serial>_640x480.yml      color: {fx, fy, ppx, ppy}
    <root>/calibration/extrinsics_<name>/extrinsics.yml      extrinsics: {<serial>: 12 floats, apriltag: 12 floats}, master: <serial>
    <root>/models/<ycb name>/points.xyz | textured_simple.obj
    <root>/<subject>/<sequence>/meta.yml                     serials, num_frames, ycb_ids, ycb_grasp_ind, mano_sides, mano_calib, extrinsics
    <root>/<subject>/<sequence>/pose.npz                     pose_y (F, n_obj, 7): quaternion x, y, z, w + translation, world frame;
                                                             all-identity (0,0,0,1,0,0,0) = not annotated; pose_m (F, 1, 51), zeros = no hand
    <root>/<subject>/<sequence>/<serial>/labels_%06d.npz     joint_3d (1, 21, 3) camera frame, -1 where missing (also seg, pose_y, pose_m, joint_2d)

The YAML files contain ``!!python/tuple`` tags (written by PyYAML); they are
read with a safe loader that maps that one tag to a list.

Frames. Each extrinsics entry is a 3 x 4 row-major [R | t] taking that
camera's coordinates to the world frame (the toolkit maps camera points with
p_world = R p_cam + t; the master camera's entry is the identity, so the
world frame is the master camera's). ``pose.npz`` poses are already in that
world frame; the per-camera ``joint_3d`` labels are mapped with their
camera's extrinsics (the master camera first; another camera only where the
master's label is missing).

Gravity. The ``apriltag`` entry is the pose of the calibration tag lying on
the table, in the world frame: the toolkit crops the scene to the tag-frame
box x in [0, 1.2], y in [-0.1, 0.7], z in [-0.1, 0.7] m, so the tag's z axis
points up from the table into the workspace. Gravity in the world frame is
therefore minus the tag's z axis: g = -R_tag[:, 2].

Output: ``<out>/<subject>/<sequence>.hoi.npz`` with the grasped object
(``ycb_ids[ycb_grasp_ind]``), its pose from ``pose_y``, its surface points
from the model (``points.xyz`` if present, else area-weighted samples of
``textured_simple.obj``; farthest-point subsampled to ``num_points``), the
hand joints, fps 30 (DexYCB's capture rate), source
``dexycb/<subject>/<sequence>``. Only sequences whose hand is in ``hands``
(default: right) are imported; an existing output is kept (re-runs resume).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hop_data import hoi
from hop_robot.geometry import farthest_point_sample

FPS = 30.0  # DexYCB capture rate
YCB_CLASSES: dict[int, str] = {
    1: "002_master_chef_can", 2: "003_cracker_box", 3: "004_sugar_box", 4: "005_tomato_soup_can",
    5: "006_mustard_bottle", 6: "007_tuna_fish_can", 7: "008_pudding_box", 8: "009_gelatin_box",
    9: "010_potted_meat_can", 10: "011_banana", 11: "019_pitcher_base", 12: "021_bleach_cleanser",
    13: "024_bowl", 14: "025_mug", 15: "035_power_drill", 16: "036_wood_block", 17: "037_scissors",
    18: "040_large_marker", 19: "051_large_clamp", 20: "052_extra_large_clamp", 21: "061_foam_brick",
}  # fmt: skip
MISSING_POSE = np.array([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
DEFAULT_NUM_POINTS = 1024
META_KEYS = ("serials", "num_frames", "ycb_ids", "ycb_grasp_ind", "mano_sides", "extrinsics")


class DexYCBError(ValueError):
    """A file of the release that breaks the layout; names the file and the problem."""


def _yaml(path: Path) -> dict:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("tag:yaml.org,2002:python/tuple", lambda loader, node: loader.construct_sequence(node))
    try:
        with open(path) as f:
            data = yaml.load(f, Loader=Loader)  # noqa: S506 (a SafeLoader subclass)
    except FileNotFoundError:
        raise DexYCBError(f"{path}: missing") from None
    except yaml.YAMLError as e:
        raise DexYCBError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise DexYCBError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def find_root(path: Path) -> Path:
    """The release root (the folder holding ``calibration/``) at or above ``path``."""
    for p in [path, *path.parents]:
        if (p / "calibration").is_dir():
            return p
    raise DexYCBError(f"{path}: no DexYCB release here (no calibration/ folder in it or above it)")


def find_sequences(src: Path) -> list[Path]:
    """Sequence folders (holding meta.yml) under ``src`` (or ``src`` itself), sorted."""
    if (src / "meta.yml").is_file():
        return [src]
    return sorted(p.parent for p in src.glob("*/*/meta.yml")) or sorted(p.parent for p in src.glob("*/meta.yml"))


@dataclass
class Sequence:
    """One sequence's metadata and calibration, read and checked."""

    path: Path
    subject: str
    name: str
    serials: list[str]
    num_frames: int
    ycb_ids: list[int]
    grasp_ind: int
    side: str
    extrinsics: dict[str, np.ndarray]  # serial -> (3, 4) camera -> world
    master: str
    apriltag: np.ndarray  # (3, 4) tag -> world

    @property
    def source(self) -> str:
        return f"dexycb/{self.subject}/{self.name}"

    @property
    def object_name(self) -> str:
        return YCB_CLASSES[self.ycb_ids[self.grasp_ind]]

    @property
    def gravity(self) -> np.ndarray:
        z = self.apriltag[:, 2]
        return -z / np.linalg.norm(z)


def read_sequence(path: Path, root: Path) -> Sequence:
    meta_path = path / "meta.yml"
    meta = _yaml(meta_path)
    for key in META_KEYS:
        if key not in meta:
            raise DexYCBError(f"{meta_path}: key '{key}' is missing")
    serials = [str(s) for s in meta["serials"]]
    ycb_ids = [int(i) for i in meta["ycb_ids"]]
    grasp = int(meta["ycb_grasp_ind"])
    if not 0 <= grasp < len(ycb_ids):
        raise DexYCBError(f"{meta_path}: ycb_grasp_ind {grasp} is outside ycb_ids {ycb_ids}")
    if ycb_ids[grasp] not in YCB_CLASSES:
        raise DexYCBError(f"{meta_path}: ycb id {ycb_ids[grasp]} is not a DexYCB object (1-21)")
    sides = meta["mano_sides"]
    if not isinstance(sides, list) or not sides or sides[0] not in ("right", "left"):
        raise DexYCBError(f"{meta_path}: mano_sides must be a list starting with 'right' or 'left', got {sides!r}")
    extr_path = root / "calibration" / f"extrinsics_{meta['extrinsics']}" / "extrinsics.yml"
    extr = _yaml(extr_path)
    if "extrinsics" not in extr or not isinstance(extr["extrinsics"], dict):
        raise DexYCBError(f"{extr_path}: key 'extrinsics' (a mapping serial -> 12 numbers) is missing")
    mats = {}
    for key, value in extr["extrinsics"].items():
        arr = np.asarray(value, dtype=np.float64)
        if arr.size != 12:
            raise DexYCBError(f"{extr_path}: extrinsics of {key} must have 12 numbers (3 x 4 row-major), got {arr.size}")
        mats[str(key)] = arr.reshape(3, 4)
    for s in serials:
        if s not in mats:
            raise DexYCBError(f"{extr_path}: no extrinsics for camera {s}")
    if "apriltag" not in mats:
        raise DexYCBError(f"{extr_path}: no 'apriltag' entry (needed for gravity)")
    master = str(extr.get("master", serials[0]))
    return Sequence(
        path=path, subject=path.parent.name, name=path.name, serials=serials, num_frames=int(meta["num_frames"]),
        ycb_ids=ycb_ids, grasp_ind=grasp, side=sides[0], extrinsics=mats, master=master, apriltag=mats["apriltag"],
    )  # fmt: skip


def read_obj_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) and triangles (F, 3) of a Wavefront OBJ (polygons fanned)."""
    verts, faces = [], []
    with open(path) as f:
        for line in f:
            if line.startswith("v "):
                verts.append([float(x) for x in line.split()[1:4]])
            elif line.startswith("f "):
                idx = [int(tok.split("/")[0]) for tok in line.split()[1:]]
                idx = [i - 1 if i > 0 else len(verts) + i for i in idx]
                faces.extend([idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1))
    if not verts or not faces:
        raise DexYCBError(f"{path}: no vertices or faces")
    return np.asarray(verts, dtype=np.float64), np.asarray(faces, dtype=np.int64)


def sample_mesh(verts: np.ndarray, faces: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """(count, 3) points uniformly distributed over the triangles' area."""
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    rng = np.random.default_rng(seed)
    tri = rng.choice(len(faces), size=count, p=area / area.sum())
    u, v = rng.uniform(size=(2, count))
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    return a[tri] + u[:, None] * (b[tri] - a[tri]) + v[:, None] * (c[tri] - a[tri])


def object_points(root: Path, name: str, count: int = DEFAULT_NUM_POINTS) -> np.ndarray:
    """(count, 3) float32 surface points of YCB model ``name`` in its own frame."""
    folder = root / "models" / name
    xyz, obj = folder / "points.xyz", folder / "textured_simple.obj"
    if xyz.is_file():
        try:
            pts = np.loadtxt(xyz, dtype=np.float64, ndmin=2)[:, :3]
        except ValueError as e:
            raise DexYCBError(f"{xyz}: not a text file of x y z rows ({e})") from None
    elif obj.is_file():
        v, f = read_obj_mesh(obj)
        pts = sample_mesh(v, f, max(20 * count, 20000))
    else:
        raise DexYCBError(f"{folder}: no model (points.xyz or textured_simple.obj)")
    if len(pts) < hoi.MIN_OBJECT_POINTS or not np.isfinite(pts).all():
        raise DexYCBError(f"{folder}: the model gives {len(pts)} finite points, need >= {hoi.MIN_OBJECT_POINTS}")
    return pts[farthest_point_sample(pts, count)].astype(np.float32)


def _label_joints(path: Path) -> np.ndarray | None:
    """joint_3d (21, 3) of one label file, None where missing (file, key or -1 values)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if "joint_3d" not in z.files:
                raise DexYCBError(f"{path}: key 'joint_3d' is missing")
            j = np.asarray(z["joint_3d"], dtype=np.float64)
    except (OSError, ValueError) as e:
        raise DexYCBError(f"{path}: not a readable npz ({e})") from None
    if j.shape != (1, 21, 3):
        raise DexYCBError(f"{path}: joint_3d must be (1, 21, 3), got {j.shape}")
    if np.all(j == -1) or not np.isfinite(j).all():
        return None
    return j[0]


def sequence_trajectory(seq: Sequence, root: Path, num_points: int = DEFAULT_NUM_POINTS, points: np.ndarray | None = None) -> hoi.HOITrajectory:
    """The HOI trajectory of one sequence, in the world frame (see the module doc)."""
    pose_path = seq.path / "pose.npz"
    try:
        with np.load(pose_path, allow_pickle=False) as z:
            if "pose_y" not in z.files:
                raise DexYCBError(f"{pose_path}: key 'pose_y' is missing")
            pose_y = np.asarray(z["pose_y"], dtype=np.float64)
            pose_m = np.asarray(z["pose_m"], dtype=np.float64) if "pose_m" in z.files else None
    except FileNotFoundError:
        raise DexYCBError(f"{pose_path}: missing") from None
    except (OSError, ValueError) as e:
        raise DexYCBError(f"{pose_path}: not a readable npz ({e})") from None
    F = seq.num_frames
    if pose_y.shape != (F, len(seq.ycb_ids), 7):
        raise DexYCBError(f"{pose_path}: pose_y must be (num_frames, n_obj, 7) = ({F}, {len(seq.ycb_ids)}, 7), got {pose_y.shape}")
    if pose_m is not None and pose_m.shape[0] != F:
        raise DexYCBError(f"{pose_path}: pose_m must have num_frames = {F} rows, got {pose_m.shape}")

    obj = pose_y[:, seq.grasp_ind]
    missing = np.all(np.isclose(obj, MISSING_POSE), axis=1)
    object_pose = np.full((F, 7), np.nan)
    object_pose[~missing, :3] = obj[~missing, 4:7]
    object_pose[~missing, 3] = obj[~missing, 3]  # x, y, z, w -> w, x, y, z
    object_pose[~missing, 4:7] = obj[~missing, 0:3]

    hand_present = np.ones(F, dtype=bool) if pose_m is None else np.any(pose_m.reshape(F, -1) != 0, axis=1)
    order = [seq.master] + [s for s in seq.serials if s != seq.master] if seq.master in seq.serials else list(seq.serials)
    hand = np.full((F, 21, 3), np.nan)
    for f in range(F):
        if not hand_present[f]:
            continue
        for serial in order:
            j = _label_joints(seq.path / serial / f"labels_{f:06d}.npz")
            if j is not None:
                E = seq.extrinsics[serial]
                hand[f] = j @ E[:, :3].T + E[:, 3]
                break
    if not np.isfinite(hand).any():
        raise DexYCBError(f"{seq.path}: no frame has hand joints (labels_%06d.npz joint_3d all missing)")
    if points is None:
        points = object_points(root, seq.object_name, num_points)
    return hoi.HOITrajectory(
        hand_joints=hand.astype(np.float32), object_pose=object_pose.astype(np.float32), object_points=points,
        fps=FPS, gravity=seq.gravity.astype(np.float32), hand_side=seq.side, source=seq.source,
    )  # fmt: skip


@dataclass
class ImportReport:
    written: list[str]
    kept: list[str]  # outputs already there (not rewritten)
    skipped: list[dict]  # {"sequence", "reason"}


def import_dexycb(
    src: str | os.PathLike,
    out: str | os.PathLike,
    hands: tuple[str, ...] = ("right",),
    num_points: int = DEFAULT_NUM_POINTS,
    overwrite: bool = False,
    progress: object | None = None,
) -> ImportReport:
    """``hop-data import dexycb SRC --out DIR``. SRC: the release root, a
    subject folder or a sequence folder. A sequence that breaks the layout is
    reported in ``skipped`` (with the file and problem) and the rest go on."""
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such file or directory")
    root = find_root(src.resolve())
    sequences = find_sequences(src)
    if not sequences:
        raise DexYCBError(f"{src}: no DexYCB sequence (no <subject>/<sequence>/meta.yml under it)")
    out = Path(out)
    report = ImportReport([], [], [])
    cache: dict[str, np.ndarray] = {}
    for path in sequences:
        try:
            seq = read_sequence(path, root)
            target = out / seq.subject / f"{seq.name}.hoi.npz"
            if seq.side not in hands:
                report.skipped.append({"sequence": str(path), "reason": f"{seq.side} hand (importing {','.join(hands)})"})
            elif target.exists() and not overwrite:
                report.kept.append(str(target))
            else:
                if seq.object_name not in cache:
                    cache[seq.object_name] = object_points(root, seq.object_name, num_points)
                traj = sequence_trajectory(seq, root, num_points, cache[seq.object_name])
                target.parent.mkdir(parents=True, exist_ok=True)
                report.written.append(str(hoi.save(target, traj)))
        except (DexYCBError, hoi.HOIFormatError) as e:
            report.skipped.append({"sequence": str(path), "reason": str(e)})
        if progress is not None:
            progress(1)  # type: ignore[operator]
    return report
