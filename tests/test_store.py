"""Trajectory store: round trip, exactly-once, crash repair, concurrency, refusals."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import zarr

from hop_data.store import (
    Episode,
    IncompatibleStoreError,
    ShardWriter,
    StoreError,
    StoreLockedError,
    TrajectoryStore,
    store_info,
)
from hop_robot.embodiment.spec import EMBODIMENT_NAME, JOINT_NAMES

sys.path.insert(0, str(Path(__file__).parent))
from _store_writer import NUM_POINTS, source_episodes, source_name  # noqa: E402

HELPER = Path(__file__).with_name("_store_writer.py")
REPO = Path(__file__).resolve().parents[1]


def _spawn(store: Path, writer_id: str, first: int, count: int, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.Popen(
        [sys.executable, "-u", str(HELPER), str(store), writer_id, str(first), str(count), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _close(proc: subprocess.Popen) -> None:
    proc.stdout.close()
    proc.stderr.close()


def _expected(sources: list[int]) -> list[tuple[str, Episode]]:
    return [(source_name(k), ep) for k in sources for ep in source_episodes(k)]


def _assert_episodes(reader, expected: list[tuple[str, Episode]]) -> None:
    """The reader holds exactly ``expected``, in order, bit for bit."""
    assert reader.num_episodes == len(expected)
    for i, (source, ep) in enumerate(expected):
        got = reader.episode(i)
        assert got["source"] == source
        np.testing.assert_array_equal(got["proprio"], ep.proprio)
        np.testing.assert_array_equal(got["action"], ep.action)
        np.testing.assert_array_equal(got["object_pc"], ep.object_pc)
        np.testing.assert_array_equal(got["table_pose"], np.float32(ep.table_pose))
        np.testing.assert_array_equal(got["init_qpos"], np.float32(ep.init_qpos))
        assert got["seed"] == ep.seed and got["collision"] == ep.collision
        assert got["max_error"] == np.float32(ep.max_error) and got["mean_error"] == np.float32(ep.mean_error)


def _new(tmp_path: Path, name: str = "s.zarr") -> TrajectoryStore:
    return TrajectoryStore.create(tmp_path / name, num_points=NUM_POINTS)


# ------------------------------------------------------------------ round trip


def test_round_trip_across_shards(tmp_path: Path) -> None:
    store = _new(tmp_path)
    with store.writer("b") as wb, store.writer("a") as wa:
        for k in (1, 2, 3):
            assert wb.append_episodes(source_name(k), source_episodes(k)).episodes == k
        done = wa.append_episodes(source_name(4), [])  # every attempt failed: still done
        assert (done.skipped, done.episodes) == (False, 0)
        assert wa.append_episodes(source_name(4), []).skipped
        wa.append_episodes(source_name(7), source_episodes(7))
    reader = TrajectoryStore.open(tmp_path / "s.zarr").reader()
    expected = _expected([4, 7, 1, 2, 3])  # shard "a" first, then "b", each in commit order
    _assert_episodes(reader, expected)
    assert reader.sources == [source_name(k) for k in (4, 7, 1, 2, 3)]
    assert reader.episodes_per_source()[source_name(4)] == 0  # a video with no accepted attempt is done
    assert reader.meta("seed").dtype == np.int64 and reader.meta("table_pose").shape == (len(expected), 7)

    proprio = np.concatenate([ep.proprio for _, ep in expected])
    clouds = np.concatenate([ep.object_pc for _, ep in expected])
    np.testing.assert_array_equal(reader.proprio, proprio)
    np.testing.assert_array_equal(reader.action, np.concatenate([ep.action for _, ep in expected]))
    assert reader.num_steps == len(proprio) and reader.episode_ends[-1] == len(proprio)
    starts = np.array([0, 5, len(clouds) - 16, int(reader.episode_ends[2]) - 3] + list(range(0, len(clouds) - 16, 7)))
    windows = np.stack([clouds[s : s + 16] for s in starts])
    np.testing.assert_array_equal(reader.windows("object_pc", starts, 16), windows)
    np.testing.assert_array_equal(reader.read("object_pc", 10, 60), clouds[10:60])

    info = store_info(tmp_path / "s.zarr")
    assert info["episodes"] == len(expected) and info["steps"] == len(proprio) and info["sources"] == 5
    assert info["embodiment"] == EMBODIMENT_NAME and info["joint_names"] == list(JOINT_NAMES)
    assert info["num_points"] == NUM_POINTS and info["control_hz"] == 20 and info["bytes"] > 0
    steps_of = {
        shard: sum(e.num_steps for k in ks for e in source_episodes(k)) for shard, ks in (("a", [7]), ("b", [1, 2, 3]))
    }
    assert info["shards"] == {
        "a": {"episodes": 3, "steps": steps_of["a"], "sources": 2},
        "b": {"episodes": 6, "steps": steps_of["b"], "sources": 3},
    }


def test_windows_span_chunks_and_cache_evicts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hop_data.store as store_module

    monkeypatch.setattr(store_module, "DEFAULT_CHUNK_BYTES", 4096)  # ~42 rows a chunk
    store = _new(tmp_path)
    with store.writer("w") as writer:
        for k in range(1, 12):
            writer.append_episodes(source_name(k), source_episodes(k))
    clouds = np.concatenate([ep.object_pc for _, ep in _expected(list(range(1, 12)))])
    rng = np.random.default_rng(0)
    for cache_bytes in (0, 20_000, 1 << 30):
        reader = store.reader(cache_bytes=cache_bytes)
        assert reader._shards[0].arrays["object_pc"].chunks[0] < 50
        for length in (1, 16, 100):
            starts = rng.integers(0, len(clouds) - length + 1, 64)
            expected = np.stack([clouds[s : s + length] for s in starts])
            np.testing.assert_array_equal(reader.windows("object_pc", starts, length), expected)
        assert reader._cached <= cache_bytes
    with pytest.raises(IndexError, match="exceed"):
        reader.windows("object_pc", [len(clouds) - 3], 16)


def test_extra_fields(tmp_path: Path) -> None:
    store = _new(tmp_path)
    episodes = source_episodes(3)
    for i, ep in enumerate(episodes):
        ep.extra = {"object_name": f"mug{i}", "contacts": np.int32(i), "goal": np.full(3, i, np.float32)}
    with store.writer("w") as writer:
        writer.append_episodes("v", episodes)
        bad = source_episodes(2)
        message = r"extra fields \[\] differ from the shard's \['contacts', 'goal', 'object_name'\]"
        with pytest.raises(ValueError, match=message):
            writer.append_episodes("v2", bad)
    reader = store.reader()
    assert reader.meta_names[-3:] == ("contacts", "goal", "object_name")
    assert list(reader.meta("object_name")) == ["mug0", "mug1", "mug2"]
    np.testing.assert_array_equal(reader.meta("goal")[:, 0], [0, 1, 2])
    assert reader.episode(1)["contacts"] == 1

    declared = _new(tmp_path, "declared.zarr")
    with declared.writer("w", extra_fields={"score": (np.float32, ())}) as writer:
        with pytest.raises(ValueError, match=r"extra fields \[\] differ from the shard's \['score'\]"):
            writer.append_episodes("v", source_episodes(1))
        episodes = source_episodes(2)
        for ep in episodes:
            ep.extra = {"score": 0.5}
        writer.append_episodes("v", episodes)
        episodes[0].extra = {"score": "high"}
        message = r"extra field 'score' must be float32 \(as the shard stores it\), got 'high'"
        with pytest.raises(ValueError, match=message):
            writer.append_episodes("v2", episodes)
    assert declared.reader().meta("score").tolist() == [0.5, 0.5]


# ------------------------------------------------------------------ exactly once


def test_exactly_once_per_source_across_shards(tmp_path: Path) -> None:
    store = _new(tmp_path)
    with store.writer("w1") as w1, store.writer("w2") as w2:
        assert not w1.append_episodes("video", source_episodes(3)).skipped
        result = w2.append_episodes("video", source_episodes(2))
        assert result.skipped and result.episodes == 0
        assert w2.is_committed("video") and w2.committed_episodes == 0
    assert store.reader().num_episodes == 3


def test_duplicate_commit_readers_keep_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _new(tmp_path)
    with store.writer("b") as wb:
        wb.append_episodes("dup", source_episodes(2))  # 2 episodes
        wb.append_episodes("only-b", source_episodes(1))
    # a presumed-dead worker that was not: its check saw nothing committed
    monkeypatch.setattr(ShardWriter, "is_committed", lambda self, source: False)
    with store.writer("a") as wa:
        wa.append_episodes("dup", source_episodes(3))  # 3 episodes
    reader = store.reader()
    assert reader.sources == ["dup", "only-b"]
    assert reader.num_ignored_episodes == 2
    _assert_episodes(reader, [("dup", e) for e in source_episodes(3)] + [("only-b", e) for e in source_episodes(1)])
    assert store.committed_sources() == {"dup": "a", "only-b": "b"}


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("embodiment", "franka_panda", rf"another robot: embodiment .franka_panda., expected '{EMBODIMENT_NAME}'"),
        ("version", 2, "format version 2 found, this code reads version 1"),
        ("control_hz", 30, "control rate 30 Hz, expected 20 Hz"),
        ("joint_names", list(reversed(JOINT_NAMES)), "joint names differ"),
    ],
)
def test_refuses_other_embodiment_or_version(tmp_path: Path, key: str, value: object, expected: str) -> None:
    path = tmp_path / "s.zarr"
    _new(tmp_path)
    zarr.open_group(path, mode="r+").update_attributes({key: value})
    with pytest.raises(IncompatibleStoreError, match=expected) as err:
        TrajectoryStore.open(path)
    assert str(path) in str(err.value)


def test_refuses_other_point_count(tmp_path: Path) -> None:
    _new(tmp_path)
    with pytest.raises(IncompatibleStoreError, match=f"num_points {NUM_POINTS}, expected 100"):
        TrajectoryStore.open(tmp_path / "s.zarr", mode="a", num_points=100)


def test_not_a_store_paths(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("hello")
    zarr.open_group(tmp_path / "group.zarr", mode="w")
    zarr.create_array(tmp_path / "array.zarr", shape=(3,), dtype="f4")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "zarr.json").write_text("{not json")
    cases = {
        "missing": "does not exist",
        "empty": "is an empty directory",
        "file.txt": "is a file, not a trajectory store",
        "group.zarr": "not a HOP trajectory store: root attribute 'format' is None",
        "array.zarr": "not a readable Zarr v3 group",
        "broken": "not a readable Zarr v3 group",
    }
    for name, message in cases.items():
        with pytest.raises(StoreError, match=message) as err:
            TrajectoryStore.open(tmp_path / name)
        assert str(tmp_path / name) in str(err.value), name
        assert isinstance(err.value, ValueError)
    _new(tmp_path, "x.zarr")
    with pytest.raises(StoreError, match="already exists"):
        _new(tmp_path, "x.zarr")
    assert TrajectoryStore.create(tmp_path / "x.zarr", NUM_POINTS, exist_ok=True).num_points == NUM_POINTS
    with pytest.raises(StoreError, match="read-only"):
        TrajectoryStore.open(tmp_path / "x.zarr").writer("w")


def test_bad_inputs_rejected_and_committed_data_intact(tmp_path: Path) -> None:
    store = _new(tmp_path)
    good = source_episodes(2)
    writer = store.writer("w")
    writer.append_episodes("good", good)

    def broken(**change: object) -> Episode:
        ep = source_episodes(1)[0]
        for key, value in change.items():
            setattr(ep, key, value)
        return ep

    steps = source_episodes(1)[0].num_steps  # of the episode that ``broken`` changes
    nan_action = good[0].action.copy()
    nan_action[2, 5] = np.nan
    cases = [
        (broken(proprio=np.zeros((5, 22))), r"source 'bad', episode 1: proprio must be \(T, 23\), got \(5, 22\)"),
        (broken(proprio=np.zeros((0, 23))), "proprio must have at least one step"),
        (broken(action=np.zeros((steps + 1, 23))), r"action must be \(\d+, 23\)"),
        (broken(object_pc=np.zeros((steps, NUM_POINTS + 1, 3))), rf"object_pc must be \({steps}, {NUM_POINTS}, 3\)"),
        (broken(max_error=-1.0), "max_error is a distance"),
        (broken(table_pose=np.array([0, 0, 0, 2, 0, 0, 0.0])), "unit quaternion"),
        (broken(seed=1.5), "seed must be an int"),
        (broken(object_pc=np.full((steps, NUM_POINTS, 3), np.inf)), "object_pc contains NaN or inf"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            writer.append_episodes("bad", [good[0], bad])
    nan_ep = source_episodes(2)[0]
    nan_ep.action = nan_action
    message = r"source 'nan', episode 0: action contains NaN or inf \(first at index \[2, 5\]\)"
    with pytest.raises(ValueError, match=message):
        writer.append_episodes("nan", [nan_ep])
    with pytest.raises(TypeError, match="expected an Episode"):
        writer.append_episodes("bad", [{"proprio": 1}])  # type: ignore[list-item]
    assert writer.committed_episodes == 2 and not writer.is_committed("bad")
    assert all(a.shape[0] == writer.committed_steps for a in writer._data.values())  # nothing was written
    writer.close()
    _assert_episodes(store.reader(), [("good", e) for e in good])


# ------------------------------------------------------------------ crashes, locks, concurrency


def test_commit_writes_shard_attributes_once_and_last(tmp_path: Path) -> None:
    store = _new(tmp_path)
    with store.writer("w") as writer:
        writer.append_episodes("first", source_episodes(1))
        log: list[str] = []
        original = store._zstore.set

        async def record(key, value, *args, **kwargs):  # type: ignore[no-untyped-def]
            log.append(key)
            return await original(key, value, *args, **kwargs)

        store._zstore.set = record  # type: ignore[method-assign]
        writer.append_episodes("second", source_episodes(3))
    assert log[-1] == "shards/w/zarr.json" and log.count("shards/w/zarr.json") == 1
    assert any(k.startswith("shards/w/data/object_pc/c/") for k in log)


def test_reopen_cuts_uncommitted_rows(tmp_path: Path) -> None:
    store = _new(tmp_path)
    with store.writer("w") as writer:
        writer.append_episodes("kept", source_episodes(2))
        steps, episodes = writer.committed_steps, writer.committed_episodes
        for arr in (*writer._data.values(), *writer._meta.values()):  # a commit cut short
            arr.resize((arr.shape[0] + 5, *arr.shape[1:]))
    assert store.reader().num_episodes == 2  # readers stop at the committed counts
    with store.writer("w") as writer:
        assert all(a.shape[0] == steps for a in writer._data.values())
        assert all(a.shape[0] == episodes for a in writer._meta.values())
        writer.append_episodes("next", source_episodes(1))
    expected = [("kept", e) for e in source_episodes(2)] + [("next", e) for e in source_episodes(1)]
    _assert_episodes(store.reader(), expected)


def test_sigkill_mid_write_leaves_whole_episodes_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    _new(tmp_path)
    rng = random.Random(0)
    partial_seen = 0
    for _ in range(5):
        proc = _spawn(path, "w", 0, -1)
        for _ in range(rng.randint(1, 4)):  # let it commit a few sources, then kill at a random instant
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _close(proc)
        store = TrajectoryStore.open(path)
        reader = store.reader()
        committed = len(reader.sources)
        assert reader.sources == [source_name(k) for k in range(committed)]
        _assert_episodes(reader, _expected(list(range(committed))))
        group = zarr.open_group(path / "shards" / "w", mode="r")
        partial_seen += group["data/proprio"].shape[0] > reader.num_steps
    with TrajectoryStore.open(path, mode="a").writer("w") as writer:  # repair, then resume
        assert writer.committed_sources == reader.sources
        assert zarr.open_group(path / "shards" / "w", mode="r")["data/object_pc"].shape[0] == reader.num_steps
        assert writer.append_episodes(source_name(committed), source_episodes(committed)).skipped is False
    _assert_episodes(store.reader(), _expected(list(range(committed + 1))))
    assert not list((path / "shards" / "w").rglob("*.partial"))
    print(f"kills that left uncommitted rows behind: {partial_seen}/5")


def test_live_writer_holds_its_shard(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    store = _new(tmp_path)
    with store.writer("w"):
        with pytest.raises(StoreLockedError, match="already has a live writer in this process"):
            store.writer("w")
    proc = _spawn(path, "w", 0, 1000, "--sleep", "0.5")
    try:
        assert proc.stdout.readline() == "ready\n"
        assert proc.stdout.readline() == "committed 0\n"
        with pytest.raises(StoreLockedError, match=rf"another live writer \(pid {proc.pid} on"):
            TrajectoryStore.open(path, mode="a").writer("w")
    finally:
        proc.kill()
        proc.wait()
        _close(proc)
    with TrajectoryStore.open(path, mode="a").writer("w") as writer:  # the kernel dropped the dead writer's lock
        assert writer.committed_sources


def test_four_writers_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    _new(tmp_path)
    total = 24  # every writer walks all sources from its own offset: most are skipped, races are kept once
    procs = [_spawn(path, f"w{i}", 6 * i, total, "--wrap", str(total)) for i in range(4)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    reader = TrajectoryStore.open(path).reader()
    assert sorted(reader.sources) == [source_name(k) for k in range(total)]
    by_source = {s: i for i, s in enumerate(reader.sources)}
    order = sorted(range(total), key=lambda k: by_source[source_name(k)])
    _assert_episodes(reader, _expected(order))
    shards = store_info(path)["shards"]
    assert set(shards) == {"w0", "w1", "w2", "w3"} and all(s["sources"] >= 1 for s in shards.values())


# ------------------------------------------------------------------ URLs


def test_memory_and_file_urls(tmp_path: Path) -> None:
    for url in (f"memory://hop-test-{uuid.uuid4().hex}/s.zarr", f"file://{tmp_path}/f.zarr"):
        with pytest.raises(StoreError, match="no trajectory store|not a readable"):
            TrajectoryStore.open(url)
        store = TrajectoryStore.open(url, mode="a", num_points=NUM_POINTS)
        with store.writer("w") as writer:
            writer.append_episodes("v", source_episodes(2))
            writer.append_episodes("empty", [])
        reader = TrajectoryStore.open(url).reader()
        _assert_episodes(reader, [("v", e) for e in source_episodes(2)])
        assert store_info(url)["sources"] == 2
    assert (tmp_path / "f.zarr" / "shards" / "w" / "writer.lock").exists()
