"""Export a trained policy as one TorchScript file that needs only ``torch``.

The file's module has the contract the robot side (``hop_robot.policy``) relies on::

    forward(proprio: (B, T, 23) float radians,
            points:  (B, T, P, 3) float metres, robot base frame,
            mask:    (B, T) bool, True on valid steps, windows left-padded)
        -> (B, 23) float radians: the next joint targets for the last step T-1

    1 <= T <= context; P == num_points; mask[:, -1] must be True.

Inside, proprioception is scaled to [-1, 1] by the joint limits, the model runs,
the action of the last step is taken and unscaled by the same limits.

Two more methods split ``forward`` for callers that cache the per-step point
tokens (the robot runner: only the newest cloud is new each control step)::

    encode_points(points (..., P, 3)) -> (..., d)
    act_from_tokens(proprio (B, T, 23), point_tokens (B, T, d), mask (B, T)) -> (B, 23)

Attributes (plain TorchScript attributes, readable after ``torch.jit.load``):
``format_version`` (int), ``embodiment`` (str), ``joint_names`` (List[str]),
``joint_lower``/``joint_upper`` (List[float], radians), ``control_hz`` (int),
``context`` (int), ``num_points`` (int), ``positions`` (str: ``window`` or
``relative``, ``HopPolicy(positions=...)``; files from before it have none and
are ``window``).

A relative-position policy's file also carries its incremental form, for
callers that step many envs (``hop_train.evaluate.BatchedPolicy``)::

    init_cache(num_envs) -> List[Tensor]
    step(cache, proprio (N, 23) rad, point_tokens (N, d), reset (N,) bool) -> (N, 23) rad

and its ``context`` is the history its actions depend on, the model's
``receptive_field`` (``num_layers * (band - 1) + 1`` steps): a caller that
keeps that many steps, as the robot loop does with ``context``, gets from
``forward`` exactly what ``step`` gives over the episode.

``load_state_dict_safely`` loads weights (a plain state dict or a Lightning
checkpoint) with ``weights_only=True`` and names every key that does not fit.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections import Counter
from typing import List, Sequence

import torch
from torch import Tensor, nn

from hop_robot.embodiment.spec import CONTROL_HZ, EMBODIMENT_NAME, JOINT_LOWER, JOINT_NAMES, JOINT_UPPER

__all__ = ["FORMAT_VERSION", "IncompatibleCheckpointError", "export_policy", "load_state_dict_safely"]

FORMAT_VERSION = 1


class _DeployedPolicy(nn.Module):
    """Radians in, radians out, metadata attached. Scripted by ``export_policy``."""

    def __init__(
        self,
        model: nn.Module,
        joint_names: List[str],
        joint_lower: List[float],
        joint_upper: List[float],
        control_hz: int,
        context: int,
        num_points: int,
        embodiment: str,
    ) -> None:
        super().__init__()
        self.model = model
        self.format_version: int = FORMAT_VERSION
        self.embodiment: str = embodiment
        self.joint_names: List[str] = list(joint_names)
        self.joint_lower: List[float] = [float(v) for v in joint_lower]
        self.joint_upper: List[float] = [float(v) for v in joint_upper]
        self.control_hz: int = int(control_hz)
        self.context: int = int(context)
        self.num_points: int = int(num_points)
        self.positions: str = str(getattr(model, "positions", "window"))
        self.num_joints: int = len(self.joint_names)
        lower = torch.tensor(self.joint_lower, dtype=torch.float32)
        upper = torch.tensor(self.joint_upper, dtype=torch.float32)
        self.register_buffer("q_mid", (upper + lower) / 2)
        self.register_buffer("q_half", (upper - lower) / 2)

    def forward(self, proprio: Tensor, points: Tensor, mask: Tensor) -> Tensor:
        self._check_window(proprio, mask)
        b = proprio.shape[0]
        t = proprio.shape[1]
        if points.dim() != 4 or points.shape[0] != b or points.shape[1] != t or points.shape[3] != 3:
            raise ValueError(f"points must be (B, T, P, 3) = ({b}, {t}, P, 3), got {list(points.shape)}")
        return self.act_from_tokens(proprio, self.encode_points(points), mask)

    @torch.jit.export
    def encode_points(self, points: Tensor) -> Tensor:
        """``points (..., P, 3)`` metres -> point tokens ``(..., d)``; per step, cacheable."""
        if points.dim() < 2 or points.shape[-1] != 3 or points.shape[-2] != self.num_points:
            raise ValueError(f"points must be (..., {self.num_points}, 3), got {list(points.shape)}")
        return self.model.encode_points(points.to(torch.float32))

    @torch.jit.export
    def act_from_tokens(self, proprio: Tensor, point_tokens: Tensor, mask: Tensor) -> Tensor:
        """``forward`` with the clouds already encoded: ``point_tokens (B, T, d)``."""
        self._check_window(proprio, mask)
        if point_tokens.dim() != 3 or point_tokens.shape[:2] != proprio.shape[:2]:
            raise ValueError(f"point_tokens must be (B, T, d), got {list(point_tokens.shape)}")
        t = proprio.shape[1]
        scaled = (proprio.to(torch.float32) - self.q_mid) / self.q_half
        actions = self.model.forward_tokens(scaled, point_tokens, mask, True)  # last step only
        return actions[:, 0] * self.q_half + self.q_mid

    def _check_window(self, proprio: Tensor, mask: Tensor) -> None:
        """Shapes and left padding of a window; ``ValueError`` naming what is wrong."""
        if proprio.dim() != 3 or proprio.shape[2] != self.num_joints:
            raise ValueError(f"proprio must be (B, T, {self.num_joints}), got {list(proprio.shape)}")
        b = proprio.shape[0]
        t = proprio.shape[1]
        if t < 1 or t > self.context:
            raise ValueError(f"window length T must be in [1, {self.context}] (the context), got {t}")
        if mask.dtype != torch.bool or mask.dim() != 2 or mask.shape[0] != b or mask.shape[1] != t:
            raise ValueError(f"mask must be bool (B, T) = ({b}, {t}), got {mask.dtype} {list(mask.shape)}")
        if not bool(mask[:, t - 1].all()):
            raise ValueError("mask[:, -1] must be True: windows are left-padded, the last step is the current one")


class _IncrementalDeployedPolicy(_DeployedPolicy):
    """``_DeployedPolicy`` plus the relative-position model's cached step, in radians."""

    @torch.jit.export
    def init_cache(self, num_envs: int) -> List[Tensor]:
        """Fresh per-env key/value caches for ``step`` (``HopPolicy.init_cache``)."""
        return self.model.init_cache(num_envs)

    @torch.jit.export
    def step(self, cache: List[Tensor], proprio: Tensor, point_tokens: Tensor, reset: Tensor) -> Tensor:
        """Next joint targets ``(N, 23)`` rad of N envs, one step each (``HopPolicy.step``):
        ``proprio (N, 23)`` rad, ``point_tokens (N, d)``, ``reset (N,)`` bool."""
        if proprio.dim() != 2 or proprio.shape[1] != self.num_joints:
            raise ValueError(f"proprio must be (N, {self.num_joints}), got {list(proprio.shape)}")
        scaled = (proprio.to(torch.float32) - self.q_mid) / self.q_half
        return self.model.step(cache, scaled, point_tokens, reset) * self.q_half + self.q_mid


