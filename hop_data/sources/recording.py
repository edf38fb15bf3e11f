"""Robot episode recordings (``hop-robot run --record FILE``) -> store episodes.

A recording (``hop_robot.record``, specified in docs/robot.md) already holds
the store's step arrays and per-episode fields; importing copies them into a
shard, one source per recording, so that real episodes can feed BC
finetuning beside retargeted ones. A recording already committed is skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from hop_robot.record import RecordingError, load_recording

from ..store import Episode, TrajectoryStore


@dataclass
class RecordingImport:
    episodes: int = 0
    steps: int = 0
    skipped_committed: int = 0
    failed: list[dict] = field(default_factory=list)


def recording_episode(data: dict) -> Episode:
    """A loaded recording as one store Episode."""
    return Episode(
        proprio=data["proprio"], action=data["action"], object_pc=data["object_pc"],
        seed=int(data["seed"]), table_pose=np.asarray(data["table_pose"]), init_qpos=np.asarray(data["init_qpos"]),
        max_error=float(data["max_error"]), mean_error=float(data["mean_error"]), collision=bool(data["collision"]),
    )  # fmt: skip


def import_recordings(
    paths: Sequence[str | os.PathLike],
    store_url: str,
    writer_id: str = "recordings",
    progress: Callable[[int], None] | None = None,
) -> RecordingImport:
    """Commit each recording as its own source; bad files are listed in ``failed``."""
    result = RecordingImport()
    store = None
    writer = None
    try:
        for path in paths:
            try:
                data = load_recording(path)
                if len(data["proprio"]) == 0:
                    raise RecordingError(f"{path}: holds no steps")
                if not np.any(data["sent"]):
                    raise RecordingError(f"{path}: nothing was sent to the robot (a --dry-run recording)")
                if store is None:
                    store = TrajectoryStore.open(store_url, "a", num_points=int(data["num_points"]))
                    writer = store.writer(writer_id)
                commit = writer.append_episodes(str(data["source"]), [recording_episode(data)])
            except (RecordingError, ValueError) as exc:
                result.failed.append({"source": str(path), "reason": str(exc)})
            else:
                if commit.skipped:
                    result.skipped_committed += 1
                else:
                    result.episodes += commit.episodes
                    result.steps += commit.steps
            if progress is not None:
                progress(1)
    finally:
        if writer is not None:
            writer.close()
    return result


def find_recordings(items: Sequence[str]) -> list[Path]:
    """Files as given; directories give their ``*.npz`` files."""
    out: list[Path] = []
    for item in items:
        path = Path(item)
        out.extend(sorted(path.rglob("*.npz")) if path.is_dir() else [path])
    return out
