"""What ``hop-data info`` prints about a store: counts, facts and size."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import zarr.storage

if TYPE_CHECKING:
    from .trajectory_store import TrajectoryStore


def describe(store: TrajectoryStore) -> dict[str, Any]:
    """Counts and facts of a store (JSON-ready)."""
    reader = store.reader(cache_bytes=0)
    shards = {s.id: {"episodes": s.episodes, "steps": s.steps, "sources": len(s.sources)} for s in reader._shards}
    counts = reader.episodes_per_source()
    return {
        "url": store.url,
        "format": store.attrs["format"],
        "version": store.attrs["version"],
        "embodiment": store.attrs["embodiment"],
        "joint_names": list(store.attrs["joint_names"]),
        "control_hz": store.attrs["control_hz"],
        "num_points": store.num_points,
        "episodes": reader.num_episodes,
        "steps": reader.num_steps,
        "sources": len(reader.sources),
        "sources_without_episodes": sum(1 for n in counts.values() if n == 0),
        "duplicate_episodes_ignored": reader.num_ignored_episodes,
        "meta_fields": list(reader.meta_names),
        "shards": shards,
        "bytes": size_bytes(store),
        "retargeting": _reports(store),
    }


def _reports(store: TrajectoryStore) -> dict[str, Any] | None:
    """Acceptance and rejections by cause per video, from the reports committed
    with the sources (None for a store written without them)."""
    reports = store.source_reports()
    if not reports:
        return None
    from hop_data.report import store_report_summary

    return store_report_summary(reports)


def size_bytes(store: TrajectoryStore) -> int | None:
    """Bytes the store takes (None where the filesystem cannot tell)."""
    if store.local_path is not None:
        return sum(p.stat().st_size for p in store.local_path.rglob("*") if p.is_file())
    zstore = store._zstore
    if isinstance(zstore, zarr.storage.FsspecStore):
        fs = getattr(zstore.fs, "sync_fs", zstore.fs)  # zarr wraps sync filesystems
        try:
            return int(fs.du(zstore.path))
        except Exception:  # size is informative only; some filesystems cannot du
            return None
    return None
