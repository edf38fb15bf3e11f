"""What a retargeting run is told: ``RetargetConfig`` (how one trajectory is
retargeted) and ``RetargetJob`` (input files into a store), the one place of
their defaults. ``hop-data retarget`` is built from ``RetargetRunConfig``, the
Ray service's ``GenerateConfig`` extends ``RetargetJob``; both hold a
``RetargetConfig``. Light: no kinematics, simulator or store is imported here
(what the nested attempt and scene configurations need loads on first use).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..options import nested, option

if TYPE_CHECKING:
    from hop_robot.sim import SceneConfig

    from .attempts import AttemptConfig

# Why an attempt was not kept, one cause each, in this order of precedence (the
# first that applies): its placement was refused before simulating (the hand
# would go under the table, the object starts off it, the wrist path is out of
# the arm's reach), its keypoint error reached the threshold, an arm link
# touched table, floor or an obstacle, the hand touched something (only with
# reject_hand_contact). Kept attempts are "accepted". An input refused as a
# whole (unreadable, malformed, mislabelled hand, no interaction) is counted
# per video, not per attempt ("refused_input").
ACCEPTED = "accepted"
PLACEMENT_CAUSES = ("under_table", "off_table", "unreachable")
REJECTION_CAUSES = (*PLACEMENT_CAUSES, "keypoint_error", "arm_contact", "hand_contact")

SOLVERS = ("batched", "nlopt")  # batched Levenberg-Marquardt (fast path), NLopt L-BFGS (the paper's reference)

# λ of Eq. 1. The paper gives no value; with it a 0.1 rad change of every joint
# costs about as much as a 1.5 mm keypoint error, so tracking dominates and
# the regulariser only picks among near-equal solutions (redundant arm,
# finger abduction).
DEFAULT_SMOOTHNESS = 1e-3
# λ of the 16 hand joints. A joint's change moves the keypoints by about its
# lever times the angle: ~0.5 m for the arm, 5-10 cm for a finger joint. With
# the arm's λ a finger joint would be held back ~100x harder for the same
# keypoint displacement, and φ is where the simulated finger *is*: it lags a
# closing finger by 0.3-0.5 rad and stops short where fingers touch each other,
# so the regulariser pulled the solved fingers back toward it and the fingertip
# error of real hand poses grew to 15-20 mm at the grasp (docs/retargeting.md,
# "Fingertip error"). λ scaled by (finger lever / arm lever)^2 ~ 0.1.
DEFAULT_HAND_SMOOTHNESS = 1e-4
# weight w of the four fingertips in Eq. 1's keypoint sum (palm and finger bases: 1).
# The Allegro's layout is not a scaled human hand (knuckles 8.7 cm apart against
# ~5.5 cm, the thumb's base ~5 cm from where a human thumb MCP lands): the base
# keypoints keep 2-3 cm residuals whatever the joints do, and with equal weights
# they hold the palm where some fingertips cannot be reached. Tripled, the arm
# moves the palm toward the fingertips (what touches the object): on real hand
# poses the kept fingertip error p95 halves (21 -> 11 mm) while the mean keypoint
# error stays (13.4 against 13.7 mm median). docs/retargeting.md, "Fingertip error".
DEFAULT_FINGERTIP_WEIGHT = 3.0


def _attempt_config() -> AttemptConfig:
    from .attempts import AttemptConfig  # imported when used: building a command line needs no simulator

    return AttemptConfig()


def _scene_config() -> SceneConfig:
    from hop_robot.sim import SceneConfig

    return SceneConfig()


@dataclass(frozen=True)
class RetargetConfig:
    """Retargeting; defaults are the paper's where it gives them."""

    attempts: int = option(700, "randomised attempts per video (paper: 700)")
    error_threshold: float = option(
        0.03, "m, keep attempts whose mean keypoint error stays below it on every judged step (paper: 3 cm)"
    )
    reject_arm_contact: bool = True  # paper: no arm contact with table or floor
    allow_no_interaction: bool = option(
        False, "retarget inputs whose recorded contact shows no hand-object interaction (refused by default)"
    )
    reject_hand_contact: bool = False
    lead_in_s: float = 1.0  # s of the first frame held before the motion (recorded, not judged)
    smoothness: float = DEFAULT_SMOOTHNESS  # λ of Eq. 1, the arm's 7 joints
    hand_smoothness: float = DEFAULT_HAND_SMOOTHNESS  # λ of Eq. 1, the hand's 16 joints
    fingertip_weight: float = DEFAULT_FINGERTIP_WEIGHT  # w of the fingertip keypoints (the others: 1)
    solver: str = option(SOLVERS[0], "batched (the fast path) or nlopt (the paper's reference)", choices=SOLVERS)
    attempt: AttemptConfig = field(default_factory=_attempt_config)
    scene: SceneConfig = field(default_factory=_scene_config)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if not self.error_threshold > 0:
            raise ValueError(f"error_threshold must be > 0 m, got {self.error_threshold}")
        if self.smoothness < 0 or self.hand_smoothness < 0:
            raise ValueError(f"smoothness must be >= 0, got {self.smoothness}, {self.hand_smoothness}")
        if not self.fingertip_weight > 0:
            raise ValueError(f"fingertip_weight must be > 0, got {self.fingertip_weight}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")


@dataclass
class RetargetJob:
    """Input files retargeted into a store: what one process and the Ray service share."""

    inputs: list[str] = option(help="*.hoi.npz files, directories or glob patterns", positional=True)
    store: str = option(help="store path or fsspec URL (created if missing)")
    retarget: RetargetConfig = nested(RetargetConfig, "retargeting")
    seed: int = option(0, "run seed: attempt seeds derive from it and the source id")


@dataclass
class RetargetRunConfig(RetargetJob):
    """``hop-data retarget``: one process, one store shard."""

    threads: int = option(0, "simulator threads (0: all cores)")
    writer_id: str = option("retarget", "the store shard this process writes")
