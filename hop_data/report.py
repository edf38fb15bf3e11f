"""Run summaries: the retargeting summary (``hop-data retarget`` and the Ray
service build the same one), the per-video report stored with each source
(``video_summary``: why attempts failed, errors of the kept ones), and how a
command prints a summary."""

from __future__ import annotations

import json
from typing import Any

from hop_data.retarget.config import ACCEPTED, REJECTION_CAUSES
from hop_robot.embodiment import spec

# The robot keypoints at the fingertips (spec.KEYPOINT_SITES order).
FINGERTIP_KEYPOINTS = tuple(i for i, name in enumerate(spec.KEYPOINT_SITES) if name.endswith("_tip"))


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


def _q(x, p):
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return round(float(np.percentile(x, p)), 6) if x.size else None


def _median_p95(x) -> dict[str, float | None]:
    return {"median": _q(x, 50), "p95": _q(x, 95)}


def video_summary(result: Any, path: str | None = None) -> dict[str, Any]:
    """One retargeted video (a ``RetargetResult``): acceptance, rejections by
    cause (one cause per attempt: ``accepted + sum(rejected) == attempts``),
    placements re-drawn, and the kept attempts' errors — mean keypoint error
    per frame, fingertips, and each keypoint (median / p95, m). JSON-ready;
    stored with the source and listed per video in the run summary."""
    import numpy as np

    cause = np.asarray(result.cause, dtype=object)
    kept = np.asarray(result.accepted, bool)
    out: dict[str, Any] = {"source": result.source}
    if path is not None:
        out["path"] = str(path)
    simulated = np.ones(result.attempts, bool) if result.simulated is None else np.asarray(result.simulated, bool)
    out.update({
        "attempts": int(result.attempts),
        "simulated": int(np.count_nonzero(simulated)),
        "accepted": int(kept.sum()),
        "acceptance": float(kept.mean()) if result.attempts else 0.0,
        "rejected": {c: int(np.sum(cause == c)) for c in REJECTION_CAUSES},
        "arm_contact_attempts": int(np.sum(np.asarray(result.arm_contact, bool))),
        "placement_redraws": int(getattr(result, "placement_redraws", 0)),
        "lift_m": round(float(getattr(result, "lift_m", 0.0)), 4),
        "error_m": _median_p95(result.frame_errors[simulated]),
        "tracking_error_m": _median_p95(result.tracking_errors[simulated]),
    })  # fmt: skip
    kp = getattr(result, "keypoint_errors", None)
    if kp is not None and kept.any():
        k = np.asarray(kp[kept], dtype=np.float64)  # (K, T, 9)
        out["kept_error_m"] = _median_p95(result.frame_errors[kept])
        out["kept_fingertip_error_m"] = _median_p95(k[..., list(FINGERTIP_KEYPOINTS)])
        out["kept_keypoint_error_m"] = {name: _median_p95(k[..., i]) for i, name in enumerate(spec.KEYPOINT_SITES)}
        # per judged step (20 Hz), the median over the kept attempts: the error over time
        out["kept_error_over_time_m"] = [round(float(v), 5) for v in np.median(result.frame_errors[kept], axis=0)]
    else:
        out["kept_error_m"] = out["kept_fingertip_error_m"] = {"median": None, "p95": None}
        out["kept_keypoint_error_m"] = {}
        out["kept_error_over_time_m"] = []
    assert out["accepted"] + sum(out["rejected"].values()) == out["attempts"], out
    return out