def export_policy(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    joint_names: Sequence[str] = JOINT_NAMES,
    joint_lower: Sequence[float] = tuple(JOINT_LOWER.tolist()),
    joint_upper: Sequence[float] = tuple(JOINT_UPPER.tolist()),
    control_hz: int = CONTROL_HZ,
    context: int | None = None,
    num_points: int | None = None,
    embodiment: str = EMBODIMENT_NAME,
    check: bool = True,
) -> str:
    """Script ``model`` (a ``HopPolicy``, or a module with its ``encode_points``
    and ``forward_tokens``) wrapped
    in the radians-in/radians-out contract above and save it to ``path``.

    ``context`` and ``num_points`` default to the model's own. For a
    relative-position model the file's ``context`` is its ``receptive_field``
    (module doc); a ``context`` equal to the model's band (what checkpoints
    record) means the same. The caller's model is not modified (a CPU eval
    copy is scripted). With ``check`` the saved file is loaded back and
    compared with the eager model on a random left-padded batch, and a
    relative model's ``step`` with its windows (raises if they differ by more
    than 1e-4 rad). Returns the path written.
    """
    relative = bool(getattr(model, "relative", False))
    history = getattr(model, "receptive_field", getattr(model, "context", context))  # steps an action depends on
    if context is None or (relative and context == model.context):
        context = history
    context = int(context)
    num_points = int(num_points if num_points is not None else getattr(model, "num_points"))
    if context > history:
        raise ValueError(f"context {context} exceeds the steps the model's actions depend on ({history})")
    if not (len(joint_names) == len(joint_lower) == len(joint_upper)):
        raise ValueError(
            f"joint_names, joint_lower, joint_upper differ in length: "
            f"{len(joint_names)}, {len(joint_lower)}, {len(joint_upper)}"
        )
    if any(hi <= lo for lo, hi in zip(joint_lower, joint_upper)):
        raise ValueError("every joint_upper must exceed its joint_lower")
    num_joints = getattr(model, "num_joints", len(joint_names))
    if num_joints != len(joint_names):
        raise ValueError(f"model acts on {num_joints} joints but {len(joint_names)} joint names were given")

    eager = copy.deepcopy(model).cpu().eval()
    deployed = _IncrementalDeployedPolicy if relative else _DeployedPolicy
    wrapper = deployed(
        eager, list(joint_names), list(joint_lower), list(joint_upper), control_hz, context, num_points, embodiment
    ).eval()
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with warnings.catch_warnings():  # TorchScript is deprecated upstream; it is still the one torch-only format
        warnings.simplefilter("ignore", DeprecationWarning)  # with methods + attributes that loads without our code
        torch.jit.script(wrapper).save(path)
        if check:
            _check_parity(wrapper, torch.jit.load(path), len(joint_names), context, num_points)
    return path


