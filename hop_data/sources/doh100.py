"""100 Days of Hands (100DOH) annotations: PASCAL-VOC XML per frame -> per-video
hand / object boxes and contact flags, for the lifting step.

The published schema (one ``<annotation>`` per frame image; the hand-object
detector's ``pascal_voc.py`` reads the same fields)::

    <annotation>
      <filename>boardgame_v_W_qdSiPKSdQ_frame000019.jpg</filename>
      <size><width>1280</width><height>720</height><depth>3</depth></size>
      <object>
        <name>hand</name>                     hand | targetobject
        <bndbox><xmin>..</xmin><ymin>..</ymin><xmax>..</xmax><ymax>..</ymax></bndbox>   1-based pixels
        <contactstate>3</contactstate>        0 no contact, 1 self, 2 other person, 3 portable object, 4 stationary object
        <handside>1</handside>                0 left, 1 right
        <unitdx>..</unitdx> <unitdy>..</unitdy>   unit vector hand-box centre -> its object's box centre
        <magnitude>..</magnitude>             that offset's length in pixels
      </object> ...
    </annotation>

Fields may hold the text ``None`` (targetobject entries do); those read as
absent. Boxes are converted to 0-based pixels (x1, y1, x2, y2).

Frames are grouped into videos by the image name: ``<video>_frame<N>`` or
``<video>_<N>`` (N the frame number in that video), e.g.
``boardgame_v_W_qdSiPKSdQ_frame000019`` -> video ``boardgame_v_W_qdSiPKSdQ``,
frame 19. ``import_doh100`` writes one ``<video>.doh.json`` per video; the
lifting step (``--annotations DIR``) reads the one whose video id is the
video file's stem and uses it to pick the acting hand (the side most often in
contact with a portable object), the hand to follow in each annotated frame
(its box), the object's size (its box) and the contact interval (frames
whose acting hand holds a portable object; between annotated frames the
nearest annotated frame rules).

Only the standard library and numpy: the lifting environment imports this.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "hop-doh100"
VERSION = 1
CONTACT_STATES = {0: "no_contact", 1: "self", 2: "other_person", 3: "portable_object", 4: "stationary_object"}
PORTABLE = 3
STATIONARY = 4
HAND_SIDES = {0: "left", 1: "right"}
_FRAME_NAME = re.compile(r"^(?P<video>.+?)_(?:frame)?(?P<frame>\d+)$")


class AnnotationError(ValueError):
    """An annotation file that breaks the schema; the message names the file and the problem."""


@dataclass
class HandBox:
    box: list[float]  # x1, y1, x2, y2, 0-based pixels
    side: str  # "left" | "right"
    contact: int  # 0-4, CONTACT_STATES
    offset: list[float] | None = None  # unit vector to the object's box centre (None when absent)
    magnitude: float | None = None  # its length in pixels

    @property
    def centre(self) -> np.ndarray:
        b = np.asarray(self.box, dtype=np.float64)
        return 0.5 * (b[:2] + b[2:])


@dataclass
class FrameAnnotation:
    frame: int
    image: str
    width: int | None
    height: int | None
    hands: list[HandBox] = field(default_factory=list)
    objects: list[list[float]] = field(default_factory=list)  # boxes, 0-based pixels


def split_frame_name(name: str) -> tuple[str, int]:
    """``boardgame_v_W_qdSiPKSdQ_frame000019.jpg`` -> (``boardgame_v_W_qdSiPKSdQ``, 19)."""
    stem = Path(name).stem
    m = _FRAME_NAME.match(stem)
    if not m:
        raise ValueError(f"{name!r} does not end in _frame<N> or _<N>: cannot tell its video and frame")
    return m.group("video"), int(m.group("frame"))


def _text(node: ET.Element, tag: str) -> str | None:
    child = node.find(tag)
    if child is None or child.text is None or child.text.strip() in ("", "None"):
        return None
    return child.text.strip()


def _number(node: ET.Element, tag: str, path: str, kind: type = float) -> float | None:
    text = _text(node, tag)
    if text is None:
        return None
    try:
        return kind(float(text)) if kind is int else float(text)
    except ValueError:
        raise AnnotationError(f"{path}: <{tag}> must be a number, got {text!r}") from None


def parse_voc_xml(path: str | os.PathLike) -> tuple[str, FrameAnnotation]:
    """One frame's XML -> (video id, FrameAnnotation). AnnotationError names
    the file and the problem (unparsable XML, missing box coordinates, a
    contact state or hand side outside the schema)."""
    path = str(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise AnnotationError(f"{path}: not a readable XML annotation ({e})") from None
    if root.tag != "annotation":
        raise AnnotationError(f"{path}: root element is <{root.tag}>, expected <annotation>")
    image = _text(root, "filename") or Path(path).stem
    try:
        video, frame = split_frame_name(image)
    except ValueError as e:
        raise AnnotationError(f"{path}: {e}") from None
    size = root.find("size")
    width = int(_number(size, "width", path) or 0) or None if size is not None else None
    height = int(_number(size, "height", path) or 0) or None if size is not None else None
    ann = FrameAnnotation(frame=frame, image=image, width=width, height=height)
    for i, obj in enumerate(root.findall("object")):
        name = (_text(obj, "name") or "").lower()
        bb = obj.find("bndbox")
        if bb is None:
            raise AnnotationError(f"{path}: object {i} ({name}) has no <bndbox>")
        coords = [_number(bb, t, path) for t in ("xmin", "ymin", "xmax", "ymax")]
        if any(c is None for c in coords):
            raise AnnotationError(f"{path}: object {i} ({name}) <bndbox> lacks one of xmin, ymin, xmax, ymax")
        box = [max(float(c) - 1.0, 0.0) for c in coords]  # VOC is 1-based
        if box[2] < box[0] or box[3] < box[1]:
            raise AnnotationError(f"{path}: object {i} ({name}) box {coords} has max < min")
        if name == "hand":
            contact = _number(obj, "contactstate", path, int)
            contact = 0 if contact is None else int(contact)
            if contact not in CONTACT_STATES:
                raise AnnotationError(f"{path}: object {i} <contactstate> must be 0-4, got {contact}")
            side = _number(obj, "handside", path, int)
            if side is None or int(side) not in HAND_SIDES:
                raise AnnotationError(f"{path}: object {i} <handside> must be 0 (left) or 1 (right), got {side}")
            dx, dy = _number(obj, "unitdx", path), _number(obj, "unitdy", path)
            mag = _number(obj, "magnitude", path)
            ann.hands.append(
                HandBox(
                    box=box, side=HAND_SIDES[int(side)], contact=contact,
                    offset=[dx, dy] if dx is not None and dy is not None else None, magnitude=mag,
                )
            )  # fmt: skip
        elif name == "targetobject":
            ann.objects.append(box)
        else:
            raise AnnotationError(f"{path}: object {i} <name> must be 'hand' or 'targetobject', got {name!r}")
    return video, ann


@dataclass
class VideoAnnotations:
    """One video's annotated frames (sparse: 100DOH annotates sampled frames)."""

    video: str
    frames: dict[int, FrameAnnotation]

    # ------------------------------------------------------------ queries
    def acting_side(self) -> str | None:
        """The side most often in contact with a portable object, else with a
        stationary one, else the side most often annotated (ties: right)."""
        for states in ({PORTABLE}, {STATIONARY}, set(CONTACT_STATES)):
            count = {"right": 0, "left": 0}
            for f in self.frames.values():
                for h in f.hands:
                    if h.contact in states:
                        count[h.side] += 1
            if count["right"] or count["left"]:
                return "right" if count["right"] >= count["left"] else "left"
        return None

    def acting_hand(self, frame: int, side: str | None = None) -> HandBox | None:
        """The annotated hand of ``side`` (default: the acting side) in ``frame``;
        with two of that side, the one in portable contact, then the larger."""
        side = side or self.acting_side()
        f = self.frames.get(frame)
        if f is None or side is None:
            return None
        cands = [h for h in f.hands if h.side == side]
        if not cands:
            return None
        return max(cands, key=lambda h: (h.contact == PORTABLE, (h.box[2] - h.box[0]) * (h.box[3] - h.box[1])))

    def object_box(self, frame: int, side: str | None = None) -> list[float] | None:
        """The object box the acting hand points at in ``frame`` (the object
        whose centre is nearest to hand centre + magnitude * unit offset;
        without an offset, the object nearest to the hand)."""
        f = self.frames.get(frame)
        hand = self.acting_hand(frame, side)
        if f is None or hand is None or not f.objects:
            return None
        target = hand.centre
        if hand.offset is not None and hand.magnitude is not None:
            target = target + hand.magnitude * np.asarray(hand.offset, dtype=np.float64)
        centres = np.array([[0.5 * (b[0] + b[2]), 0.5 * (b[1] + b[3])] for b in f.objects])
        return f.objects[int(np.argmin(np.linalg.norm(centres - target, axis=1)))]

    def contact_mask(self, num_frames: int, side: str | None = None) -> np.ndarray | None:
        """(num_frames,) bool: the acting hand holds a portable object. Each
        video frame takes the state of the nearest annotated frame (None when
        no frame is annotated). Annotated frames past the video's end are ignored."""
        keys = sorted(k for k in self.frames if 0 <= k < num_frames)
        if not keys:
            return None
        states = np.array([(h := self.acting_hand(k, side)) is not None and h.contact == PORTABLE for k in keys])
        k = np.asarray(keys)
        idx = np.clip(np.searchsorted(k, np.arange(num_frames)), 0, len(k) - 1)
        prev = np.clip(idx - 1, 0, len(k) - 1)
        t = np.arange(num_frames)
        nearest = np.where(np.abs(k[prev] - t) <= np.abs(k[idx] - t), prev, idx)
        return states[nearest]

    # ------------------------------------------------------------ files
    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "video": self.video,
            "frames": [asdict(self.frames[k]) for k in sorted(self.frames)],
        }

    @classmethod
    def from_json(cls, data: dict, name: str = "<json>") -> VideoAnnotations:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise AnnotationError(f"{name}: not a {FORMAT} file (format {data.get('format') if isinstance(data, dict) else None!r})")
        if data.get("version") != VERSION:
            raise AnnotationError(f"{name}: version {data.get('version')!r}, this code reads {VERSION}")
        frames = {}
        try:
            for f in data["frames"]:
                hands = [HandBox(**h) for h in f.get("hands", [])]
                frames[int(f["frame"])] = FrameAnnotation(
                    frame=int(f["frame"]), image=f["image"], width=f.get("width"), height=f.get("height"),
                    hands=hands, objects=[list(map(float, b)) for b in f.get("objects", [])],
                )  # fmt: skip
        except (KeyError, TypeError, ValueError) as e:
            raise AnnotationError(f"{name}: malformed frame entry ({type(e).__name__}: {e})") from None
        return cls(video=str(data["video"]), frames=frames)

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.to_json(), indent=1))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> VideoAnnotations:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise AnnotationError(f"{path}: not a readable JSON annotation file ({e})") from None
        return cls.from_json(data, str(path))


