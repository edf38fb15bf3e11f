"""Following the interacting hand through a video: tracks by continuity,
recovery of a lost hand, carrying a hidden hand with the object it holds.

The hand backend gives, per frame, every hand it sees, each with a handedness
label that flips when the hand is half hidden (a hand seen edge-on or behind
an object is labelled "left" for a few frames, then "right" again). Following
the label makes the track jump between hands. This module follows hands by
continuity instead (ByteTrack-style) and picks the one that interacts:

1. **Tracks** (``HandTracker.step``, once per frame). Each track predicts
   its hand box: the palm centre moves at its recent velocity (damped while
   lost), the size stays. Detections are matched to predictions by a cost —
   centre distance over the box size, plus the log size ratio, plus (given
   frames) the colour-histogram distance to the track's appearance — inside a
   gate that widens while the hand is lost; greedy, cheapest first. The
   whole-frame detections are matched first (``OBSERVED``); a track still
   unmatched that was seen recently gets a second chance from low-threshold
   detections in a crop around its predicted box (``recover``, see
   ``hands.CropRedetector``; ``RECOVERED``), matched under a tighter gate and
   never starting a track. Whole-frame detections nobody claims start new
   tracks (confirmed after ``confirm_hits`` matches). The handedness label
   takes no part.
2. **Carrying** (``ObjectFlow``, needs OpenCV and frames). A confirmed track
   still unmatched right after being seen is carried: the image region its
   hand touches (the hand box, widened, reaching past the fingertips) is
   tracked by pyramidal Lucas-Kanade optical flow (forward-backward checked)
   as a similarity transform (translation, in-plane rotation, scale) — what
   moves coherently in that region, relative to the background around it,
   is the grasped object (and the hand itself where it is still visible).
   Each carried frame stores the transform from the last observed frame
   (``Carry``); the lifting step moves that frame's 3D hand rigidly with it,
   depth from the apparent scale. A carry ends when the track is matched
   again (validated), when the region's points are lost, when the predicted
   box leaves the image, or after ``max_carry_s``; the frames of a carry
   that is never validated are kept only if the region moved (an object was
   carried), else dropped.
3. **Identities** (``stitch``). Tracks that follow one another in time (one
   ends, another starts within ``stitch_s`` near where it ended, same
   measured handedness) are the same hand.
4. **The interacting hand** (``choose_hand``): the hand that lifts — for
   every hand seen, the tracker asks whether what it touched a few tenths of
   a second earlier went with it (``object_flow.went_with_hand``, stored in
   ``Track.went_with``); lifting then lifts each hand present for 2 s in 3D
   and prefers one whose wrist clearly rises against gravity while so
   (``hand_choice``). Else the hand that approaches and moves with an
   object — the longest presence plus travel (in hand sizes) plus frames
   carried while the object moved; ``side`` restricts the choice to hands
   of that measured handedness.
5. **Handedness** (``handedness``) is measured from the 3D joints' geometric
   chirality (``hoi.chirality``), averaged over the hand's frames, not taken
   from the label. The monocular landmarks are ambiguous up to a reflection
   in depth (a hand seen from the back or the palm projects alike); a frame
   whose chirality disagrees with the hand's is reflected in depth about the
   hand's centre (``consistent_metric``). Lifting chooses the reflections of
   a whole video at once (``hand_shape.steady_reflections``), so the
   geometry does not flip where the chirality wavers.

Only numpy at import; OpenCV is imported by ``ObjectFlow`` and the
appearance histogram (the lifting environment).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from hop_data import hoi

from . import hand_shape
from .hands import HandObservation



# ================================================================ geometry (image_geometry.py) and the object (object_flow.py)
from .image_geometry import IDENTITY, PALM, apply, box_size, compose, direction, iou, palm_centre, similarity_params, square_box  # noqa: E402,F401
from .object_flow import ObjectFlow, _WithObject, went_with_hand  # noqa: E402,F401


# ================================================================ per-frame entries
@dataclass
class Carry:
    """A carried frame: the hand of frame ``anchor`` (the last one observed)
    moved with the image similarity ``matrix`` (2, 3), pixels at the anchor
    frame -> pixels now; ``moved`` is how far (in hand boxes) the tracked
    region has moved since the anchor."""

    anchor: int
    matrix: np.ndarray
    moved: float = 0.0


@dataclass
class Entry:
    """One frame of a track: ``provenance`` (hoi.OBSERVED / RECOVERED /
    CARRIED), the observation (observed, recovered) or the carry."""

    provenance: int
    obs: HandObservation | None = None
    carry: Carry | None = None


@dataclass
class TrackerParams:
    """Knobs of the tracker (times in seconds, sizes in hand boxes)."""

    gate: float = 1.0  # max centre distance / box size for a match, at once
    gate_growth: float = 0.1  # ... plus this per frame lost
    gate_max: float = 2.0
    gate_recovered: float = 0.8  # low-threshold (crop) detections: a tighter gate
    max_scale_ratio: float = 2.2  # box size ratio beyond which nothing matches
    appearance_weight: float = 1.0
    direction_weight: float = 1.5  # weight of (1 - cos) / 2 of the wrist -> knuckle direction change
    max_turn_deg: float = 120.0  # a detection pointing this differently is another hand
    confirm_hits: int = 2
    nms_iou: float = 0.3
    max_lost_s: float = 1.0  # a track neither seen nor carried this long ends
    recover_s: float = 0.7  # crop re-detection is tried this long after the hand was last seen
    recover_budget: float = 0.5  # crop re-detections per frame on average (the cost bound: ~15 ms each)
    recover_min_hits: int = 4  # only for hands followed this many frames
    max_carry_s: float = 5.0
    min_carry_points: int = 5
    velocity_damping: float = 0.85  # per lost frame
    went_with_s: tuple[float, float] = (0.25, 0.6)  # does what the hand touched go with it: compared this long ago
    stitch_s: float = 2.5  # tracks this far apart in time may be one hand
    stitch_gate: float = 2.0  # ... if this close (box sizes), plus 2 box sizes per second apart


# ================================================================ one track
class Track:
    """One hand followed by continuity: its entries per frame and its motion state."""

    def __init__(self, tid: int, t: int, obs: HandObservation, hist: np.ndarray | None, confirm_hits: int = 2):
        self.id = tid
        self.confirm_hits = confirm_hits
        self.entries: dict[int, Entry] = {}
        self.centre = palm_centre(obs)
        self.velocity = np.zeros(2)
        self.size = box_size(obs)
        self._sizes = [self.size]
        self.box = obs.box()
        self.direction = direction(obs)
        self.hist = hist
        self.hits = 0
        self.last_seen = t  # last observed / recovered frame
        self.last_entry = t
        self.flow: ObjectFlow | None = None
        self.carry_anchor: int | None = None
        self.carry_moved = 0.0
        self.alive = True
        self.went_with: dict[int, tuple[int, float]] = {}  # frame t -> (earlier frame, object_flow.went_with_hand between them)
        self.observe(t, obs, hoi.OBSERVED, hist)

    # ---------------------------------------------------------------- state
    @property
    def confirmed(self) -> bool:
        return self.hits >= self.confirm_hits

    @property
    def first(self) -> int:
        return min(self.entries)

    @property
    def last(self) -> int:
        return max(self.entries)

    def predict(self, t: int, damping: float) -> tuple[np.ndarray, float]:
        """(centre, size) predicted at frame t."""
        if self.flow is not None and self.carry_anchor is not None and self.last_entry == t - 1:
            return self.centre, self.size  # the carried prediction of the previous frame
        lost = max(0, t - self.last_entry)
        # damped constant velocity: sum of v d^k for k = 0..lost-1
        gain = (1 - damping**lost) / (1 - damping) if damping < 1 else lost
        return self.centre + self.velocity * gain, self.size

    def observe(self, t: int, obs: HandObservation, provenance: int, hist: np.ndarray | None) -> None:
        c, s = palm_centre(obs), box_size(obs)
        dt = max(1, t - self.last_entry)
        if self.entries:
            v = (c - self.centre) / dt
            self.velocity = 0.5 * self.velocity + 0.5 * v if dt == 1 else v * 0.5
            self._sizes = (self._sizes + [s])[-7:]
            self.size = float(np.median(self._sizes))  # robust: one spread-fingers frame does not inflate it
        self.centre, self.box = c, obs.box()
        self.direction = direction(obs)
        if hist is not None:
            self.hist = hist if self.hist is None else 0.8 * self.hist + 0.2 * hist
        self.entries[t] = Entry(provenance, obs=obs)
        self.hits += 1
        self.last_seen = self.last_entry = t
        self.end_carry(validated=True)

    def end_carry(self, validated: bool) -> None:
        """Stop carrying. An unvalidated carry (the hand never seen again at the
        end of it) keeps its frames only if the region moved."""
        if self.carry_anchor is None:
            return
        if not validated and self.carry_moved < 0.5:
            for k in [k for k, e in self.entries.items() if e.carry is not None and e.carry.anchor == self.carry_anchor]:
                del self.entries[k]
            self.last_entry = max(self.entries)
        self.flow = None
        self.carry_anchor = None
        self.carry_moved = 0.0

    def frames(self) -> np.ndarray:
        return np.array(sorted(self.entries), dtype=int)

    def chirality(self) -> float:
        """Mean clipped chirality of the observed / recovered frames (> 0: right-hand geometry)."""
        values = [hoi.chirality(e.obs.metric) for e in self.entries.values() if e.obs is not None]
        values = [v for v in values if np.isfinite(v)]
        return float(np.mean(np.clip(values, -0.5, 0.5))) if values else 0.0


# ================================================================ the tracker
def same_hand(a: HandObservation, b: HandObservation, thr: float = 0.3) -> bool:
    """Two detections of one hand: boxes overlapping by more than ``thr`` IoU,
    or palm centres closer than a third of the smaller box."""
    if iou(a.box(), b.box()) > thr:
        return True
    return float(np.linalg.norm(palm_centre(a) - palm_centre(b))) < min(box_size(a), box_size(b)) / 3.0


def _nms(dets: list[HandObservation], thr: float) -> list[HandObservation]:
    """Keep one of several detections of the same hand (``same_hand``), the highest scored."""
    keep: list[HandObservation] = []
    for d in sorted(dets, key=lambda o: -o.score):
        if not any(same_hand(d, k, thr) for k in keep):
            keep.append(d)
    return keep


def appearance(rgb: np.ndarray | None, box: np.ndarray) -> np.ndarray | None:
    """Normalised hue-saturation histogram (16 x 4) of the box in an RGB frame (None without a frame)."""
    if rgb is None:
        return None
    import cv2

    h, w = rgb.shape[:2]
    x1, y1 = int(max(0, box[0])), int(max(0, box[1]))
    x2, y2 = int(min(w, box[2])), int(min(h, box[3]))
    if x2 - x1 < 4 or y2 - y1 < 4:
        return None
    step = max(1, int(max(x2 - x1, y2 - y1) // 48))
    patch = np.ascontiguousarray(rgb[y1:y2:step, x1:x2:step])
    hsv = cv2.cvtColor(patch, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [16, 4], [0, 180, 0, 256]).ravel()
    return hist / max(1e-9, hist.sum())


def _hist_distance(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None:
        return 0.0
    return float(math.sqrt(max(0.0, 1.0 - float(np.sum(np.sqrt(a * b))))))  # Hellinger, 0..1


class HandTracker:
    """Online hand tracking (see the module doc). Call ``step`` once per frame
    with the whole-frame detections (and, for appearance, recovery and
    carrying, the RGB frame); ``tracks`` then holds every track.

    ``recover(rgb, box, attempt) -> list[HandObservation]``: low-threshold
    detections in a crop around ``box`` (``hands.CropRedetector``; ``attempt``
    counts the tries for this loss, to vary the crop); None: no recovery.
    ``carry``: track hidden hands with the region they touch (needs frames and OpenCV).
    ``object_mask`` (H, W) bool: the object in the first frame; it is then
    followed all along, and a hand hidden while touching it is carried with
    it (instead of with the region around the hand)."""

    def __init__(
        self,
        fps: float,
        params: TrackerParams | None = None,
        recover: Callable[[np.ndarray, np.ndarray, int], list[HandObservation]] | None = None,
        carry: bool = True,
        object_mask: np.ndarray | None = None,
    ):
        self.fps = float(fps)
        self.p = params or TrackerParams()
        self.recover = recover
        self.carry = carry
        self.tracks: list[Track] = []
        self._next = 0
        self._gray: np.ndarray | None = None  # previous frame, grey, downscaled for flow
        self._gray_scale = 1.0
        self.recover_calls = 0
        self._budget = 0.0
        self.object_mask = object_mask
        self.object: ObjectFlow | None = None  # the given object, followed from the first frame
        self.object_mats: dict[int, np.ndarray] = {}  # frame -> similarity, first-frame pixels -> that frame's
        self.image_size: tuple[int, int] | None = None
        self._greys: dict[int, np.ndarray] = {}  # the last few grey frames (went_with_hand)

    def _frames(self, seconds: float) -> int:
        return max(1, int(round(seconds * self.fps)))

    # ---------------------------------------------------------------- matching
    def _cost(self, tr: Track, t: int, d: HandObservation, hist: np.ndarray | None, gate: float) -> float | None:
        c, s = tr.predict(t, self.p.velocity_damping)
        dist = float(np.linalg.norm(palm_centre(d) - c)) / s
        ratio = box_size(d) / s
        if dist > gate or not (1 / self.p.max_scale_ratio <= ratio <= self.p.max_scale_ratio):
            return None
        cos = float(np.dot(tr.direction, direction(d)))
        if cos < math.cos(math.radians(self.p.max_turn_deg)) and np.any(tr.direction):
            return None
        turn = 0.5 * (1.0 - cos) if np.any(tr.direction) else 0.0
        return dist + abs(math.log(ratio)) + self.p.appearance_weight * _hist_distance(tr.hist, hist) + self.p.direction_weight * turn

    def _gate(self, tr: Track, t: int) -> float:
        lost = t - tr.last_entry - 1
        return min(self.p.gate_max, self.p.gate + self.p.gate_growth * max(0, lost) + (0.5 if tr.carry_anchor is not None else 0.0))

    def _associate(self, tracks: list[Track], t: int, dets: list[HandObservation], hists: list, gate_of) -> tuple[list, list[int]]:
        pairs = []
        for i, tr in enumerate(tracks):
            g = gate_of(tr)
            for j, d in enumerate(dets):
                cost = self._cost(tr, t, d, hists[j], g)
                if cost is not None:
                    pairs.append((cost, i, j))
        used_t, used_d, matches = set(), set(), []
        for cost, i, j in sorted(pairs):
            if i not in used_t and j not in used_d:
                used_t.add(i)
                used_d.add(j)
                matches.append((tracks[i], j))
        return matches, [j for j in range(len(dets)) if j not in used_d]

    # ---------------------------------------------------------------- per frame
    def step(self, t: int, detections: list[HandObservation], rgb: np.ndarray | None = None) -> None:
        if rgb is not None:
            self.image_size = (rgb.shape[1], rgb.shape[0])
        gray = self._grey(rgb) if (rgb is not None and self.carry) else None
        if gray is not None and self.object_mask is not None:
            self._follow_object(t, gray)
        dets = _nms(list(detections), self.p.nms_iou)
        hists = [appearance(rgb, d.box()) for d in dets]
        alive = [tr for tr in self.tracks if tr.alive]
        # stage 1: whole-frame detections, confirmed tracks first
        order = sorted(alive, key=lambda tr: (not tr.confirmed, -tr.hits))
        matches, free = self._associate(order, t, dets, hists, lambda tr: self._gate(tr, t))
        taken = list(dets)  # every hand found this frame: a crop must find another
        matched = set()
        for tr, j in matches:
            tr.observe(t, dets[j], hoi.OBSERVED, hists[j])
            matched.add(tr.id)
        for j in free:
            # a detection where a lost (or carried) hand is predicted is that hand, whatever its pose
            rescue = [
                tr for tr in alive
                if tr.id not in matched and tr.confirmed
                and np.linalg.norm(palm_centre(dets[j]) - tr.predict(t, self.p.velocity_damping)[0]) <= tr.size
            ]  # fmt: skip
            if rescue:
                tr = min(rescue, key=lambda tr: np.linalg.norm(palm_centre(dets[j]) - tr.predict(t, self.p.velocity_damping)[0]))
                tr.observe(t, dets[j], hoi.OBSERVED, hists[j])
                matched.add(tr.id)
                continue
            tr = Track(self._next, t, dets[j], hists[j], self.p.confirm_hits)  # unclaimed: a new hand
            self._next += 1
            self.tracks.append(tr)
            matched.add(tr.id)
        for tr in alive:  # a carried guess sitting on a hand another track sees ends there
            if tr.id not in matched and tr.carry_anchor is not None:
                c, s = tr.predict(t, self.p.velocity_damping)
                if any(np.linalg.norm(palm_centre(d) - c) < 0.5 * s for d in dets):
                    tr.end_carry(validated=True)
                    tr.alive = False
        # stage 2: recovery in a crop around the predicted hand (low threshold, tight gate), within a budget
        lost = [tr for tr in alive if tr.id not in matched and tr.hits >= self.p.recover_min_hits]
        self._budget = min(3.0, self._budget + self.p.recover_budget)
        if self.recover is not None and rgb is not None:
            for tr in sorted(lost, key=lambda tr: (t - tr.last_seen, -tr.hits)):
                since = t - tr.last_seen
                if self._budget < 1.0:
                    break
                if since > self._frames(self.p.recover_s) and tr.carry_anchor is None:
                    continue
                if since > 3 and since % 2:  # every frame at first, then every other one
                    continue
                c, s = tr.predict(t, self.p.velocity_damping)
                if not self._inside(c, s):
                    continue
                self._budget -= 1.0
                self.recover_calls += 1
                cands = _nms(self.recover(rgb, square_box(c, s), since - 1), self.p.nms_iou)
                cands = [d for d in cands if not any(same_hand(d, k, self.p.nms_iou) for k in taken)]
                if not cands:
                    continue
                ch = [appearance(rgb, d.box()) for d in cands]
                m, _ = self._associate([tr], t, cands, ch, lambda _: self.p.gate_recovered + 0.5 * (tr.carry_anchor is not None))
                if m:
                    tr.observe(t, cands[m[0][1]], hoi.RECOVERED, ch[m[0][1]])
                    taken.append(cands[m[0][1]])
                    matched.add(tr.id)
        # stage 3: carry hidden hands with the region they touch
        for tr in alive:
            if tr.id in matched:
                continue
            if not (self.carry and gray is not None and tr.confirmed and self._carry_step(tr, t, gray)):
                if tr.carry_anchor is not None:
                    tr.end_carry(validated=False)
                if t - tr.last_entry > self._frames(self.p.max_lost_s):
                    tr.alive = False
        for tr in self.tracks:  # unconfirmed tracks die fast
            if tr.alive and not tr.confirmed and t - tr.last_entry > 2:
                tr.alive = False
        if gray is not None:
            self._went_with(t, gray, alive)
            self._gray = gray

    def _went_with(self, t: int, gray: np.ndarray, tracks: list[Track]) -> None:
        """For each hand seen now: did what it touched a few tenths of a second
        ago go with it (``object_flow.went_with_hand``)?"""
        lo, hi = self._frames(self.p.went_with_s[0]), self._frames(self.p.went_with_s[1])
        self._greys[t] = gray
        for k in [k for k in self._greys if k < t - hi]:
            del self._greys[k]
        for tr in tracks:
            now = tr.entries.get(t)
            if not tr.confirmed or now is None or now.obs is None:
                continue
            earlier = [k for k in range(t - lo, t - hi - 1, -1) if k in self._greys and k in tr.entries and tr.entries[k].obs is not None]
            if earlier:
                f = went_with_hand(self._greys[earlier[0]], gray, tr.entries[earlier[0]].obs, now.obs, self._gray_scale)
                if f is not None:
                    tr.went_with[t] = (earlier[0], f)

    def finish(self) -> list[Track]:
        for tr in self.tracks:
            if tr.carry_anchor is not None:
                tr.end_carry(validated=False)
            tr.alive = False
        return [tr for tr in self.tracks if tr.confirmed and tr.entries]

    # ---------------------------------------------------------------- helpers
    def _inside(self, c: np.ndarray, s: float) -> bool:
        """The predicted box lies at least half inside the image."""
        if self.image_size is None:
            return True
        w, h = self.image_size
        box = square_box(c, s)
        ix = max(0.0, min(w, box[2]) - max(0.0, box[0]))
        iy = max(0.0, min(h, box[3]) - max(0.0, box[1]))
        return ix * iy >= 0.5 * s * s

    def _grey(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        h, w = rgb.shape[:2]
        scale = min(1.0, 640.0 / max(w, h))
        self._gray_scale = scale
        g = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        return cv2.resize(g, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_AREA) if scale < 1 else g

    def _follow_object(self, t: int, gray: np.ndarray) -> None:
        """Follow the given object (mask at the first frame) into frame t."""
        import cv2

        if self.object is None and not self.object_mats:
            m = cv2.resize(np.asarray(self.object_mask, np.uint8) * 255, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_NEAREST)
            self.object = ObjectFlow(gray, None, self._gray_scale, self.p.min_carry_points, mask=m)
            if self.object.ok:
                self.object_mats[t] = IDENTITY.copy()
            else:
                self.object = None
        elif self.object is not None:
            if self.object.step(gray):
                self.object_mats[t] = self.object.matrix.copy()
            else:
                self.object = None

    def _object_box(self, t: int) -> np.ndarray | None:
        """The given object's box at frame t (None where it is not followed)."""
        if t not in self.object_mats or self.object is None:
            return None
        x1, y1, x2, y2 = self.object.box
        corners = apply(self.object_mats[t], np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]]))
        return np.concatenate([corners.min(axis=0), corners.max(axis=0)])

    def _carry_step(self, tr: Track, t: int, gray: np.ndarray) -> bool:
        """Carry ``tr`` into frame t; False when it cannot be carried."""
        if tr.carry_anchor is None:
            last = tr.entries.get(t - 1)
            if last is None or last.obs is None or self._gray is None:
                return False  # carry only right after the hand was seen
            obox = self._object_box(t - 1)
            hand = last.obs.box()
            grown = np.concatenate([hand[:2] - 0.25 * (hand[2:] - hand[:2]), hand[2:] + 0.25 * (hand[2:] - hand[:2])])
            if obox is not None and iou(grown, obox) > 0:  # the hand touches the given object: carry it with that
                tr.flow = _WithObject(self, t - 1)  # type: ignore[assignment]
            else:
                tr.flow = ObjectFlow(self._gray, last.obs, self._gray_scale, self.p.min_carry_points)
            if not tr.flow.ok:
                tr.flow = None
                return False
            tr.carry_anchor = t - 1
        assert tr.flow is not None
        if t - tr.carry_anchor > self._frames(self.p.max_carry_s) or not tr.flow.step(gray):
            return False
        A = tr.flow.matrix
        anchor = tr.entries[tr.carry_anchor].obs
        centre = apply(A, palm_centre(anchor))
        scale, _ = similarity_params(A)
        size = box_size(anchor) * scale
        if not self._inside(centre, size):
            return False
        tr.carry_moved = max(tr.carry_moved, tr.flow.moved / max(1.0, box_size(anchor)))
        tr.entries[t] = Entry(hoi.CARRIED, carry=Carry(tr.carry_anchor, A.copy(), tr.carry_moved))
        tr.velocity = centre - tr.centre
        tr.centre, tr.size = centre, size
        tr.last_entry = t
        return True


