"""Checks shared by the service's tests (tests/test_service.py, tests/test_service_faults.py)."""

from __future__ import annotations

from pathlib import Path

from hop_data import hoi
from hop_data.store import TrajectoryStore


def sources_of(paths: list[str]) -> set[str]:
    return {hoi.load(p).source for p in paths}


def assert_each_source_once(store: Path, sources: set[str]) -> None:
    """Every source committed by exactly one shard, nothing half-written left visible."""
    s = TrajectoryStore.open(store)
    seen: dict[str, str] = {}
    for shard in s.shard_ids():
        for source in s.shard_attrs(shard)["committed_sources"]:
            assert source not in seen, f"{source} committed by {seen[source]} and {shard}"
            seen[source] = shard
    assert set(seen) == sources
    info = s.info()
    assert info["duplicate_episodes_ignored"] == 0 and info["sources"] == len(sources)
