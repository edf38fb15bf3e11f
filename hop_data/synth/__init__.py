"""Synthetic corpus of human hand-object interactions in format 1 (``*.hoi.npz``).

The embedded default input of the demo and the tests: videos that look like
captured data after lifting (camera frame, metric, noisy, with dropouts), of a
person reaching for an object on a table, grasping it, lifting, carrying and
placing it, and withdrawing the hand.

How a video is made (``make_episode``), all in a z-up table frame first:

* Object: box, cylinder, sphere, mug (cylinder with a handle) or bar (a long
  box lying down), random size; ``object_points`` are 512 points sampled
  uniformly by area on its surface, in its own frame (origin at its centre).
* Hand: a kinematic 21-joint hand (``HandModel``) with anthropometric bone
  lengths (wrist -> middle MCP 9 cm times a per-video scale 0.85-1.15, each
  segment varied a few per cent), posed by three postural synergies
  (flexion of all fingers, thumb opposition, spread; after Santello et al.
  1998) around a relaxed rest posture.
* Grasp: a power grasp from the side (thumb up, the body's axis oblique
  across the palm as in real cylindrical grasps) for upright boxes, cylinders
  and mugs (handle away from the palm); from above for spheres, bars and low
  boxes: a palm grasp for objects wider than 0.8 hand sizes, otherwise a
  precision grasp with the object between thumb tip and finger tips. The
  pre-shape opens the hand to the object's size plus a 2-3.5 cm margin
  (maximum grip aperture, Jeannerod 1984). At the grasp pose the palm is
  backed off until clear, then each finger closes along its flexion synergy
  until one of its joints or segment midpoints touches the object surface or
  the table (signed distance vs. the finger radius), and the thumb picks the
  palmar abduction whose first contact best opposes the fingers: the digits
  end in contact with the object, wrapping round it.
* Motion: minimum-jerk profiles (Flash & Hogan 1985), overlapping
  sub-movements: rest -> reach with pre-shaping -> final approach (from the
  side or from above) -> close -> lift 10-25 cm -> carry 10-22 cm (with a yaw
  change) -> set down -> release -> withdraw. While held, the object is rigidly
  fixed in the hand frame; otherwise it rests on the table. One tempo per
  video scales all phases: 3-8 s in total, at 24, 30 or 60 fps. The wrist
  stays within a ~0.45 m square and the hand 0-35 cm above the table, like a
  table-top robot's workspace.
* Left hands (20 %): the whole table-frame scene is mirrored (y -> -y), so the
  hand has genuine left-hand geometry and reaches from the left.
* Camera: a static camera looking down at the table (pitch 35-63 deg) from
  the person's side or from across it, with a small roll, placed so that hand
  and object stay 0.4-0.9 m in front of it;
  rows are stored in its OpenCV frame (x right, y down, z forward), gravity
  is the camera-frame unit vector of down.
* Sensor-like noise: 2-3 mm Gaussian jitter per joint coordinate plus a
  smooth common depth wobble; short hand dropouts (NaN frames, < 0.2 s),
  occasionally a single unseen fingertip, occasionally a few frames of unknown
  object pose; 1 mm / 0.5 deg jitter on the object pose.

Determinism: video ``i`` of seed ``s`` is drawn from
``np.random.default_rng([s, i])`` alone, so it does not depend on how many
videos are made, and ``save`` writes fixed zip timestamps: the same seed gives
the same bytes.

Modules, in the order ``make_episode`` uses them: ``objects``
(``ObjectShape``), ``hand`` (``HandModel``, postures and synergies,
``Person``), ``grasp`` (grasp type, pre-shape, fitting the digits), ``motion``
(timeline, rest pose, object path, wrist path, fingers), ``capture`` (camera,
sensor noise, dropouts), ``episode`` (``SynthVideo``, ``make_episode``,
``synthesize``).
Import the public names from here.
"""

from __future__ import annotations

from .episode import (
    FPS_CHOICES,
    FPS_PROBABILITIES,
    LEFT_HAND_PROBABILITY,
    NUM_OBJECT_POINTS,
    SynthVideo,
    make_episode,
    make_trajectory,
    synthesize,
    video_rng,
)
from .hand import (
    FINGER_RADIUS_M,
    HAND_SCALE_RANGE,
    HAND_SIZE_M,
    NUM_POSTURE,
    PALM_THICKNESS_M,
    POSTURE_LOWER,
    POSTURE_REST,
    POSTURE_UPPER,
    SYNERGY_FLEX,
    SYNERGY_OPPOSITION,
    SYNERGY_SPREAD,
    THUMB_ABDUCTION,
    HandModel,
    Person,
    _digit_points,  # noqa: F401 (tests probe the digits' contact points)
)
from .motion import min_jerk
from .objects import SHAPE_PROBABILITIES, SHAPES, ObjectShape

__all__ = [
    "FINGER_RADIUS_M",
    "FPS_CHOICES",
    "FPS_PROBABILITIES",
    "HAND_SCALE_RANGE",
    "HAND_SIZE_M",
    "LEFT_HAND_PROBABILITY",
    "NUM_OBJECT_POINTS",
    "NUM_POSTURE",
    "PALM_THICKNESS_M",
    "POSTURE_LOWER",
    "POSTURE_REST",
    "POSTURE_UPPER",
    "SHAPES",
    "SHAPE_PROBABILITIES",
    "SYNERGY_FLEX",
    "SYNERGY_OPPOSITION",
    "SYNERGY_SPREAD",
    "THUMB_ABDUCTION",
    "HandModel",
    "ObjectShape",
    "Person",
    "SynthVideo",
    "make_episode",
    "make_trajectory",
    "min_jerk",
    "synthesize",
    "video_rng",
]
