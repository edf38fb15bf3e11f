"""Object point cloud from a depth image: what the policy sees each step.

``depth (H, W) m`` + intrinsics ``K (3, 3)`` + camera pose ``T_base_cam (4, 4)``
(OpenCV optical frame: x right, y down, z forward) -> points in the robot base
frame -> ``CloudExtractor.extract``:

1. **workspace crop**: keep points inside an axis-aligned box over the table;
2. **table-plane removal**: RANSAC plane whose normal is within
   ``table_max_tilt_deg`` of +z (candidates scored on 2,000 points), refined
   by least squares on its inliers; points within ``table_threshold`` of it,
   or below it, are dropped;
3. **voxel downsample** (default 4 mm): bounded cost, uniform density;
4. **robot self-filter**: points within ``robot_margin`` of the robot's own
   collision geometry at the measured joint angles are dropped (the hand is
   next to the object when it matters);
5. **largest cluster**: Euclidean clusters by connectivity at
   ``cluster_radius``; the largest is the object;
6. **farthest-point sampling** to ``num_points`` (100, the policy's count;
   ``hop_robot.geometry.farthest_point_sample``).

NumPy only (the robot computer has no SciPy/Open3D). Shapes: ``points (M, 3)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from hop_robot.embodiment import spec
from hop_robot.geometry import farthest_point_sample

__all__ = [
    "CloudExtractor",
    "ExtractConfig",
    "NoObjectError",
    "RobotMask",
    "DepthProjector",
    "crop_box",
    "depth_to_points",
    "fit_table_plane",
    "largest_cluster",
    "voxel_downsample",
]


class NoObjectError(RuntimeError):
    """No object could be found in the frame (too few points after filtering)."""


@dataclass(frozen=True)
class ExtractConfig:
    """Point-cloud extraction settings. Boxes in the robot base frame (m)."""

    # The table region (default scene: table centre 0.65 m ahead, 0.6 x 1.0 m, top at z 0).
    workspace_low: tuple[float, float, float] = (0.30, -0.55, -0.05)
    workspace_high: tuple[float, float, float] = (1.00, 0.55, 0.45)
    voxel: float = 0.004  # m
    table_threshold: float = 0.008  # m above the plane still counted as table
    table_max_tilt_deg: float = 15.0
    ransac_iterations: int = 64
    robot_margin: float = 0.015  # m around the robot's geometry
    cluster_radius: float = 0.015  # m
    min_points: int = 30  # fewer object points than this: no object
    num_points: int = spec.NUM_POINTS
    max_depth: float = 3.0  # m; farther returns are ignored
    seed: int = 0


def depth_to_points(depth: np.ndarray, K: np.ndarray, T_base_cam: np.ndarray, max_depth: float = np.inf) -> np.ndarray:
    """Depth image (H, W) in metres (0, NaN or > max_depth: no return) -> (M, 3) base-frame points.

    ``K`` is the pinhole matrix (fx, fy, cx, cy; pixel centres at integer
    coordinates) and ``T_base_cam`` the optical frame's pose in the base
    frame (OpenCV convention: z forward, x right, y down)."""
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got {depth.shape}")
    K = np.asarray(K, dtype=np.float64)
    T = np.asarray(T_base_cam, dtype=np.float64)
    if K.shape != (3, 3) or T.shape != (4, 4):
        raise ValueError(f"K must be (3, 3) and T_base_cam (4, 4), got {K.shape} and {T.shape}")
    v, u = np.nonzero(np.isfinite(depth) & (depth > 0) & (depth < max_depth))
    z = depth[v, u].astype(np.float64)
    x = (u - K[0, 2]) * z / K[0, 0]
    y = (v - K[1, 2]) * z / K[1, 1]
    cam = np.stack([x, y, z], axis=1)
    return cam @ T[:3, :3].T + T[:3, 3]


class DepthProjector:
    """``depth_to_points`` for a fixed camera, with the per-pixel rays computed once."""

    def __init__(self, K: np.ndarray, T_base_cam: np.ndarray, shape: tuple[int, int], max_depth: float = np.inf) -> None:
        K = np.asarray(K, dtype=np.float64)
        T = np.asarray(T_base_cam, dtype=np.float64)
        self.key = (K.tobytes(), T.tobytes(), tuple(shape))
        v, u = np.mgrid[0:shape[0], 0:shape[1]]
        rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones(shape)], axis=-1).reshape(-1, 3)
        self.dirs = (rays @ T[:3, :3].T).astype(np.float32)  # (H*W, 3) base-frame direction per unit depth
        self.origin = T[:3, 3].astype(np.float32)
        self.max_depth = max_depth

    def __call__(self, depth: np.ndarray) -> np.ndarray:
        z = np.asarray(depth, dtype=np.float32).ravel()
        valid = np.flatnonzero((z > 0) & (z < self.max_depth))  # NaN compares False
        return self.origin + z[valid, None] * self.dirs[valid]  # float32


def crop_box(points: np.ndarray, low, high) -> np.ndarray:
    """Points inside the axis-aligned box [low, high]."""
    low = np.asarray(low, dtype=points.dtype)
    high = np.asarray(high, dtype=points.dtype)
    keep = (points[:, 0] >= low[0]) & (points[:, 0] <= high[0])
    for k in (1, 2):
        keep &= (points[:, k] >= low[k]) & (points[:, k] <= high[k])
    return points[keep]


def voxel_downsample(points: np.ndarray, voxel: float) -> np.ndarray:
    """One point per occupied voxel (their mean), in first-seen voxel order."""
    if len(points) == 0 or voxel <= 0:
        return points
    keys = np.floor(points / voxel).astype(np.int64)
    keys -= keys.min(axis=0)
    dims = keys.max(axis=0) + 1
    flat = (keys[:, 0] * dims[1] + keys[:, 1]) * dims[2] + keys[:, 2]
    _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    counts = np.bincount(inverse)
    sums = np.stack([np.bincount(inverse, weights=points[:, k]) for k in range(3)], axis=1)
    means = sums / counts[:, None]
    return means[np.argsort(first)]


def fit_table_plane(
    points: np.ndarray, threshold: float, max_tilt_deg: float, iterations: int, rng: np.random.Generator
) -> tuple[np.ndarray, float] | None:
    """The dominant near-horizontal plane: (unit normal (3,) with n_z > 0, offset d)
    such that n·p + d = 0 on the plane; None if no such plane has support."""
    n = len(points)
    if n < 3:
        return None
    cos_tilt = np.cos(np.deg2rad(max_tilt_deg))
    idx = rng.integers(0, n, size=(iterations, 3))
    a, b, c = points[idx[:, 0]], points[idx[:, 1]], points[idx[:, 2]]
    normals = np.cross(b - a, c - a)
    norm = np.linalg.norm(normals, axis=1)
    ok = norm > 1e-9
    normals[ok] /= norm[ok, None]
    normals *= np.where(normals[:, 2:3] < 0, -1.0, 1.0)
    ok &= normals[:, 2] >= cos_tilt
    if not ok.any():
        return None
    normals, a = normals[ok], a[ok]
    offsets = -np.sum(normals * a, axis=1)
    # score candidates on a subset (the plane is most of the points; 2,000 decide it)
    sample = points if n <= 2000 else points[rng.choice(n, 2000, replace=False)]
    support = (np.abs(sample @ normals.T + offsets) < threshold).sum(axis=0)  # (candidates,)
    best = int(np.argmax(support))
    if support[best] < 3:
        return None
    normal, offset = normals[best], offsets[best]
    inliers = sample[np.abs(sample @ normal + offset) < threshold]
    # least-squares refinement: the smallest principal direction of the inliers
    centre = inliers.mean(axis=0)
    _, _, vt = np.linalg.svd(inliers - centre, full_matrices=False)
    refined = vt[-1] * (1.0 if vt[-1][2] >= 0 else -1.0)
    if refined[2] >= cos_tilt:
        normal, offset = refined, -float(refined @ centre)
    return normal, float(offset)


def largest_cluster(points: np.ndarray, radius: float) -> np.ndarray:
    """Indices of the largest connected group of points, where points in the
    same or neighbouring (26-connected) cells of size ``radius`` connect."""
    n = len(points)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    cells = np.floor(points / radius).astype(np.int64)
    cells -= cells.min(axis=0) - 1  # >= 1: neighbours at -1 stay >= 0
    dims = cells.max(axis=0) + 2
    flat = (cells[:, 0] * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2]
    uniq, inverse = np.unique(flat, return_inverse=True)  # sorted occupied cells
    # edges between occupied cells: look up the 13 "forward" neighbour offsets
    src, dst = [], []
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dz in (-1, 0, 1):
                step = (dx * dims[1] + dy) * dims[2] + dz
                if step <= 0:
                    continue
                pos = np.searchsorted(uniq, uniq + step)
                found = (pos < len(uniq)) & (uniq[np.minimum(pos, len(uniq) - 1)] == uniq + step)
                src.append(np.flatnonzero(found))
                dst.append(pos[found])
    src, dst = np.concatenate(src), np.concatenate(dst)
    # connected components: min-label propagation with pointer jumping
    labels = np.arange(len(uniq))
    while True:
        low = np.minimum(labels[src], labels[dst])
        new = labels.copy()
        np.minimum.at(new, src, low)
        np.minimum.at(new, dst, low)
        new = new[new]
        if np.array_equal(new, labels):
            break
        labels = new
    point_labels = labels[inverse]
    counts = np.bincount(point_labels)
    return np.flatnonzero(point_labels == np.argmax(counts))


class RobotMask:
    """Signed distance from points to the robot's collision geometry at joint angles q.

    Boxes exactly; capsules exactly; cylinders as the capsule around them (a
    little conservative); spheres exactly. Built from the robot-only model
    (``hop_robot.embodiment.model.load_model``), so it matches the MJCF.
    """

    def __init__(self, model: mujoco.MjModel | None = None) -> None:
        from hop_robot.embodiment.model import joint_qpos_indices, load_model

        self.model = model if model is not None else load_model()
        self.data = mujoco.MjData(self.model)
        self._qpos = joint_qpos_indices(self.model)
        types = self.model.geom_type
        robot_bodies = self._robot_bodies()
        geoms = [g for g in range(self.model.ngeom) if int(self.model.geom_bodyid[g]) in robot_bodies]
        G = mujoco.mjtGeom
        self._boxes = np.array([g for g in geoms if types[g] == G.mjGEOM_BOX], dtype=np.int64)
        self._capsules = np.array([g for g in geoms if types[g] in (G.mjGEOM_CAPSULE, G.mjGEOM_CYLINDER)], dtype=np.int64)
        self._spheres = np.array([g for g in geoms if types[g] == G.mjGEOM_SPHERE], dtype=np.int64)
        others = [g for g in geoms if g not in set(self._boxes) | set(self._capsules) | set(self._spheres)]
        self._others = np.array(others, dtype=np.int64)  # bounding spheres

    def _robot_bodies(self) -> set[int]:
        m = self.model
        root = m.jnt_bodyid[m.joint(spec.JOINT_NAMES[0]).id]
        while m.body_parentid[root] != 0:
            root = m.body_parentid[root]
        return {b for b in range(m.nbody) if self._ancestor(b, root)}

    def _ancestor(self, body: int, root: int) -> bool:
        while body != 0:
            if body == root:
                return True
            body = int(self.model.body_parentid[body])
        return False

    def distance(self, points: np.ndarray, q: np.ndarray, cutoff: float = np.inf) -> np.ndarray:
        """(M,) smallest signed distance (m) from each point to the robot at ``q`` (23,).

        Geoms whose bounding sphere is farther than ``cutoff`` from every point
        are skipped (their distances, all > cutoff, are reported as inf)."""
        m, d = self.model, self.data
        d.qpos[self._qpos] = q
        mujoco.mj_kinematics(m, d)
        out = np.full(len(points), np.inf)
        if len(points) == 0:
            return out
        low, high = points.min(axis=0), points.max(axis=0)

        def near(group: np.ndarray) -> np.ndarray:
            if len(group) == 0:
                return group
            centre = d.geom_xpos[group]
            gap = np.linalg.norm(np.maximum(np.maximum(low - centre, centre - high), 0.0), axis=1)
            return group[gap <= m.geom_rbound[group] + cutoff]

        boxes, capsules = near(self._boxes), near(self._capsules)
        if len(boxes):
            pos, rot = d.geom_xpos[boxes], d.geom_xmat[boxes].reshape(-1, 3, 3)
            local = np.matmul(points[None] - pos[:, None], rot)  # (G, M, 3) in each box's frame
            excess = np.abs(local) - m.geom_size[boxes][:, None, :]
            outside = np.linalg.norm(np.maximum(excess, 0.0), axis=2)
            inside = np.minimum(excess.max(axis=2), 0.0)
            out = np.minimum(out, (outside + inside).min(axis=0))
        if len(capsules):
            pos, rot = d.geom_xpos[capsules], d.geom_xmat[capsules].reshape(-1, 3, 3)
            axis = rot[:, :, 2]  # the geom's z axis
            size = m.geom_size[capsules]
            rel = points[None] - pos[:, None]  # (G, M, 3)
            t = np.clip(np.matmul(rel, axis[:, :, None])[..., 0], -size[:, 1:2], size[:, 1:2])
            closest = rel - t[..., None] * axis[:, None, :]
            out = np.minimum(out, (np.linalg.norm(closest, axis=2) - size[:, 0:1]).min(axis=0))
        for group, exact in ((near(self._spheres), True), (near(self._others), False)):
            if len(group):
                r = m.geom_size[group, 0] if exact else m.geom_rbound[group]
                dist = np.linalg.norm(points[None] - d.geom_xpos[group][:, None], axis=2) - r[:, None]
                out = np.minimum(out, dist.min(axis=0))
        return out


@dataclass
class Extraction:
    """The object cloud and what the steps left."""

    points: np.ndarray  # (num_points, 3) float32, base frame
    counts: dict  # points after each stage


class CloudExtractor:
    """Depth points -> the policy's object cloud (module doc)."""

    def __init__(self, config: ExtractConfig = ExtractConfig(), robot_mask: RobotMask | None = None) -> None:
        self.config = config
        self.robot_mask = robot_mask if robot_mask is not None else RobotMask()
        self._rng = np.random.default_rng(config.seed)
        self.table: tuple[np.ndarray, float] | None = None  # last fitted plane
        self._projector: DepthProjector | None = None

    def extract_depth(self, depth: np.ndarray, K: np.ndarray, T_base_cam: np.ndarray, q: np.ndarray | None) -> Extraction:
        """Depth image (H, W) m of a camera (K, T_base_cam) -> ``Extraction`` (rays cached per camera)."""
        key = (np.asarray(K, np.float64).tobytes(), np.asarray(T_base_cam, np.float64).tobytes(), tuple(np.shape(depth)))
        if self._projector is None or self._projector.key != key:
            self._projector = DepthProjector(K, T_base_cam, np.shape(depth), self.config.max_depth)
        return self.extract(self._projector(depth), q)

    def extract(self, points: np.ndarray, q: np.ndarray | None) -> Extraction:
        """Base-frame points (M, 3) and the measured joints (23,) (None: no
        robot self-filter) -> ``Extraction``; ``NoObjectError`` if too few remain."""
        cfg = self.config
        counts = {"input": len(points)}
        pts = crop_box(np.asarray(points), cfg.workspace_low, cfg.workspace_high)
        counts["crop"] = len(pts)
        # the table is most of the crop: fit it on the full-density points (subsampled
        # inside), then keep what is above it; the object is small, so downsample after
        plane = fit_table_plane(pts, cfg.table_threshold, cfg.table_max_tilt_deg, cfg.ransac_iterations, self._rng)
        if plane is not None:
            self.table = plane
            pts = pts[pts @ plane[0].astype(pts.dtype) + plane[1] > cfg.table_threshold]
        counts["above_table"] = len(pts)
        pts = voxel_downsample(pts.astype(np.float64), cfg.voxel)
        counts["voxel"] = len(pts)
        if q is not None and len(pts):
            pts = pts[self.robot_mask.distance(pts, q, cutoff=cfg.robot_margin) > cfg.robot_margin]
        counts["not_robot"] = len(pts)
        if len(pts):
            pts = pts[largest_cluster(pts, cfg.cluster_radius)]
        counts["cluster"] = len(pts)
        if len(pts) < cfg.min_points:
            raise NoObjectError(f"object not found: {len(pts)} points left (need {cfg.min_points}); stages {counts}")
        chosen = farthest_point_sample(pts, cfg.num_points)
        return Extraction(pts[chosen].astype(np.float32), counts)
