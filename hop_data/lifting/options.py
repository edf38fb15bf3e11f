"""What video lifting can be told, once: ``LiftOptions`` (one video's lifting,
``lift_video``'s keyword options) and ``LiftJob`` (a batch: videos, output
directory, options). ``hop-data lift`` and the lifting worker build their
command lines from them (``add_lift_arguments``), and ``api.worker_command``
turns options back into the worker's arguments. Runs in both environments.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from hop_data.options import add_options, add_output_switches, nested, option

from hop_data import hoi

from . import camera, objects
from .hands import BACKENDS as HAND_BACKENDS

SIDES = ("auto", "right", "left")
OBJECT_SHAPES = ("cylinder", "box")


@dataclass
class LiftOptions:
    """Lifting options."""

    hands: str = option(HAND_BACKENDS[0], "hand backend", choices=HAND_BACKENDS)
    objects: str = option(
        objects.OBJECT_BACKENDS[0], "object backend (anchored: a proxy held in the hand)", choices=objects.OBJECT_BACKENDS
    )
    intrinsics: str | None = option(None, "fx,fy,cx,cy in pixels (default: estimated from the image size)")
    fov_deg: float = option(camera.DEFAULT_FOV_DEG, "long-side field of view (deg) used when estimating intrinsics")
    camera_pitch: float | None = option(
        None, "degrees the camera looks down (0: level, 90: straight down); gravity from it "
        "(default: estimated from the hand's motion while it holds the object, else a level camera, with a note)",
    )
    annotations: str | None = option(
        None, "directory of 100 Days of Hands annotations (hop-data import doh100 output, or XML)"
    )
    object_masks: str | None = option(
        None, "directory of object masks <stem>_mask.png (the object in the video's first frame): hidden hands touching it are carried with it"
    )
    side: str = option(
        SIDES[0], "hand to follow (auto: the hand that interacts; right / left: the interacting hand of that side, measured from the joints)", choices=SIDES
    )
    hand_size: float | None = option(None, "wrist to middle knuckle in metres (default: the video's median)")
    no_rigid_palm: bool = option(False, "keep the backend's per-frame palm shapes (default: the hand's own palm, fitted rigidly in every frame)")
    smooth_window_s: float = option(0.3, "Savitzky-Golay smoothing window in seconds (polynomial order 2)")
    depth_window_s: float = option(0.5, "running-median window of the hand's depth in seconds (0: off)")
    max_gap_s: float = option(
        hoi.RETARGET_RULE.max_gap_s, "gaps up to this long are interpolated (s; at most the retargeting rule's)"
    )
    no_recover: bool = option(False, "do not re-detect a lost hand in crops around its predicted box")
    no_carry: bool = option(False, "do not carry a hidden hand with the object it holds (optical flow)")
    max_carry_s: float = option(5.0, "carry a hidden hand at most this long (s)")
    max_segment_s: float = option(
        4.0, "split longer segments where the hand is slowest (s; 0: never) — retargeting judges every step of a file"
    )
    outlier_m: float = option(0.15, "drop frames this far (m) from their neighbours' median")
    fps: float | None = option(None, "frame rate when the file's is missing or wrong")
    max_frames: int | None = option(None, "lift at most this many frames per video")
    object_shape: str = option(OBJECT_SHAPES[0], "proxy primitive", choices=OBJECT_SHAPES)
    source_prefix: str = option("video", "source id = <prefix>/<video stem>")

    def validated(self) -> LiftOptions:
        if self.hands not in HAND_BACKENDS:
            raise ValueError(f"hands must be one of {list(HAND_BACKENDS)}, got {self.hands!r}")
        if self.objects not in objects.OBJECT_BACKENDS:
            raise ValueError(f"objects must be one of {list(objects.OBJECT_BACKENDS)}, got {self.objects!r}")
        if self.intrinsics is not None:
            camera.Intrinsics.parse(self.intrinsics)
        if self.side not in SIDES:
            raise ValueError(f"side must be auto, right or left, got {self.side!r}")
        if self.hand_size is not None and not 0.04 <= self.hand_size <= 0.15:
            raise ValueError(f"hand_size is wrist -> middle knuckle in metres (0.04-0.15), got {self.hand_size}")
        if self.camera_pitch is not None and not -90.0 <= self.camera_pitch <= 90.0:
            raise ValueError(f"camera_pitch is in degrees, -90 to 90 (0: level, 90: straight down), got {self.camera_pitch}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.object_masks is not None and not Path(self.object_masks).is_dir():
            raise ValueError(f"object_masks: {self.object_masks} is not a directory")
        if self.annotations is not None and not Path(self.annotations).is_dir():
            raise ValueError(f"annotations: {self.annotations} is not a directory")
        if not 0 <= self.max_gap_s <= hoi.RETARGET_RULE.max_gap_s:
            raise ValueError(f"max_gap_s must be 0-{hoi.RETARGET_RULE.max_gap_s} s (the retargeting rule's), got {self.max_gap_s}")
        if self.max_segment_s and self.max_segment_s < 2 * hoi.RETARGET_RULE.min_duration_s:
            raise ValueError(f"max_segment_s must be 0 (never split) or >= {2 * hoi.RETARGET_RULE.min_duration_s} s, got {self.max_segment_s}")
        if not self.max_carry_s >= 0:
            raise ValueError(f"max_carry_s must be >= 0, got {self.max_carry_s}")
        if self.object_shape not in OBJECT_SHAPES:
            raise ValueError(f"object_shape must be cylinder or box, got {self.object_shape!r}")
        return self


@dataclass
class LiftJob:
    """Videos lifted into a directory (``hop-data lift``, the lifting worker)."""

    videos: list[str] = option(help="video files, directories of videos, or glob patterns", positional=True)
    out: str = option(help="output directory for <stem>.hoi.npz (and <stem>.lift.json)")
    options: LiftOptions = nested(LiftOptions)
    results: str | None = option(None, "append one JSON line per video to this file")

    def __post_init__(self) -> None:
        self.options.validated()


def add_lift_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``hop-data lift`` and of the worker (the same)."""
    add_options(parser, LiftJob)
    add_output_switches(
        parser, json_help="print one JSON summary instead of lines", quiet_help="no progress bars and no per-video lines"
    )