def retarget_summary(results: list, failed: list[dict], wall: float) -> dict[str, Any]:
    """The JSON summary of a retargeting run over ``results`` (``RetargetResult``s
    or the service's ``VideoReport``s), ``failed`` inputs ``[{source, reason,
    cause}]`` and ``wall`` seconds. ``rejections`` counts attempts by cause over
    all retargeted videos (with ``accepted`` they add up to ``attempts``);
    ``refused_inputs`` counts the inputs not retargeted, by cause; ``per_video``
    is each video's ``video_summary``."""
    import numpy as np

    per_video = [r.video if getattr(r, "video", None) is not None else video_summary(r) for r in results]
    attempts = sum(r.attempts for r in results)
    accepted = sum(int(r.accepted.sum()) for r in results)
    simulated = [
        np.ones(r.attempts, bool) if getattr(r, "simulated", None) is None else np.asarray(r.simulated, bool) for r in results
    ]
    frames = np.concatenate([r.frame_errors[s].ravel() for r, s in zip(results, simulated)]) if results else np.zeros(0)
    kept = [r.frame_errors[r.accepted].ravel() for r in results if r.accepted.any()]
    kept = np.concatenate(kept) if kept else np.zeros(0)
    tracking = np.concatenate([r.tracking_errors[s].ravel() for r, s in zip(results, simulated)]) if results else np.zeros(0)
    rejections = {c: sum(v["rejected"][c] for v in per_video) for c in REJECTION_CAUSES}
    refused: dict[str, int] = {}
    for f in failed:
        refused[f.get("cause", "bad_input")] = refused.get(f.get("cause", "bad_input"), 0) + 1
    tips = [np.asarray(r.keypoint_errors[r.accepted])[..., list(FINGERTIP_KEYPOINTS)].ravel()
            for r in results if getattr(r, "keypoint_errors", None) is not None and r.accepted.any()]  # fmt: skip

    def q(x, p):
        x = x[np.isfinite(x)]
        return float(np.percentile(x, p)) if x.size else None

    return {
        "videos": len(results),
        "attempts": attempts,
        "accepted": accepted,
        "acceptance": accepted / attempts if attempts else 0.0,
        "rejections": rejections,
        "refused_inputs": refused,
        "attempt_frames_per_s": sum(r.attempt_frames for r in results) / wall if wall > 0 else 0.0,
        "median_error_m": q(frames, 50),
        "p95_error_m": q(frames, 95),
        "accepted_median_error_m": q(kept, 50),
        "accepted_p95_error_m": q(kept, 95),
        "accepted_fingertip_median_error_m": q(np.concatenate(tips), 50) if tips else None,
        "accepted_fingertip_p95_error_m": q(np.concatenate(tips), 95) if tips else None,
        "median_tracking_error_m": q(tracking, 50),
        "arm_contact_rate": (sum(int(r.arm_contact.sum()) for r in results) / attempts) if attempts else 0.0,
        "seconds": wall,
        "seconds_physics": sum(r.seconds_physics for r in results),
        "seconds_solving": sum(r.seconds_solving for r in results),
        "per_video": per_video,
        "failed": failed,
    }


def video_line(report: dict[str, Any]) -> str:
    """One line a person reads: kept of attempts, rejections by cause, kept errors (mm)."""
    rejected = ", ".join(f"{c} {n}" for c, n in report.get("rejected", {}).items() if n) or "none"

    def mm(d: dict | None) -> str:
        if not d or d.get("median") is None:
            return "-"
        return f"{1000 * d['median']:.1f}/{1000 * d['p95']:.1f} mm"

    return (
        f"{report.get('source')}: {report.get('accepted')} of {report.get('attempts')} kept "
        f"({100 * (report.get('acceptance') or 0):.0f} %); rejected: {rejected}; kept error median/p95 "
        f"{mm(report.get('kept_error_m'))}, fingertips {mm(report.get('kept_fingertip_error_m'))}"
    )


def store_report_summary(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What ``hop-data info`` adds from the per-source reports: totals by cause
    and one line per video (acceptance, rejections, kept errors)."""
    attempts = sum(int(r.get("attempts", 0)) for r in reports.values())
    accepted = sum(int(r.get("accepted", 0)) for r in reports.values())
    rejections = {c: sum(int(r.get("rejected", {}).get(c, 0)) for r in reports.values()) for c in REJECTION_CAUSES}
    videos = [
        {
            "source": source,
            "attempts": r.get("attempts"),
            "accepted": r.get("accepted"),
            "acceptance": r.get("acceptance"),
            "rejected": {c: n for c, n in r.get("rejected", {}).items() if n},
            "kept_error_m": r.get("kept_error_m"),
            "kept_fingertip_error_m": r.get("kept_fingertip_error_m"),
            "kept_keypoint_error_m": r.get("kept_keypoint_error_m"),
        }
        for source, r in sorted(reports.items())
    ]
    return {
        "reported_videos": len(reports),
        "attempts": attempts,
        "accepted": accepted,
        "acceptance": accepted / attempts if attempts else None,
        "rejections": rejections,
        "per_video": videos,
    }


def exit_status(summary: dict[str, Any]) -> int:
    """A batch's exit status: 0 unless every input failed (1)."""
    return 0 if summary["videos"] or summary["skipped_already_committed"] or not summary["failed"] else 1


__all__ = ["ACCEPTED", "FINGERTIP_KEYPOINTS", "exit_status", "print_summary", "retarget_summary", "store_report_summary", "video_summary"]
