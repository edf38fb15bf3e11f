"""Starting a policy from π_b: ``init_from`` for BC finetuning
(``HopPretrainModule``) and PPO finetuning (``HopPPOModule``).

The file is a Lightning checkpoint (``.ckpt``), a plain state dict, or an
exported TorchScript policy (``policy.pt``: its ``model`` submodule). The
architecture it records (width, layers, heads, context, points, tanh) must
equal the new policy's, and its embodiment this one (``spec.mismatches``);
otherwise ``InitFromError`` names the file and every difference, and
nothing is loaded.
"""

from __future__ import annotations

import os
import zipfile
from typing import Any

import torch
from torch import Tensor

from hop_robot.embodiment import spec
from hop_train.checkpoint import POLICY_ARGS, read_checkpoint
from hop_train.export import IncompatibleCheckpointError, load_state_dict_safely

__all__ = ["InitFromError", "init_policy_from"]


class InitFromError(ValueError):
    """``init_from`` cannot initialise the module: the file is missing or unreadable,
    or it holds another architecture or embodiment (the message names the file and
    every difference). Raised in ``setup``, before any training step."""


def init_policy_from(model: torch.nn.Module, path: str | os.PathLike, config: dict[str, Any]) -> str:
    """Load ``path`` into ``model`` (a HopPolicy built with ``config``: its
    ``POLICY_ARGS``); returns a one-line description of what was loaded."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InitFromError(f"model.init_from: {path} does not exist (a .ckpt or an exported policy.pt; null: from scratch)")
    if not os.path.isfile(path):
        raise InitFromError(f"model.init_from: {path} is not a file")
    mine = {k: config[k] for k in POLICY_ARGS if k in config}
    if _is_torchscript(path):
        found, record, state = _read_exported(path, model)
        kind = "exported policy"
    else:
        found, record, state = _read_checkpoint(path)
        kind = "checkpoint"
    differences = [f"{k} {found[k]!r} in the file vs {mine[k]!r} here" for k in POLICY_ARGS if k in found and k in mine and found[k] != mine[k]]
    differences += [f"embodiment: {line}" for line in spec.mismatches(record, required=())]
    if differences:
        raise InitFromError(
            f"model.init_from: {path} ({kind}) does not fit this model:\n  "
            + "\n  ".join(differences)
            + "\n  set the model section to the file's architecture (or init_from: null to train from scratch)"
        )
    try:
        if state is None:  # a checkpoint or plain state dict: keys and shapes checked, nothing loaded on a misfit
            load_state_dict_safely(model, path, prefix=None)
        else:
            model.load_state_dict(state, strict=True)
    except (IncompatibleCheckpointError, RuntimeError) as exc:
        raise InitFromError(f"model.init_from: {path} ({kind}) does not fit this model:\n{exc}") from None
    recorded = ", ".join(f"{k}={v}" for k, v in found.items()) or "no architecture recorded: shapes checked"
    return f"{kind} {path} ({recorded})"


def _is_torchscript(path: str) -> bool:
    """A TorchScript archive (``torch.jit.save``) rather than a ``torch.save`` file."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _read_checkpoint(path: str) -> tuple[dict[str, Any], dict[str, Any], None]:
    """A Lightning checkpoint's recorded policy config and ``hop`` record (a plain
    state dict records neither). The weights are loaded by ``load_state_dict_safely``."""
    try:
        blob = read_checkpoint(path)
    except IncompatibleCheckpointError as exc:
        raise InitFromError(f"model.init_from: {exc}") from None
    hparams = blob.get("hyper_parameters") or {}
    record = dict(blob.get("hop") or {})
    found = {k: hparams[k] for k in POLICY_ARGS if k in hparams}
    for key in ("num_points", "context"):
        if key not in found and key in record:
            found[key] = record[key]
    return found, record, None


def _read_exported(path: str, model: torch.nn.Module) -> tuple[dict[str, Any], dict[str, Any], dict[str, Tensor]]:
    """An exported policy's architecture, metadata and weights (its ``model``
    submodule's state dict, without the non-persistent buffers scripting keeps)."""
    try:
        exported = torch.jit.load(path, map_location="cpu")
        inner = exported.model
        blocks = list(inner.blocks.children())
        found = {
            "width": int(inner.width),
            "num_layers": len(blocks),
            "num_heads": int(blocks[0].attn.num_heads) if blocks else None,
            "context": int(inner.context),
            "num_points": int(exported.num_points),
            "action_tanh": bool(inner.action_tanh),
            "positions": str(getattr(exported, "positions", "window")),  # files from before it: window
        }
        record = {
            "embodiment": str(exported.embodiment),
            "joint_names": list(exported.joint_names),
            "joint_lower": list(exported.joint_lower),
            "joint_upper": list(exported.joint_upper),
            "control_hz": int(exported.control_hz),
        }
        state = dict(inner.state_dict())
    except (RuntimeError, AttributeError, ValueError) as exc:
        raise InitFromError(f"model.init_from: {path} cannot be read as an exported HOP policy: {exc}") from None
    transient = {name for name, _ in model.named_buffers()} - set(model.state_dict())  # scripting keeps them
    return found, record, {k: v for k, v in state.items() if k not in transient}
