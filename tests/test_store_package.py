"""The store package's seams: its public names, the one embodiment check at the
root, and the orphan-shard repair that the service asks the store for."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

import hop_data.store as store_pkg
from hop_data.store import IncompatibleStoreError, TrajectoryStore, repair_orphan_shards
from hop_robot.embodiment.spec import EMBODIMENT_NAME

sys.path.insert(0, str(Path(__file__).parent))
from _store_writer import NUM_POINTS, source_episodes, source_name  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_every_name_the_repository_imports_is_exported() -> None:
    """``from hop_data.store import X`` keeps working for every X used in the repo."""
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True).stdout.split()
    names: set[str] = set()
    for rel in tracked:
        if rel.startswith("hop_data/store/") or not (REPO / rel).is_file():
            continue
        package = rel.split("/")[:-1]
        for node in ast.walk(ast.parse((REPO / rel).read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module or ""]) if node.level else node.module
            if module == "hop_data.store":
                names.update(alias.name for alias in node.names)
    assert {"Episode", "TrajectoryStore", "StoreError", "DEFAULT_CHUNK_BYTES", "COMPRESSOR"} <= names
    assert not sorted(n for n in names if not hasattr(store_pkg, n))
    assert set(store_pkg.__all__) >= names


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"embodiment": "franka_panda"}, f"another robot: embodiment 'franka_panda', expected '{EMBODIMENT_NAME}'"),
        ({"control_hz": 30, "embodiment": "ur5"}, "embodiment 'ur5'.*; control rate 30 Hz, expected 20 Hz"),
    ],
)
def test_root_embodiment_goes_through_spec_mismatches(tmp_path: Path, attrs: dict, expected: str) -> None:
    path = tmp_path / "s.zarr"
    TrajectoryStore.create(path, num_points=NUM_POINTS)
    zarr.open_group(path, mode="r+").update_attributes(attrs)
    with pytest.raises(IncompatibleStoreError, match=expected) as err:
        TrajectoryStore.open(path)
    assert str(path) in str(err.value)


def test_missing_embodiment_facts_are_named(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    TrajectoryStore.create(path, num_points=NUM_POINTS)
    group = zarr.open_group(path, mode="r+")
    attrs = group.attrs.asdict()
    del attrs["control_hz"], attrs["joint_names"]
    group.attrs.clear()
    group.attrs.update(attrs)
    with pytest.raises(IncompatibleStoreError, match="no 'joint_names' recorded; no 'control_hz' recorded"):
        TrajectoryStore.open(path)


def test_repair_orphan_shards_through_the_store(tmp_path: Path) -> None:
    store = TrajectoryStore.create(tmp_path / "s.zarr", num_points=NUM_POINTS)
    for writer_id, k in (("job-a", 3), ("job-b", 7), ("other-a", 11)):  # 3 episodes each
        with store.writer(writer_id) as writer:
            writer.append_episodes(source_name(k), source_episodes(k))
    # job-a: an array longer than the commit; job-b: only a temp file; other-a: longer, another prefix
    for writer_id in ("job-a", "other-a"):
        arr = zarr.open_array(tmp_path / "s.zarr" / "shards" / writer_id / "meta" / "seed", mode="r+")
        arr.resize((arr.shape[0] + 4,))
    debris = tmp_path / "s.zarr" / "shards" / "job-b" / "data" / "proprio" / "c" / "x.partial"
    debris.parent.mkdir(parents=True, exist_ok=True)
    debris.write_bytes(b"half a chunk")
    assert store.repair_orphan_shards("job") == ["job-a", "job-b"]
    assert not debris.exists()
    assert repair_orphan_shards(store, "job") == []  # nothing left
    seed_rows = {
        w: zarr.open_array(tmp_path / "s.zarr" / "shards" / w / "meta" / "seed", mode="r").shape[0]
        for w in ("job-a", "other-a")
    }
    assert seed_rows == {"job-a": 3, "other-a": 7}
    reader = store.reader()
    assert reader.num_episodes == 9 and reader.sources == [source_name(3), source_name(7), source_name(11)]
    np.testing.assert_array_equal(reader.episode(0)["proprio"], source_episodes(3)[0].proprio)


def test_orphan_repair_leaves_a_live_writer_and_object_storage_alone(tmp_path: Path) -> None:
    store = TrajectoryStore.create(tmp_path / "s.zarr", num_points=NUM_POINTS)
    live = store.writer("job-live")
    try:
        live.append_episodes(source_name(2), source_episodes(2))
        arr = zarr.open_array(tmp_path / "s.zarr" / "shards" / "job-live" / "data" / "action", mode="r+")
        arr.resize((arr.shape[0] + 2, arr.shape[1]))
        assert store.repair_orphan_shards("job") == []
    finally:
        live.close()
    assert store.repair_orphan_shards("job") == ["job-live"]
    memory = TrajectoryStore.create("memory://orphans.zarr", num_points=NUM_POINTS)
    with memory.writer("job-x") as writer:
        writer.append_episodes(source_name(1), source_episodes(1))
    assert memory.repair_orphan_shards("job") == []  # no lock to tell dead from alive: nothing done