# ================================================================ identities and the hand to follow
@dataclass
class Hand:
    """One hand through the video: its tracks (in time order) and their entries."""

    tracks: list[Track]
    entries: dict[int, Entry] = field(default_factory=dict)
    chirality: float = 0.0
    score: float = 0.0

    @property
    def side(self) -> str:
        return "right" if self.chirality >= 0 else "left"

    def went_with(self) -> dict[int, tuple[int, float]]:
        """Frame -> (earlier frame, ``object_flow.went_with_hand`` between them), over its tracks."""
        out: dict[int, tuple[int, float]] = {}
        for tr in self.tracks:
            for k, v in getattr(tr, "went_with", {}).items():
                e = self.entries.get(k)
                if e is not None and e.obs is not None:
                    out[k] = v
        return out


def _chirality_of(entries: dict[int, Entry]) -> float:
    values = [hoi.chirality(e.obs.metric) for e in entries.values() if e.obs is not None]
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(np.clip(values, -0.5, 0.5))) if values else 0.0


def _last_seen(entries: dict[int, Entry]) -> int:
    return max(k for k, e in entries.items() if e.obs is not None)


def _centre_at(entries: dict[int, Entry], k: int) -> np.ndarray:
    e = entries[k]
    if e.obs is not None:
        return palm_centre(e.obs)
    return apply(e.carry.matrix, palm_centre(entries[e.carry.anchor].obs))  # type: ignore[union-attr]


