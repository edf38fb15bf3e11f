"""Run summaries: the retargeting summary (``hop-data retarget`` and the Ray
service build the same one) and how a command prints a summary."""

from __future__ import annotations

import json
from typing import Any


def print_summary(summary: dict[str, Any], as_json: bool) -> None:
    """One JSON object (stdout stays machine-readable), or an aligned table of keys and values."""
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=False))
        return
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        if isinstance(value, (list, dict)) and len(json.dumps(value)) > 100:
            value = f"{type(value).__name__} of {len(value)}"
        print(f"{key:<{width}}  {value}")


def retarget_summary(results: list, failed: list[dict], wall: float) -> dict[str, Any]:
    """The JSON summary of a retargeting run over ``results`` (``RetargetResult``s
    or the service's ``VideoReport``s), ``failed`` inputs ``[{source, reason}]``
    and ``wall`` seconds."""
    import numpy as np

    attempts = sum(r.attempts for r in results)
    accepted = sum(int(r.accepted.sum()) for r in results)
    frames = np.concatenate([r.frame_errors.ravel() for r in results]) if results else np.zeros(0)
    kept = [r.frame_errors[r.accepted].ravel() for r in results if r.accepted.any()]
    kept = np.concatenate(kept) if kept else np.zeros(0)
    tracking = np.concatenate([r.tracking_errors.ravel() for r in results]) if results else np.zeros(0)

    def q(x, p):
        return float(np.percentile(x, p)) if x.size else None

    return {
        "videos": len(results),
        "attempts": attempts,
        "accepted": accepted,
        "acceptance": accepted / attempts if attempts else 0.0,
        "attempt_frames_per_s": sum(r.attempt_frames for r in results) / wall if wall > 0 else 0.0,
        "median_error_m": q(frames, 50),
        "p95_error_m": q(frames, 95),
        "accepted_median_error_m": q(kept, 50),
        "median_tracking_error_m": q(tracking, 50),
        "arm_contact_rate": (sum(int(r.arm_contact.sum()) for r in results) / attempts) if attempts else 0.0,
        "seconds": wall,
        "seconds_physics": sum(r.seconds_physics for r in results),
        "seconds_solving": sum(r.seconds_solving for r in results),
        "failed": failed,
    }



def exit_status(summary: dict[str, Any]) -> int:
    """A batch's exit status: 0 unless every input failed (1)."""
    return 0 if summary["videos"] or summary["skipped_already_committed"] or not summary["failed"] else 1