def _check_parity(eager: nn.Module, loaded: torch.jit.ScriptModule, num_joints: int, context: int, num_points: int):
    g = torch.Generator().manual_seed(0)
    lower = eager.q_mid - eager.q_half
    proprio = lower + torch.rand(3, context, num_joints, generator=g) * 2 * eager.q_half
    points = torch.rand(3, context, num_points, 3, generator=g) * 0.3 + torch.tensor([0.5, -0.15, 0.0])
    mask = torch.ones(3, context, dtype=torch.bool)
    mask[1, : context // 2] = False
    with torch.inference_mode():
        expected = eager(proprio, points, mask)
        split = loaded.act_from_tokens(proprio, loaded.encode_points(points), mask)
        diff = max((expected - loaded(proprio, points, mask)).abs().max().item(), (expected - split).abs().max().item())
        if eager.positions == "relative":
            diff = max(diff, _step_difference(eager, loaded, proprio, points))
    if not diff <= 1e-4:
        raise RuntimeError(f"exported policy differs from the eager model by {diff} rad")


def _step_difference(eager: nn.Module, loaded: torch.jit.ScriptModule, proprio: Tensor, points: Tensor) -> float:
    """Largest difference (rad) between the file's ``step`` over an episode and the
    eager model's windows from the episode's start (equal for the relative variant)."""
    tokens = loaded.encode_points(points)
    cache = loaded.init_cache(proprio.shape[0])
    reset = torch.arange(proprio.shape[1]) == 0
    diff = 0.0
    for k in range(proprio.shape[1]):
        stepped = loaded.step(cache, proprio[:, k], tokens[:, k], reset[k].expand(proprio.shape[0]))
        window = eager(proprio[:, : k + 1], points[:, : k + 1], torch.ones(proprio.shape[0], k + 1, dtype=torch.bool))
        diff = max(diff, (stepped - window).abs().max().item())
    return diff


# ---------------------------------------------------------------- checkpoints
class IncompatibleCheckpointError(ValueError):
    """The checkpoint's tensors do not fit the model; the message lists them."""


def load_state_dict_safely(model: nn.Module, path: str | os.PathLike, *, prefix: str | None = None) -> nn.Module:
    """Load weights from ``path`` into ``model`` (in place; returns it).

    ``path`` holds a state dict or a Lightning checkpoint (its ``state_dict``).
    Loading uses ``torch.load(weights_only=True)``: no code in the file runs.
    Keys are matched after removing ``prefix`` (e.g. ``"model."`` for a
    LightningModule holding the policy as ``self.model``); ``None`` detects it:
    no prefix if any key matches as is, else the most common prefix in front of
    the model's key names. Keys under other prefixes (e.g. a critic) are ignored.

    Raises ``IncompatibleCheckpointError`` listing missing, unexpected and
    shape-mismatched keys; nothing is loaded then.
    """
    try:
        blob = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refusals, truncated files
        raise IncompatibleCheckpointError(f"cannot read {path} with weights_only=True: {exc}") from exc
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise IncompatibleCheckpointError(f"{path} holds no state dict of tensors (got {type(blob).__name__})")

    expected = model.state_dict()
    if prefix is None:
        prefix = _detect_prefix(state, expected)
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}

    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or mismatched:
        lines = [f"checkpoint {path} does not fit {type(model).__name__} (key prefix {prefix!r}):"]
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if keys:
                shown = ", ".join(keys[:20]) + (f", ... ({len(keys) - 20} more)" if len(keys) > 20 else "")
                lines.append(f"  {title} ({len(keys)}): {shown}")
        raise IncompatibleCheckpointError("\n".join(lines))
    model.load_state_dict(state, strict=True)
    return model


def _detect_prefix(state: dict, expected: dict) -> str:
    if set(state) & set(expected):
        return ""
    prefixes: Counter[str] = Counter()
    for key in state:
        for name in expected:
            if key.endswith("." + name):
                prefixes[key[: len(key) - len(name)]] += 1
    return prefixes.most_common(1)[0][0] if prefixes else ""
