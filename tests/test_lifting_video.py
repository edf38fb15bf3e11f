"""Video lifting for real: MediaPipe in the lifting environment on videos made
from the shared real photos, checked against the motion they were made with.

Needs the lifting environment (``make lift-env`` -> .venv-lift) and the
shared photos (../shared/data); skipped, saying which, when either is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hop_data import hoi
from hop_data.lifting import api, testclips

pytestmark = pytest.mark.timeout(300)

if not (testclips.SHARED_DATA / testclips.DRINK).is_file():
    pytest.skip(f"shared test photos not found at {testclips.SHARED_DATA}", allow_module_level=True)
try:
    LIFT_PYTHON = api.lift_python()
except FileNotFoundError as e:
    pytest.skip(f"lifting environment absent ({e})", allow_module_level=True)

FOCAL = 800.0
FRAMES = 60  # 2 s at 30 fps
TWO_HANDS = "drinkpour_v_testclip"  # both hands in view all along (stem = 100DOH-style video id)
LEFT_BOX = (813, 476, 886, 555)  # the bartender's left hand in the photo (pixels)


def _lift(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hop_data.cli", "lift", *args], capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def lifted(tmp_path_factory):
    d = tmp_path_factory.mktemp("lift")
    clips = {  # 2 s each: what retargeting needs at least
        "slide": testclips.sliding_clip(d / "slide.mp4", frames=FRAMES, step_px=(2.0, 0.0), focal=FOCAL),
        "zoom": testclips.zoom_clip(d / "zoom.mp4", frames=FRAMES, zoom_end=1.3, focal=FOCAL),
        "two": testclips.sliding_clip(d / f"{TWO_HANDS}.mp4", frames=FRAMES, start=(300, 200), step_px=(2.0, 0.0), focal=FOCAL),
    }
    photo = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(testclips.SHARED_DATA / testclips.DRINK).convert("RGB"))
    testclips.still_clip(d / "nohand.mp4", photo[0:240, 0:320])  # shelves and wall: no hand
    (d / "broken.mp4").write_bytes(os.urandom(4096))
    out = d / "out"
    videos = [str(clips[k].path) for k in ("slide", "zoom", "two")] + [str(d / "nohand.mp4"), str(d / "broken.mp4")]
    proc = _lift([*videos, "--out", str(out), "--intrinsics", clips["slide"].intrinsics, "--results", str(d / "results.jsonl")])
    return d, clips, out, proc


def test_batch_reports_every_video(lifted):
    d, clips, out, proc = lifted
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 6, proc.stdout  # one per video + the total
    assert f"slide.mp4: {FRAMES} frames, hand in 100% (observed " in lines[0] and "right hand" in lines[0]  # 95-100 % (below)
    assert "nohand.mp4: skipped (no_hand)" in lines[3]
    assert "broken.mp4: skipped (unreadable)" in lines[4]
    assert lines[5].startswith("lifted 3 of 5 videos")
    reports = [json.loads(x) for x in (d / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in reports] == ["ok", "ok", "ok", "no_hand", "unreadable"]
    for name in ("slide", "zoom", TWO_HANDS):
        traj = hoi.load(out / f"{name}.hoi.npz")
        assert traj.source == f"video/{name}" and traj.fps == 30.0 and traj.hand_side == "right"
        assert 0.07 <= hoi.hand_size(traj.hand_joints) <= 0.11  # human-like: wrist -> middle knuckle
        ready = hoi.prepare(traj)  # what lifting writes, retargeting accepts (20 Hz, no gaps)
        assert np.isfinite(ready.hand_joints).all() and np.isfinite(ready.object_pose).all()
        prov = traj.hand_provenance  # seen all along (a first frame may be held: its depth is an outlier)
        assert (prov == hoi.OBSERVED).mean() >= 0.95 and np.isin(prov, (hoi.OBSERVED, hoi.RECOVERED, hoi.INTERPOLATED)).all()
        assert (out / f"{name}.lift.json").is_file()


def test_sliding_crop_gives_the_known_motion(lifted):
    _, clips, out, _ = lifted
    traj = hoi.load(out / "slide.hoi.npz")
    centre = traj.hand_joints.astype(np.float64).mean(axis=1)  # (T, 3)
    depth = np.median(centre[:, 2])
    t = np.arange(len(centre))
    # the photo moves by -2 px a frame: at depth Z that is -2 Z / f metres a frame, nothing in y or depth
    expected = -2.0 * depth / FOCAL
    slope_x = np.polyfit(t, centre[:, 0], 1)[0]
    assert slope_x == pytest.approx(expected, rel=0.05)
    assert abs(np.polyfit(t, centre[:, 1], 1)[0]) < 0.1 * abs(expected)
    assert np.std(centre[:, 2]) < 0.04 * depth
    # the lifted hand projects back onto the moving image hand
    proj = np.stack([FOCAL * centre[:, 0] / centre[:, 2] + 320, FOCAL * centre[:, 1] / centre[:, 2] + 240], 1)
    assert np.polyfit(t, proj[:, 0], 1)[0] == pytest.approx(-2.0, rel=0.05)


def test_zoom_gives_the_known_depth_change(lifted):
    _, clips, out, _ = lifted
    traj = hoi.load(out / "zoom.hoi.npz")
    z = traj.hand_joints.astype(np.float64).mean(axis=1)[:, 2]
    s = clips["zoom"].zoom
    # magnified by s(t) = the hand at depth Z0 / s(t): log Z falls with slope -1 in log s
    slope = np.polyfit(np.log(s), np.log(z), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.3)
    assert np.std(z * s) < 0.06 * np.mean(z * s)


def test_annotated_acting_hand_is_followed(lifted, tmp_path):
    d, clips, _, _ = lifted
    ann = tmp_path / "ann"
    ann.mkdir()
    for f in (0, 20, 40, 59):
        x0, y0 = 300 + 2 * f, 200
        box = (LEFT_BOX[0] - x0 + 1, LEFT_BOX[1] - y0 + 1, LEFT_BOX[2] - x0 + 1, LEFT_BOX[3] - y0 + 1)  # 1-based
        (ann / f"{TWO_HANDS}_frame{f:06d}.xml").write_text(
            f"<annotation><filename>{TWO_HANDS}_frame{f:06d}.jpg</filename><size><width>640</width><height>480</height><depth>3</depth></size>"
            f"<object><name>hand</name><bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox>"
            "<contactstate>3</contactstate><handside>0</handside><unitdx>0.0</unitdx><unitdy>-1.0</unitdy><magnitude>40</magnitude></object>"
            f"<object><name>targetobject</name><bndbox><xmin>{box[0]}</xmin><ymin>{box[1] - 70}</ymin><xmax>{box[2]}</xmax><ymax>{box[1] - 10}</ymax></bndbox>"
            "<contactstate>None</contactstate><handside>None</handside></object></annotation>"
        )
    out = tmp_path / "out"
    proc = _lift([str(clips["two"].path), "--out", str(out), "--intrinsics", clips["two"].intrinsics, "--annotations", str(ann)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    traj = hoi.load(out / f"{TWO_HANDS}.hoi.npz")
    assert traj.hand_side == "left"
    wrist = traj.hand_joints[0, 0].astype(np.float64)
    u = FOCAL * wrist[0] / wrist[2] + 320
    assert LEFT_BOX[0] - 300 - 30 <= u <= LEFT_BOX[2] - 300 + 30  # the left hand, not the right one
    report = json.loads((out / f"{TWO_HANDS}.lift.json").read_text())
    assert report["extra"]["annotated"] and report["contact_frames"] == FRAMES
    # the object's size comes from the annotated box (73 px wide at the hand's depth)
    assert report["extra"]["object_diameter_m"] == pytest.approx(73 * report["median_depth_m"] / FOCAL, rel=0.15)


def test_lift_video_api(lifted, tmp_path):
    d, clips, _, _ = lifted
    # from the main environment: through the worker; hand-less and unreadable videos raise ValueErrors
    with pytest.raises(api.NoHandError, match="nohand.mp4: no hand is seen in 10 frames"):
        api.lift_video(d / "nohand.mp4", tmp_path / "a")
    with pytest.raises(ValueError, match="broken.mp4"):
        api.lift_video(d / "broken.mp4", tmp_path / "a")
    # 12 frames (0.4 s) cannot be retargeted: lifting says so and writes nothing
    with pytest.raises(api.NoSegmentError, match=r"slide.mp4: no segment passes the retargeting rule \(frames 0-11: spans 0.40 s"):
        api.lift_video(clips["slide"].path, tmp_path / "c", intrinsics=clips["slide"].intrinsics, max_frames=12)
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").iterdir())
    # inside the lifting environment (as a Ray task with its runtime_env): in-process, nothing of the main stack loaded
    code = (
        "import sys; from hop_data.lifting.api import lift_video; "
        f"p = lift_video({str(clips['slide'].path)!r}, {str(tmp_path / 'b')!r}, intrinsics={clips['slide'].intrinsics!r}); "
        "import numpy; assert numpy.__version__ < '2'; "
        "print(p, [m for m in ('zarr', 'numba', 'torch', 'hop_data.store') if m in sys.modules])"
    )
    proc = subprocess.run([str(LIFT_PYTHON), "-c", code], env=api.worker_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    path, loaded = proc.stdout.strip().rsplit(" ", 1)
    assert loaded == "[]" and Path(path).name == "slide.hoi.npz"
    assert hoi.load(path).num_frames == FRAMES


def _in_lift_env(code: str, timeout: int = 240) -> dict:
    """Run ``code`` in the lifting environment (MediaPipe, OpenCV); it prints one JSON line."""
    proc = subprocess.run([str(LIFT_PYTHON), "-c", code], env=api.worker_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


RECOVERY_CODE = r"""
import json, cv2, numpy as np
from hop_data.lifting import testclips, tracking
from hop_data.lifting.hands import MediaPipeHands, CropRedetector, HandObservation
from hop_data import hoi
photo = cv2.imread(str(testclips.SHARED_DATA / testclips.DRINK))[:, :, ::-1].copy()
whole = MediaPipeHands(video=False)
wrist = np.array(testclips.DRINK_RIGHT_WRIST)
ref = min(whole(photo), key=lambda o: np.linalg.norm(o.image_xy[0] - wrist))  # the pouring hand
def shrunk(f):
    # the photo shrunk by f in the middle of a 1280 x 720 frame: the same hand, farther away
    small = cv2.resize(photo, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    canvas = np.full((720, 1280, 3), 127, np.uint8)
    h, w = small.shape[:2]
    y0, x0 = (720 - h) // 2, (1280 - w) // 2
    canvas[y0:y0 + h, x0:x0 + w] = small
    return canvas, ref.image_xy * f + [x0, y0]
for f in (1.0, 0.8, 0.65, 0.5, 0.4, 0.3):
    frame, truth = shrunk(f)
    hits = [o for o in whole(frame) if np.linalg.norm(o.image_xy[0] - truth[0]) < 0.5 * np.ptp(truth, 0).max()]
    if not hits:
        break
rec = CropRedetector()
box = np.concatenate([truth.min(0), truth.max(0)])
found = rec(frame, box)
err = [float(np.median(np.linalg.norm(o.image_xy - truth, axis=1))) for o in found]
# through the tracker: the hand seen for 4 frames (given), then only the whole-frame detector (which misses)
tracker = tracking.HandTracker(30.0, recover=rec, carry=False)
for t in range(9):
    dets = [HandObservation(truth.copy(), ref.metric.copy(), "right", 0.9)] if t < 4 else whole(frame)
    tracker.step(t, dets, frame)
tr = max(tracker.finish(), key=lambda tr: len(tr.entries))
prov = [tr.entries[t].provenance if t in tr.entries else -1 for t in range(9)]
terr = [float(np.median(np.linalg.norm(tr.entries[t].obs.image_xy - truth, axis=1))) for t in range(4, 9) if t in tr.entries]
print(json.dumps(dict(f=f, hand_px=float(np.ptp(truth, 0).max()), found=len(found), err=err, prov=prov, tracker_err=terr,
                      calls=rec.calls, recovered=int(hoi.RECOVERED))))
"""


def test_crop_redetection_recovers_a_hand_the_whole_frame_detector_misses():
    r = _in_lift_env(RECOVERY_CODE)
    assert r["f"] < 1.0, r  # a scale was found where the whole-frame detector misses the hand
    assert r["found"] >= 1 and min(r["err"]) < 0.1 * r["hand_px"], r  # the crop finds it where it is
    # the tracker, having lost it, recovers it in the following frames (within its budget of crop runs)
    assert r["prov"][:4] == [0] * 4 and set(r["prov"][4:]) <= {r["recovered"], -1} and r["prov"][4:].count(r["recovered"]) >= 4, r
    assert max(r["tracker_err"]) < 0.1 * r["hand_px"], r


CARRY_CODE = r"""
import json, numpy as np
from hop_data import hoi
from hop_data.lifting import api, camera, hand_choice, testclips, tracking
clip = testclips.carry_clip()
K = camera.Intrinsics(*clip.intrinsics)
tracker = tracking.HandTracker(clip.fps, recover=None, carry=True)
for t, (frame, dets) in enumerate(zip(clip.frames, clip.detections)):
    tracker.step(t, dets, frame)
tracks = tracker.finish()
T = len(clip.frames)
entries, side, _ = hand_choice.follow_hand(tracks, T, clip.fps)
traj, stats = api.lift_observations(entries, clip.fps, K, side, "video/carry", api.LiftOptions())
err = np.linalg.norm(traj.hand_joints.astype(np.float64) - clip.joints, axis=-1)  # (T, 21)
h = clip.hidden_from
truth_move = clip.joints[-1].mean(0) - clip.joints[h - 1].mean(0)
got_move = traj.hand_joints[-1].astype(np.float64).mean(0) - traj.hand_joints[h - 1].astype(np.float64).mean(0)
print(json.dumps(dict(
    prov=traj.hand_provenance.tolist(), carried=int(hoi.CARRIED),
    err_seen=float(np.nanmax(err[:h])), err_hidden_median=float(np.nanmedian(err[h:])), err_hidden_max=float(np.nanmax(err[h:])),
    truth_move=truth_move.tolist(), got_move=got_move.tolist(), side=side,
)))
"""


def test_carrying_through_an_occlusion_reproduces_the_objects_rigid_motion():
    """The hand is seen for 20 frames, then hidden for 40 while the object it
    holds moves 21 cm (12 cm towards the camera) and turns 20 degrees: the
    carried hand follows the object's rigid motion, depth from its apparent scale."""
    r = _in_lift_env(CARRY_CODE)
    h = 20
    assert r["side"] == "right" and all(p == 0 for p in r["prov"][:h]), r["prov"]
    assert all(p == r["carried"] for p in r["prov"][h:]), r["prov"]  # every hidden frame carried
    assert r["err_seen"] < 0.004, r
    assert r["err_hidden_median"] < 0.01 and r["err_hidden_max"] < 0.02, r  # within 1-2 cm over 21 cm of motion
    np.testing.assert_allclose(r["got_move"], r["truth_move"], atol=0.012)


def test_video_with_an_unbridgeable_gap_gives_two_segments(tmp_path):
    """The hand leaves the view for 0.5 s (frames 60-74): lifting writes the
    two pieces around the gap, each its own file with its frame range in its
    source, each accepted by retargeting's loader and rule; the summary says
    what was dropped and why."""
    clip = testclips.sliding_clip(tmp_path / "gap.mp4", frames=135, step_px=(1.0, 0.0), focal=FOCAL, blank=(60, 75))
    out = tmp_path / "out"
    proc = _lift([str(clip.path), "--out", str(out), "--intrinsics", clip.intrinsics, "--results", str(tmp_path / "r.jsonl")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.strip().splitlines()[0]
    assert "2 segments covering 89%: frames 0-59 -> " in line and "frames 75-134 -> " in line, line
    assert "dropped: frames 60-74 (hand not found" in line, line
    report = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[0])
    assert report["status"] == "ok" and len(report["outputs"]) == 2
    assert [s["frames"] for s in report["segments"]] == [[0, 59], [75, 134]]
    assert report["dropped"] == [{"frames": [60, 74], "seconds": 0.5, "reason": "hand not found (not recovered, not carried)"}]
    assert report["provenance"]["unseen"] == pytest.approx(15 / 135, abs=0.01)
    for seg, (a, b) in zip(report["segments"], [(0, 59), (75, 134)]):
        path = Path(seg["file"])
        assert path.name == f"gap.f{a}-{b}.hoi.npz"
        traj = hoi.load(path)
        assert traj.source == f"video/gap/frames_{a}-{b}" == seg["source"] and traj.num_frames == b - a + 1
        hoi.prepare(traj)  # a file lifting calls ok is one retargeting accepts
        assert not np.isin(traj.hand_provenance, (hoi.UNSEEN,)).any()


def test_carrying_with_a_given_object_mask():
    """With the object's mask in the first frame, the object is followed from
    the start and the hidden hand is carried with it."""
    code = CARRY_CODE.replace(
        "tracker = tracking.HandTracker(clip.fps, recover=None, carry=True)",
        "tracker = tracking.HandTracker(clip.fps, recover=None, carry=True, object_mask=clip.object_mask)",
    ).replace("side=side,", "side=side, followed=len(tracker.object_mats),")
    r = _in_lift_env(code)
    assert r["followed"] == 60  # the object followed in every frame
    assert all(p == r["carried"] for p in r["prov"][20:]), r["prov"]
    assert r["err_hidden_median"] < 0.01 and r["err_hidden_max"] < 0.02, r


def test_object_mask_option_end_to_end(lifted, tmp_path):
    """--object-masks DIR: <stem>_mask.png (the bottle in the clip's first frame, from the shared mask) is followed."""
    from PIL import Image

    d, clips, _, _ = lifted
    mask = np.asarray(Image.open(testclips.SHARED_DATA / testclips.DRINK.replace(".jpg", "_mask.png")).convert("L")) > 0
    x0, y0 = 150, 200  # the slide clip's first crop window
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray((mask[y0 : y0 + 480, x0 : x0 + 640] * 255).astype(np.uint8)).save(masks / "slide_mask.png")
    out = tmp_path / "out"
    proc = _lift([str(clips["slide"].path), "--out", str(out), "--intrinsics", clips["slide"].intrinsics, "--object-masks", str(masks)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "slide.lift.json").read_text())
    assert report["extra"]["object_mask_given"] and report["extra"]["object_followed_frames"] >= 55
    proc = _lift([str(clips["slide"].path), "--out", str(out), "--object-masks", str(tmp_path / "nowhere")])
    assert proc.returncode == 2 and "object_masks" in proc.stderr


CUPS = testclips.SHARED_DATA / "hoi_video_cups.mp4"
WAVERING_CODE = r"""
import json, numpy as np
from hop_data.lifting import api, testclips
from hop_data.lifting.options import LiftOptions
frames, fps, w, h, _ = api.read_video(str(testclips.SHARED_DATA / "hoi_video_cups.mp4"), 75)
traj, stats = api.lift_frames(frames, fps, w, h, "video/cups", LiftOptions(no_recover=True, no_carry=True))
j = traj.hand_joints.astype(np.float64)
seen = np.isfinite(j).all(axis=(1, 2))
d = j[:, 9] - j[:, 0]
size = np.linalg.norm(d, axis=-1)
d /= size[:, None]
both = seen[1:] & seen[:-1]
turn = np.degrees(np.arccos(np.clip(np.sum(d[1:] * d[:-1], axis=-1), -1.0, 1.0)))[both]
print(json.dumps(dict(seen=int(seen.sum()), steps=int(both.sum()), max_turn=float(turn.max()),
                      size_ratio_min=float(size[seen].min() / np.median(size[seen])), dropped=stats["other_hand_frames_dropped"])))
"""


@pytest.mark.skipif(not CUPS.is_file(), reason=f"real hand-object video {CUPS} not found")
def test_a_hand_whose_handedness_wavers_does_not_flip():
    """The first 2.5 s of the real cups video: MediaPipe calls the hand on the
    cup a left hand in most frames and a right one in single frames, pointing
    the fingers at the camera every time. Reflections chosen frame by frame
    turned the lifted hand by up to 140 degrees between frames and smoothing
    folded it to 23 % of its size (retargeting then kept no attempt); chosen
    for the whole video, it turns smoothly, keeps its size, and the frames of
    the other hand are dropped."""
    r = _in_lift_env(WAVERING_CODE)
    assert r["seen"] >= 30 and r["steps"] >= 20, r
    assert r["max_turn"] < 45, r
    assert r["size_ratio_min"] > 0.9, r
    assert r["dropped"] > 0, r


WENT_WITH_CODE = r"""
import json, cv2, numpy as np
from hop_data.lifting.hands import HandObservation
from hop_data.lifting.object_flow import went_with_hand
rng = np.random.default_rng(0)
scene = cv2.GaussianBlur(rng.integers(0, 255, (360, 640)).astype(np.uint8), (5, 5), 0)  # a textured table
obj = cv2.GaussianBlur(rng.integers(0, 255, (110, 130)).astype(np.uint8), (3, 3), 0)  # a textured object under the fingers
# a hand (palm up the image, fingers pointing down at the object), 100 px tall
fingers = np.array([[-45, 10], [-30, 40], [-10, 45], [10, 45], [30, 40]], float)
xy = [[0.0, -50.0]]
for f in fingers:  # thumb and four fingers: 4 joints each, from the palm down to the tips
    xy += [list(f * (k / 4) + [0, -50 + 60 * k / 4]) for k in range(1, 5)]
hand = np.array(xy) + [320, 150]
def frame(hand_at, obj_at):
    g = scene.copy()
    y, x = obj_at
    g[y:y + 110, x:x + 130] = obj
    cv2.fillConvexPoly(g, cv2.convexHull(hand_at.astype(np.int32)), 200)
    return g
def obs(p):
    return HandObservation(p, np.zeros((21, 3)), "right", 0.9)
up = hand - [0, 60]
g0 = frame(hand, (170, 250))
out = {
    "lifted": went_with_hand(g0, frame(up, (110, 250)), obs(hand), obs(up), 1.0),  # the object went up with the hand
    "raised_empty": went_with_hand(g0, frame(up, (170, 250)), obs(hand), obs(up), 1.0),  # the hand rose, the object stayed
    "still": went_with_hand(g0, g0, obs(hand), obs(hand), 1.0),  # nothing to tell
}
print(json.dumps(out))
"""


def test_went_with_hand_tells_an_object_lifted_from_one_left_behind():
    """What the hand touched went with it (lifted) or stayed (a hand raised
    empty), from two frames; a hand that did not move tells nothing."""
    r = _in_lift_env(WENT_WITH_CODE, timeout=120)
    assert r["lifted"] > 0.3 and r["raised_empty"] < -0.3 and r["still"] is None, r


CUPS_CODE = r"""
import json, numpy as np
from hop_data.lifting import tracking, testclips
from hop_data.lifting.hands import make_hand_backend
from hop_data.lifting.video import read_video
frames, fps, w, h, n = read_video(str(testclips.SHARED_DATA / "hoi_video_cups.mp4"), None)
backend = make_hand_backend("mediapipe")
tracker = tracking.HandTracker(fps, recover=None, carry=True)
for t, f in enumerate(frames):
    if t >= 90:
        break
    tracker.step(t, backend(f), f)
backend.close()
hands = tracking.stitch(tracker.finish(), fps)
print(json.dumps([{"frames": len(hd.entries), "went": [s for _, s in hd.went_with().values()]} for hd in hands]))
"""


def test_went_with_hand_on_the_real_cups_video():
    """The first 3 s of the real cups video (two hands shuffle cups): the
    measure is made for both hands wherever they move, and it says both
    ways (cups moved with a hand; hands moving over a still scene)."""
    if not (testclips.SHARED_DATA / "hoi_video_cups.mp4").exists():
        pytest.skip(f"the real cups video is absent from {testclips.SHARED_DATA}")
    hands = [h for h in _in_lift_env(CUPS_CODE, timeout=600) if h["frames"] >= 30]
    assert len(hands) == 2
    for h in hands:
        went = np.array(h["went"])
        assert len(went) >= 5 and (went > 0.1).any() and (went < -0.1).any(), went.round(2)
