"""Run an exported policy file on the robot computer (torch + numpy only).

The file is written by ``hop_train.export.export_policy``; its contract:
``forward(proprio (B, T, 23) rad, points (B, T, P, 3) m, mask (B, T) bool) ->
(B, 23) rad`` and metadata attributes (format_version, embodiment,
joint_names, joint_lower, joint_upper, control_hz, context, num_points).
``ExportedPolicy`` refuses a file whose metadata disagree with
``hop_robot.embodiment.spec`` and refuses non-finite outputs.

A relative-position policy (``positions == "relative"``) is run the same way:
its file's ``context`` is the history its actions depend on, so the window
forward over that history is exactly its incremental form (``init_cache`` /
``step``, kept through ``optimize`` for batched callers).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch

from hop_robot.embodiment import spec

__all__ = ["ExportedPolicy", "PolicyMismatchError", "SUPPORTED_FORMAT_VERSIONS", "EXPECTED_NUM_POINTS"]

SUPPORTED_FORMAT_VERSIONS = (1,)
EXPECTED_NUM_POINTS: int = spec.NUM_POINTS


class PolicyMismatchError(ValueError):
    """The policy file was exported for another embodiment, rate or input size."""


class ExportedPolicy:
    """``policy(proprio_hist (T, 23) rad, points_hist (T, P, 3) m) -> (23,) rad``.

    The next joint targets for the last row of the history, batch 1,
    1 <= T <= ``context`` (no padding needed: the model right-aligns time).

    Args:
        path: exported TorchScript file.
        num_threads: if set, ``torch.set_num_threads`` (process-wide) for
            steady low latency; 1 suits a 20 Hz loop next to driver threads.
        num_points: expected points per step (default: the embodiment's).
        cache_point_tokens: reuse the PointNet token of a cloud seen in a
            previous call (exact: keyed by the cloud's bytes). Off = the
            whole history is encoded every call.
        optimize: freeze the module and apply ``torch.jit.optimize_for_inference``
            (oneDNN-packed linears; ~10 % lower latency, same outputs to ~1e-6).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        num_threads: int | None = 1,
        num_points: int | None = None,
        cache_point_tokens: bool = True,
        optimize: bool = True,
    ) -> None:
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        self.path = os.fspath(path)
        with warnings.catch_warnings():  # TorchScript is deprecated upstream but is what the file is
            warnings.simplefilter("ignore", DeprecationWarning)
            self.module = torch.jit.load(self.path, map_location="cpu").eval()
        meta = {}
        for name in ("format_version", "embodiment", "joint_names", "joint_lower", "joint_upper",
                     "control_hz", "context", "num_points"):  # fmt: skip
            if not hasattr(self.module, name):
                raise PolicyMismatchError(f"{self.path} is not an exported HOP policy: no attribute {name!r}")
            meta[name] = getattr(self.module, name)
        expected_points = EXPECTED_NUM_POINTS if num_points is None else num_points
        problems = []
        if meta["format_version"] not in SUPPORTED_FORMAT_VERSIONS:
            problems.append(f"format_version {meta['format_version']} (supported: {SUPPORTED_FORMAT_VERSIONS})")
        problems += spec.mismatches(meta)
        if meta["num_points"] != expected_points:
            problems.append(f"num_points {meta['num_points']} != {expected_points}")
        if problems:
            raise PolicyMismatchError(f"refusing {self.path}: " + "; ".join(problems))
        self.positions: str = str(getattr(self.module, "positions", "window"))  # older files: window
        if optimize:
            methods = ["encode_points", "act_from_tokens"]
            methods += [m for m in ("init_cache", "step") if hasattr(self.module, m)]  # relative positions
            frozen = torch.jit.freeze(self.module, preserved_attrs=methods + list(meta))
            self.module = torch.jit.optimize_for_inference(frozen, other_methods=methods)
        self.metadata = meta
        self.context: int = int(meta["context"])
        self.num_points: int = int(meta["num_points"])
        self.control_hz: int = int(meta["control_hz"])
        self._masks = [torch.ones(1, t, dtype=torch.bool) for t in range(self.context + 1)]
        self.cache_point_tokens = cache_point_tokens
        self._token_cache: dict[bytes, torch.Tensor] = {}

    def __call__(self, proprio_hist: np.ndarray, points_hist: np.ndarray) -> np.ndarray:
        proprio = np.ascontiguousarray(proprio_hist, dtype=np.float32)
        points = np.ascontiguousarray(points_hist, dtype=np.float32)
        t = proprio.shape[0] if proprio.ndim == 2 else -1
        if proprio.ndim != 2 or proprio.shape[1] != spec.NUM_JOINTS or not 1 <= t <= self.context:
            raise ValueError(f"proprio_hist must be (T, {spec.NUM_JOINTS}) with 1 <= T <= {self.context}, "
                             f"got {proprio.shape}")  # fmt: skip
        if points.shape != (t, self.num_points, 3):
            raise ValueError(f"points_hist must be (T, P, 3) = ({t}, {self.num_points}, 3), got {points.shape}")
        with torch.inference_mode():
            tokens = self._point_tokens(points)
            out = self.module.act_from_tokens(torch.from_numpy(proprio)[None], tokens[None], self._masks[t])
        out = out[0].numpy().astype(np.float64)
        if not np.isfinite(out).all():
            bad = [spec.JOINT_NAMES[i] for i in np.flatnonzero(~np.isfinite(out))]
            raise FloatingPointError(f"policy produced non-finite joint targets for {bad}")
        return out

    def _point_tokens(self, points: np.ndarray) -> torch.Tensor:
        """(T, P, 3) -> (T, d). A step's token depends on its cloud alone, so
        tokens are cached by the cloud's bytes: in a rolling history only the
        newest cloud is encoded (the PointNet is most of the compute)."""
        if not self.cache_point_tokens:
            return self.module.encode_points(torch.from_numpy(points))
        keys = [row.tobytes() for row in points]
        new = [i for i, key in enumerate(keys) if key not in self._token_cache]
        if new:
            encoded = self.module.encode_points(torch.from_numpy(points[new]))
            for i, token in zip(new, encoded):
                self._token_cache[keys[i]] = token
        tokens = torch.stack([self._token_cache[key] for key in keys])
        while len(self._token_cache) > 2 * self.context:
            self._token_cache.pop(next(iter(self._token_cache)))  # oldest first (dicts keep insertion order)
        return tokens
