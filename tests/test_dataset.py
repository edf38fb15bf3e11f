"""Window dataset: index and left padding, RAM vs streamed clouds, workers,
split by source, training-only noise, the sampler under DDP, refusals."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from torch.utils.data import DataLoader

from hop_data.store import IncompatibleStoreError, TrajectoryStore
from hop_robot.embodiment import spec
from hop_train.dataset import (
    DatasetError,
    StoreArrays,
    WindowDataset,
    WindowSampler,
    collate_windows,
    split_by_source,
    window_index,
)
from hop_train.pretrain import HopDataModule

sys.path.insert(0, str(Path(__file__).parent))
from _window_store import NUM_POINTS, build_store  # noqa: E402

LENGTHS = {"vid-a": [3, 20], "vid-b": [1, 17, 6], "vid-c": [9], "vid-d": [12, 2]}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("windows") / "s.zarr"
    episodes = build_store(path, LENGTHS)
    return path, episodes


def scaled(q):
    return spec.scale(np.asarray(q, np.float64)).astype(np.float32)


def expected_window(ep, k, T):
    """Window of T steps ending at step k of episode ``ep``, left-padded by repeating step 0."""
    rows = np.maximum(np.arange(k - T + 1, k + 1), 0)
    mask = np.arange(k - T + 1, k + 1) >= 0
    return scaled(ep.proprio[rows]), ep.object_pc[rows], scaled(ep.action[rows]), mask


# ------------------------------------------------------------------ index, padding, contents
def test_window_index_one_window_per_step():
    starts, ends = np.array([0, 3, 23]), np.array([3, 23, 24])
    rows, episode = window_index(starts, ends, np.array([0, 2]))
    assert rows.tolist() == [0, 1, 2, 23] and episode.tolist() == [0, 0, 0, 2]


@pytest.mark.parametrize("T", [1, 5, 16])
def test_windows_are_left_padded_and_never_cross_episodes(store, T):
    path, episodes = store
    arrays = StoreArrays(path)
    ds = WindowDataset(arrays, context=T)
    assert len(ds) == sum(ep.num_steps for ep in episodes)
    batch = ds.__getitems__(list(range(len(ds))))
    i = 0
    for e, ep in enumerate(episodes):
        for k in range(ep.num_steps):
            proprio, points, action, mask = expected_window(ep, k, T)
            assert batch["mask"][i].numpy().tolist() == mask.tolist(), (e, k)
            assert int(batch["mask"][i].sum()) == min(k + 1, T)
            np.testing.assert_allclose(batch["proprio"][i].numpy(), proprio, atol=2e-6)
            np.testing.assert_allclose(batch["action"][i].numpy(), action, atol=2e-6)
            np.testing.assert_array_equal(batch["points"][i].numpy(), points)
            assert int(batch["index"][i]) == i
            i += 1
    # targets are actions scaled to [-1, 1] by the limits
    last_target = spec.unscale(batch["action"][len(ds) - 1, -1].double().numpy())
    np.testing.assert_allclose(last_target, episodes[-1].action[-1], atol=1e-5)


def test_streamed_clouds_and_workers_match_ram(store):
    path, _ = store
    in_ram = WindowDataset(StoreArrays(path), context=16)
    streamed_arrays = StoreArrays(path, pc_ram_bytes=0, cache_bytes=4096)  # cache smaller than a chunk
    assert not streamed_arrays.in_ram and in_ram.arrays.in_ram
    streamed = WindowDataset(streamed_arrays, context=16)
    index = np.random.default_rng(0).permutation(len(in_ram))
    a, b = in_ram.__getitems__(index), streamed.__getitems__(index)
    for key in a:
        assert torch.equal(a[key], b[key]), key

    def epoch(ds, workers):
        sampler = WindowSampler(ds, shuffle=True, seed=3, block_windows=7, group_blocks=2)
        loader = DataLoader(ds, batch_size=10, sampler=sampler, num_workers=workers, collate_fn=collate_windows)
        return [batch for batch in loader]

    reference = epoch(streamed, 0)
    for got in (epoch(streamed, 2), epoch(in_ram, 2)):  # forked workers open their own readers
        assert len(got) == len(reference)
        for x, y in zip(got, reference):
            assert all(torch.equal(x[k], y[k]) for k in x)
    assert sorted(torch.cat([b["index"] for b in reference]).tolist()) == list(range(len(in_ram)))


def test_single_window_and_collate(store):
    ds = WindowDataset(StoreArrays(store[0]), context=4)
    one = ds[5]
    assert one["proprio"].shape == (4, spec.NUM_JOINTS) and one["points"].shape == (4, NUM_POINTS, 3)
    stacked = collate_windows([ds[0], ds[5]])
    assert stacked["mask"].shape == (2, 4) and torch.equal(stacked["proprio"][1], one["proprio"])


# ------------------------------------------------------------------ split by source
def test_split_by_source_is_disjoint_deterministic_and_sized():
    sources = np.repeat([f"video-{i:03d}" for i in range(40)], 3)
    split = split_by_source(sources, 0.2, seed=0)
    assert len(split.val_sources) == 8 and len(split.train_sources) == 32
    assert not set(split.val_sources) & set(split.train_sources)
    assert set(sources[split.val_episodes]) == set(split.val_sources)
    assert set(sources[split.train_episodes]) == set(split.train_sources)
    assert len(split.train_episodes) + len(split.val_episodes) == len(sources)
    again = split_by_source(sources[::-1], 0.2, seed=0)  # store order does not matter
    assert again.val_sources == split.val_sources
    assert split_by_source(sources, 0.2, seed=1).val_sources != split.val_sources
    assert len(split_by_source(sources, 0.0).val_episodes) == 0
    assert len(split_by_source(sources[:6], 0.01).val_sources) == 1  # at least one source held out
    with pytest.raises(DatasetError, match="at least 2 sources"):
        split_by_source(np.array(["only"] * 5), 0.1)


def test_datamodule_splits_by_source_and_noises_training_only(store):
    path, episodes = store
    dm = HopDataModule(store=str(path), batch_size=64, val_fraction=0.25, proprio_noise=0.1, context=8, seed=0)
    dm.setup("fit")
    sources = dm.arrays.episode_sources
    train_src = set(sources[dm.train_set.episode])
    val_src = set(sources[dm.val_set.episode])
    assert train_src and val_src and not train_src & val_src
    assert dm.num_points == NUM_POINTS

    clean = WindowDataset(dm.arrays, dm.split.train_episodes, context=8)
    noisy = next(iter(dm.train_dataloader()))
    reference = clean.__getitems__(noisy["index"].numpy())
    delta = (noisy["proprio"] - reference["proprio"]).numpy()
    assert 0.08 < delta.std() < 0.12 and abs(delta.mean()) < 0.02  # σ 0.1 on scaled proprio
    for key in ("points", "action", "mask"):
        assert torch.equal(noisy[key], reference[key])
    val = next(iter(dm.val_dataloader()))
    val_reference = dm.val_set.__getitems__(val["index"].numpy())
    assert torch.equal(val["proprio"], val_reference["proprio"])  # no noise in validation
    assert dm.val_set.proprio_noise == 0.0


# ------------------------------------------------------------------ sampler
def test_sampler_splits_ranks_and_keeps_chunk_locality():
    class Sized:
        def __len__(self):
            return 1003

    ds = Sized()
    ranks = [list(WindowSampler(ds, shuffle=True, seed=1, num_replicas=3, rank=r)) for r in range(3)]
    assert len({len(r) for r in ranks}) == 1
    assert set().union(*map(set, ranks)) == set(range(1003))  # padded to equal lengths, all covered
    assert sum(map(len, ranks)) - 1003 < 3

    local = WindowSampler(ds, shuffle=True, seed=1, block_windows=100, group_blocks=2)
    order = local.order()
    assert sorted(order.tolist()) == list(range(1003))
    blocks = order // 100
    _, first = np.unique(blocks, return_index=True)
    visited = blocks[np.sort(first)]  # blocks in the order the epoch reaches them
    for pair in range(0, len(visited), 2):  # windows of each group of 2 blocks are contiguous in the epoch
        where = np.flatnonzero(np.isin(blocks, visited[pair : pair + 2]))
        assert where[-1] - where[0] + 1 == len(where)
    local.set_epoch(1)
    assert not np.array_equal(local.order(), order)
    fixed = WindowSampler(ds, shuffle=True, seed=1, fixed=True)
    first = fixed.order()
    fixed.set_epoch(5)
    assert np.array_equal(fixed.order(), first)


# ------------------------------------------------------------------ refusals
def test_wrong_embodiment_is_refused(tmp_path):
    path = tmp_path / "other.zarr"
    build_store(path, {"v": [4]})
    zarr.open_group(str(path), mode="r+").attrs["embodiment"] = "ur5_robotiq"
    with pytest.raises(IncompatibleStoreError) as info:
        StoreArrays(path)
    assert str(path) in str(info.value) and "ur5_robotiq" in str(info.value) and spec.EMBODIMENT_NAME in str(info.value)


def test_empty_store_is_refused(tmp_path):
    path = tmp_path / "empty.zarr"
    store = TrajectoryStore.create(path, num_points=NUM_POINTS)
    with store.writer("w") as writer:
        writer.append_episodes("all-attempts-failed", [])
    with pytest.raises(DatasetError, match="no committed episodes") as info:
        StoreArrays(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "array, streamed", [("proprio", False), ("action", False), ("object_pc", False), ("object_pc", True)]
)
def test_non_finite_values_name_store_episode_and_array(tmp_path, array, streamed):
    path = tmp_path / "bad.zarr"
    episodes = build_store(path, {"good": [5, 4], "broken": [6, 7]})
    row = 5 + 4 + 6 + 3  # step 3 of episode 3, the second of source "broken"
    data = zarr.open_array(str(path / "shards" / "w" / "data" / array), mode="r+")
    value = data[row]
    value[..., 1] = np.inf if array == "action" else np.nan
    data[row] = value
    assert len(episodes) == 4
    with pytest.raises(DatasetError) as info:
        arrays = StoreArrays(path, pc_ram_bytes=0 if streamed else 2**30)
        WindowDataset(arrays, context=4).__getitems__(list(range(row, row + 2)))
    message = str(info.value)
    for part in (str(path), f"'{array}'", "episode 3", "'broken'", "step 3"):
        assert part in message, (part, message)


def test_non_finite_per_episode_field_is_refused(tmp_path):
    path = tmp_path / "badmeta.zarr"
    build_store(path, {"a": [3], "b": [4]})
    meta = zarr.open_array(str(path / "shards" / "w" / "meta" / "table_pose"), mode="r+")
    meta[1, 0] = np.nan
    with pytest.raises(DatasetError, match="meta/table_pose.*episode 1.*'b'"):
        StoreArrays(path)