def stitch(tracks: list[Track], fps: float, params: TrackerParams | None = None) -> list[Hand]:
    """Group tracks into hands: a track that starts after another's last
    sight, within ``stitch_s``, near where that one was (seen or carried) and
    of the same measured handedness (when both are clear) continues it. The
    earlier track's carried frames from the later one's start on are
    dropped: an observation supersedes a carried guess."""
    p = params or TrackerParams()
    hands: list[Hand] = []
    for tr in sorted(tracks, key=lambda tr: tr.first):
        ch = tr.chirality()
        b = tr.entries[tr.first].obs
        best, best_d = None, None
        for hand in hands:
            seen_last = _last_seen(hand.entries)
            gap = (tr.first - seen_last) / fps
            if gap <= 0 or gap > p.stitch_s:
                continue
            if any(e.obs is not None for k, e in hand.entries.items() if k >= tr.first):
                continue  # the hand was seen meanwhile: another hand
            hch = _chirality_of(hand.entries)
            if abs(ch) > 0.1 and abs(hch) > 0.1 and np.sign(ch) != np.sign(hch):
                continue
            before = max(k for k in hand.entries if k < tr.first)
            size = max(box_size(b), hand.tracks[-1].size)
            d = float(np.linalg.norm(palm_centre(b) - _centre_at(hand.entries, before))) / size
            if d <= p.stitch_gate + 2.0 * (tr.first - before) / fps and (best_d is None or d < best_d):
                best, best_d = hand, d
        if best is None:
            best = Hand([])
            hands.append(best)
        for k in [k for k in best.entries if k >= tr.first]:
            del best.entries[k]  # carried frames superseded by the observation
        best.tracks.append(tr)
        best.entries.update(tr.entries)
    for hand in hands:
        hand.chirality = _chirality_of(hand.entries)
        hand.score = interaction_score(hand.entries, fps)
    return hands


