"""From a pretraining checkpoint to a policy and an exported file, without Lightning.

A checkpoint written by ``hop_train.pretrain`` holds only tensors and plain
values, so it loads with ``torch.load(weights_only=True)``:

- ``state_dict``: the policy's weights under ``model.``;
- ``hyper_parameters``: the module's constructor arguments (``POLICY_ARGS``
  among them: the HopPolicy config);
- ``hop``: what the policy was trained for: embodiment, joint names, control
  rate, point count, context, the store's URL.

``policy_from_checkpoint`` rebuilds the ``HopPolicy`` from those (or from
overrides), ``export_checkpoint`` writes the TorchScript file the robot loads.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import torch

from hop_robot.embodiment import spec
from hop_robot.embodiment.spec import CONTROL_HZ, EMBODIMENT_NAME, JOINT_LOWER, JOINT_NAMES, JOINT_UPPER, NUM_JOINTS
from hop_train.export import IncompatibleCheckpointError, export_policy, load_state_dict_safely
from hop_train.model import HopPolicy

__all__ = ["POLICY_ARGS", "embodiment_record", "export_checkpoint", "policy_from_checkpoint", "read_checkpoint"]

# HopPolicy's constructor arguments a checkpoint may set (num_joints is the embodiment's).
POLICY_ARGS: tuple[str, ...] = tuple(n for n in inspect.signature(HopPolicy).parameters if n != "num_joints")


def embodiment_record(num_points: int, context: int, store: str | None = None) -> dict[str, Any]:
    """The ``hop`` entry a pretraining checkpoint carries (plain values only)."""
    return {
        "embodiment": EMBODIMENT_NAME,
        "joint_names": list(JOINT_NAMES),
        "control_hz": int(CONTROL_HZ),
        "num_points": int(num_points),
        "context": int(context),
        "store": store,
    }


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)``; errors become ``IncompatibleCheckpointError``."""
    try:
        blob = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # pickled objects refused, truncated files
        raise IncompatibleCheckpointError(f"cannot read {path} with weights_only=True: {exc}") from exc
    if not isinstance(blob, dict):
        raise IncompatibleCheckpointError(f"{path} holds a {type(blob).__name__}, not a checkpoint dict")
    return blob


def policy_from_checkpoint(path: str | os.PathLike, **overrides: Any) -> tuple[HopPolicy, dict[str, Any]]:
    """Rebuild the trained ``HopPolicy`` (eval mode) and its ``hop`` record.

    The config comes from the checkpoint's ``hyper_parameters``, then
    ``overrides`` (a plain state dict has none: HopPolicy defaults). Raises
    ``IncompatibleCheckpointError`` naming what differs: the embodiment the
    checkpoint was trained for vs this code's, or the keys and shapes that do
    not fit the config."""
    blob = read_checkpoint(path)
    unknown = sorted(set(overrides) - set(POLICY_ARGS))
    if unknown:
        raise ValueError(f"unknown policy arguments {unknown}; known: {list(POLICY_ARGS)}")
    hparams = blob.get("hyper_parameters") or {}
    config = {k: hparams[k] for k in POLICY_ARGS if k in hparams}
    config.update({k: v for k, v in overrides.items() if v is not None})
    record = dict(blob.get("hop") or {})
    differences = spec.mismatches(record, required=())  # an old plain state dict records nothing
    if differences:
        raise IncompatibleCheckpointError(f"checkpoint {path} was trained for another robot: " + "; ".join(differences))
    policy = HopPolicy(num_joints=NUM_JOINTS, **config)
    try:
        load_state_dict_safely(policy, path, prefix=None)
    except IncompatibleCheckpointError as exc:
        given = {k: v for k, v in overrides.items() if v is not None}
        stored = {k: hparams[k] for k in POLICY_ARGS if k in hparams}
        raise IncompatibleCheckpointError(
            f"{exc}\n  policy config used: {config or 'HopPolicy defaults'}"
            f"\n  (checkpoint hyper_parameters: {stored or 'none'}; overrides: {given or 'none'})"
        ) from None
    record.setdefault("num_points", policy.num_points)
    record.setdefault("context", policy.context)
    return policy.eval(), record


def export_checkpoint(path: str | os.PathLike, out: str | os.PathLike, *, check: bool = True, **overrides: Any) -> str:
    """Export the policy of checkpoint ``path`` to ``out`` (``hop_train.export``
    contract) with the embodiment's limits and the checkpoint's point count
    and context. Returns the path written."""
    policy, record = policy_from_checkpoint(path, **overrides)
    return export_policy(
        policy,
        out,
        joint_names=JOINT_NAMES,
        joint_lower=tuple(JOINT_LOWER.tolist()),
        joint_upper=tuple(JOINT_UPPER.tolist()),
        control_hz=int(record.get("control_hz", CONTROL_HZ)),
        context=int(record["context"]),
        num_points=int(record["num_points"]),
        embodiment=EMBODIMENT_NAME,
        check=check,
    )
