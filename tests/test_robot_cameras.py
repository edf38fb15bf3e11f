"""Point-cloud extraction on rendered scenes against the known object; replay and
RealSense plumbing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hop_robot.cameras import pointcloud as pc
from hop_robot.cameras.base import CameraEnded, CameraError
from hop_robot.cameras.replay import ReplayCamera, save_depth_frames
from hop_robot.drivers.sim import SimRobot, SimRobotConfig
from hop_robot.embodiment import spec
from hop_robot.geometry import transform_points


def surface(robot: SimRobot, n=4000) -> np.ndarray:
    """Dense surface samples of the object at its current pose (base frame)."""
    from hop_robot.drivers.sim import cylinder_points

    return transform_points(cylinder_points(count=n, seed=5), robot.object_pose()[None])[0]


def check_object_cloud(points, robot):
    truth = surface(robot)
    dist = np.linalg.norm(points[:, None, :] - truth[None], axis=2).min(axis=1)
    assert points.shape == (spec.NUM_POINTS, 3) and points.dtype == np.float32
    assert np.percentile(dist, 95) < 0.006 and dist.max() < 0.012, dist.max()  # on the object, not the table or robot
    centre = robot.object_pose()[:3]
    assert np.linalg.norm(points.mean(axis=0)[:2] - centre[:2]) < 0.04
    assert points[:, 2].min() > 0.005  # no table points


@pytest.fixture(scope="module")
def far_scene():
    from hop_robot.cameras.sim import SimDepthCamera

    robot = SimRobot(SimRobotConfig(realtime=False))
    with robot, SimDepthCamera(robot) as camera:
        yield robot, camera


def test_rendered_object_is_extracted(far_scene):
    robot, camera = far_scene
    frame = camera.read()
    assert frame is not None, camera.last_error
    check_object_cloud(frame.points, robot)
    counts = frame.info["counts"]
    assert counts["crop"] > counts["above_table"] > counts["cluster"] >= 100
    normal, offset = camera.extractor.table
    assert normal[2] > 0.999 and abs(offset) < 0.003  # the table top is z = 0


def test_object_next_to_the_hand_is_separated_from_the_robot():
    """Object right under the fingertips: the robot filter must remove the hand."""
    from hop_robot.cameras.sim import SimDepthCamera, SimTruthCamera

    tips = np.array([0.48, -0.24])  # fingertips of the default pose hang ~5 cm above the can's top
    robot = SimRobot(SimRobotConfig(realtime=False, object_xy=tuple(tips + [0.02, 0.0])))
    with robot, SimDepthCamera(robot) as camera:
        frame = camera.read()
        assert frame is not None, camera.last_error
        check_object_cloud(frame.points, robot)
        # without the robot filter, hand points would be in the crop
        depth, K, T, q, _ = camera.render()
        raw = pc.crop_box(pc.depth_to_points(depth, K, T), (0.3, -0.55, 0.11), (1.0, 0.55, 0.45))
        assert len(raw) > 50  # something (the hand) above the can's top
        assert np.all(camera.extractor.robot_mask.distance(raw, q) < 0.02)
        truth = SimTruthCamera(robot).read()
        assert np.linalg.norm(truth.points.mean(0)[:2] - frame.points.mean(0)[:2]) < 0.04


def test_geometry_helpers():
    # a camera 1 m above the origin looking down sees a plane at z = 0
    K = np.array([[100.0, 0, 31.5], [0, 100.0, 23.5], [0, 0, 1]])
    T = np.eye(4)
    T[:3, :3] = np.diag([1.0, -1.0, -1.0])  # optical z down
    T[2, 3] = 1.0
    depth = np.ones((48, 64), np.float32)
    depth[0, 0] = 0.0  # no return
    points = pc.depth_to_points(depth, K, T)
    assert points.shape == (48 * 64 - 1, 3) and np.allclose(points[:, 2], 0.0)
    assert np.allclose(pc.DepthProjector(K, T, depth.shape)(depth), points, atol=1e-6)
    # RANSAC finds a tilted-but-allowed plane and ignores a box on it
    rng = np.random.default_rng(0)
    plane = np.c_[rng.uniform(-0.5, 0.5, (3000, 2)), np.zeros(3000)]
    plane[:, 2] = 0.1 * plane[:, 0]  # 5.7 degrees
    box = rng.uniform([0.0, 0.0, 0.1], [0.05, 0.05, 0.2], (300, 3))
    normal, offset = pc.fit_table_plane(np.vstack([plane, box]), 0.005, 15.0, 64, rng)
    assert np.allclose(normal, np.array([-0.1, 0, 1]) / np.linalg.norm([-0.1, 0, 1]), atol=1e-3)
    assert pc.fit_table_plane(np.c_[np.zeros((100, 1)), rng.uniform(size=(100, 2))], 0.005, 15.0, 32, rng) is None  # a wall
    # the largest of two clusters
    small = rng.normal([0.5, 0.3, 0.1], 0.005, (40, 3))
    big = rng.normal([0.5, -0.1, 0.1], 0.01, (200, 3))
    idx = pc.largest_cluster(np.vstack([small, big]), 0.015)
    assert set(idx.tolist()) == set(range(40, 240))
    # voxel downsampling keeps one point per voxel
    assert len(pc.voxel_downsample(np.zeros((10, 3)) + 0.001, 0.01)) == 1
    with pytest.raises(pc.NoObjectError):
        pc.CloudExtractor().extract(plane, None)


def test_replay_of_depth_frames_and_of_recordings(far_scene, tmp_path):
    from hop_robot.record import EpisodeRecorder

    robot, camera = far_scene
    depth, K, T, q, _ = camera.render()
    save_depth_frames(tmp_path / "frames.npz", np.stack([depth, depth]), K, T, np.array([0.0, 0.033]))
    replay = ReplayCamera(tmp_path / "frames.npz", realtime=False)
    with replay:
        frame = replay.read(q)
        check_object_cloud(frame.points, robot)
        assert replay.read(q) is not None
        with pytest.raises(CameraEnded):
            replay.read(q)
    rec = EpisodeRecorder(tmp_path / "ep.npz", source="robot/test/0", table_pose=[0.65, 0, 0, 1, 0, 0, 0])
    for k in range(3):
        rec.append(proprio=spec.DEFAULT_POSE, action=spec.DEFAULT_POSE, object_pc=frame.points + k,
                   policy_action=spec.DEFAULT_POSE, time=k / 20, joint_age=0.0, cloud_age=0.0,
                   policy_latency=0.003, miss=False, intervention=0, sent=True)  # fmt: skip
    rec.save({})
    replay = ReplayCamera(tmp_path / "ep.npz", realtime=False)
    assert len(replay) == 3 and np.allclose(replay.read().points, frame.points)
    with pytest.raises(CameraError, match="format"):
        np.savez(tmp_path / "bad.npz", format=np.array("nope"))
        ReplayCamera(tmp_path / "bad.npz")


def test_realsense_calibration_and_missing_sdk(tmp_path):
    from hop_robot.cameras.realsense import RealSenseCamera, load_calibration

    T = np.eye(4)
    T[:3, 3] = [1.2, 0.0, 0.6]
    good = tmp_path / "cal.json"
    good.write_text(json.dumps({"T_base_cam": T.tolist()}))
    assert np.allclose(load_calibration(good), T)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"T_base_cam": (2 * T).tolist()}))
    with pytest.raises(CameraError, match="rigid"):
        load_calibration(bad)
    try:
        import pyrealsense2  # noqa: F401
    except ImportError:
        with pytest.raises(CameraError, match="pyrealsense2"):
            RealSenseCamera(good).start()