def interaction_score(entries: dict[int, Entry], fps: float) -> float:
    """How much a hand interacts: seconds present, plus a quarter of its travel
    in hand boxes (it approaches and moves things), plus the seconds it was
    carried while the object moved."""
    frames = sorted(entries)
    seen = [(t, entries[t].obs) for t in frames if entries[t].obs is not None]
    travel = 0.0
    for (t0, a), (t1, b) in zip(seen, seen[1:]):
        if t1 - t0 <= 3:
            travel += float(np.linalg.norm(palm_centre(b) - palm_centre(a))) / max(box_size(a), box_size(b))
    carried = sum(1 for t in frames if entries[t].carry is not None and entries[t].carry.moved >= 0.5)
    return len(frames) / fps + 0.25 * travel + carried / fps


def choose_hand(
    hands: list[Hand], side: str = "auto", boxes: dict[int, np.ndarray] | None = None, lifts: dict[int, object] | None = None,
    min_frames: int = 0,
) -> Hand | None:
    """The hand to follow: with annotated boxes (frame -> the acting hand's
    box) the hand overlapping them most; else, among the hands of ``side``
    (``auto``: any), the one that lifts clearly (``lifts``: id(hand) ->
    ``hand_choice.Lift``; among hands present at least ``min_frames``, a
    lift of ``hand_choice.MIN_LIFT_M`` and ``hand_choice.CLEARER`` times the
    others'), else the one with the highest ``interaction_score`` (a right
    hand when two are within 10 %)."""
    if not hands:
        return None
    if boxes:
        def overlap(h: Hand) -> float:
            return sum(iou(h.entries[k].obs.box(), b) for k, b in boxes.items() if k in h.entries and h.entries[k].obs is not None)

        best = max(hands, key=overlap)
        if overlap(best) > 0:
            return best
    pool = [h for h in hands if side == "auto" or h.side == side]
    if not pool:
        return None
    if lifts:
        from .hand_choice import Lift, lifts_clearly

        able = [h for h in pool if len(h.entries) >= min_frames and id(h) in lifts]
        for h in able:
            if lifts_clearly(lifts[id(h)], [lifts.get(id(o), Lift()) for o in able if o is not h]):  # type: ignore[arg-type]
                return h
    top = max(h.score for h in pool)
    # near-ties (within 10 %) go to a right hand: the robot's, no mirroring needed
    return max(pool, key=lambda h: (h.score >= 0.9 * top and h.side == "right", h.score))


def consistent_metric(obs: HandObservation, side: str) -> np.ndarray:
    """The observation's metric joints with the chirality of ``side``: a frame
    whose geometry is of the other hand is reflected in depth about the
    hand's centre (the reflection a monocular view cannot tell)."""
    m = np.asarray(obs.metric, dtype=np.float64)
    ch = hoi.chirality(m)
    if np.isfinite(ch) and (ch < 0) == (side == "right") and ch != 0:
        return hand_shape.reflect_in_depth(m)
    return m


def track_detections(
    detections: list[list[HandObservation]], fps: float, params: TrackerParams | None = None
) -> list[Track]:
    """Tracks from per-frame detections alone (no frames: no appearance, no
    recovery, no carrying) — for tests and for backends without images."""
    tracker = HandTracker(fps, params, recover=None, carry=False)
    for t, dets in enumerate(detections):
        tracker.step(t, dets)
    return tracker.finish()