def read_xml_dir(src: str | os.PathLike) -> tuple[dict[str, VideoAnnotations], list[str]]:
    """Every ``*.xml`` under ``src`` (recursively) -> ({video: annotations}, errors).
    A file that breaks the schema is reported in ``errors`` and skipped."""
    videos: dict[str, VideoAnnotations] = {}
    errors: list[str] = []
    for path in sorted(Path(src).rglob("*.xml")):
        try:
            video, ann = parse_voc_xml(path)
        except AnnotationError as e:
            errors.append(str(e))
            continue
        videos.setdefault(video, VideoAnnotations(video, {})).frames[ann.frame] = ann
    return videos, errors


def import_doh100(src: str | os.PathLike, out: str | os.PathLike) -> tuple[list[Path], list[str]]:
    """``hop-data import doh100 SRC --out DIR``: the XML files under SRC ->
    one ``DIR/<video>.doh.json`` per video. Returns (written paths, errors)."""
    if not Path(src).is_dir():
        raise FileNotFoundError(f"{src}: no such directory")
    videos, errors = read_xml_dir(src)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return [v.save(out / f"{name}.doh.json") for name, v in sorted(videos.items())], errors


def find_annotations(video_stem: str, directory: str | os.PathLike) -> VideoAnnotations | None:
    """The annotations of the video whose file stem is ``video_stem`` in
    ``directory``: ``<stem>.doh.json``, else the XML files there whose video
    id is the stem (or a suffix of it, e.g. stem ``hoi_boardgame_v_X`` and id
    ``boardgame_v_X``). None when there are none."""
    directory = Path(directory)
    exact = directory / f"{video_stem}.doh.json"
    if exact.is_file():
        return VideoAnnotations.load(exact)
    for path in sorted(directory.glob("*.doh.json")):
        vid = path.name[: -len(".doh.json")]
        if video_stem.endswith(vid):
            return VideoAnnotations.load(path)
    videos, _ = read_xml_dir(directory)
    for vid, ann in sorted(videos.items(), key=lambda kv: -len(kv[0])):
        if video_stem == vid or video_stem.endswith(vid):
            return ann
    return None
