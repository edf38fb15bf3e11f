"""Retarget input files into a store in this process (``hop-data retarget``).

``retarget_files`` is the function form: one ``Retargeter``, one store shard,
videos already committed skipped, bad inputs reported and passed over. The
Ray service (``hop_data.service``) does the same on a pool of actors and ends
with the same summary (``hop_data.report.retarget_summary``).
"""

from __future__ import annotations

import time
from typing import Any

from .config import RetargetRunConfig


def retarget_files(config: RetargetRunConfig, progress: bool = True) -> dict[str, Any]:
    """Run ``config``; returns the summary (``retarget_summary`` plus
    ``skipped_already_committed`` and ``store``). ``progress``: bars on stderr."""
    from tqdm import tqdm

    from hop_data import hoi
    from hop_data.inputs import expand_inputs
    from hop_data.report import retarget_summary, video_summary
    from hop_data.store import TrajectoryStore

    from .checks import RefusedInput, load_for_retargeting
    from .engine import Retargeter

    inputs = expand_inputs(config.inputs)
    retargeter = Retargeter(config.retarget, threads=config.threads)
    store = TrajectoryStore.open(config.store, "a", num_points=config.retarget.scene.num_points)
    results: list = []
    failed: list[dict[str, str]] = []  # every input not retargeted: unreadable, malformed or refused
    skipped = 0
    t0 = time.perf_counter()
    bar = tqdm(inputs, desc="retarget", unit="video", disable=not progress)
    with store.writer(config.writer_id) as writer:
        for path in bar:
            try:
                traj = load_for_retargeting(path, config.retarget.allow_no_interaction)
            except RefusedInput as exc:
                failed.append({"source": str(path), "reason": str(exc), "cause": exc.cause})
                continue
            except (hoi.HOIFormatError, ValueError, OSError) as exc:
                failed.append({"source": str(path), "reason": str(exc), "cause": "bad_input"})
                continue
            if store.is_committed(traj.source):
                skipped += 1
                continue
            steps = tqdm(total=1, desc=traj.source[-32:], unit="step", leave=False, disable=not progress)

            def step_progress(done: int, total: int) -> None:
                steps.total = total
                steps.update(done - steps.n)

            result = retargeter.run(traj, seed=config.seed, progress=step_progress)
            steps.close()
            writer.append_episodes(traj.source, result.episodes, report=video_summary(result, str(path)))
            results.append(result)
            done_attempts = sum(r.attempts for r in results)
            bar.set_postfix(
                attempts_per_s=f"{done_attempts / (time.perf_counter() - t0):.0f}",
                acceptance=f"{sum(int(r.accepted.sum()) for r in results) / done_attempts:.1%}",
                failed=len(failed),
            )
    summary = retarget_summary(results, failed, time.perf_counter() - t0)
    summary["skipped_already_committed"] = skipped
    summary["store"] = str(config.store)
    return summary
