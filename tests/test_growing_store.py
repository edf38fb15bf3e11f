"""Training on a store that is still being written (issue 15, item 3).

A real writer process (``tests/_store_writer.py``) commits source after
source while a Lightning fit runs with ``HopDataModule(refresh_each_epoch=True)``:
every batch is checked against what the writer wrote (so a torn read, a
shifted row or a partial episode shows), each epoch sees only whole committed
sources and more of them as the writer goes on, sources keep their side of the
split, and leftovers of a killed writer (rows past its commit, NaN here) are
never read. The clouds stream through each DataLoader worker's own reader,
which must be pinned to the epoch's snapshot: a second writer whose shard sorts
first, started mid-run, would shift every row otherwise.

Every wait polls a condition against a deadline; the writers are ended by pid.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import zarr

from hop_data.store import TrajectoryStore
from hop_train.dataset import scale_joints
from hop_train.pretrain import HopDataModule

sys.path.insert(0, str(Path(__file__).parent))
from _store_writer import NUM_POINTS, source_episodes, source_name  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
HELPER = Path(__file__).with_name("_store_writer.py")
CONTEXT = 4


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"{what}: not within {timeout:.0f} s")


class Writer:
    """``_store_writer.py`` in a process of its own, committing sources first, first + 1, ...
    forever; ``committed`` counts its "committed k" lines (read by a thread)."""

    def __init__(self, store: Path, writer_id: str, first: int):
        self.process = subprocess.Popen(
            [sys.executable, str(HELPER), str(store), writer_id, str(first), "-1", "--sleep", "0.02"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.committed = 0
        threading.Thread(target=self._count, daemon=True).start()

    def _count(self) -> None:
        for line in self.process.stdout:
            self.committed += line.startswith("committed")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def leave_a_partial_write(store: Path) -> None:
    """What a writer killed mid-commit leaves: a shard whose arrays hold NaN rows
    past its commit (one committed source, then a source never committed)."""
    with TrajectoryStore.open(store, "a").writer("writer-0") as w:
        w.append_episodes(source_name(1), source_episodes(1))
    shard = store / "shards" / "writer-0"
    for name in ("data/proprio", "data/action", "data/object_pc"):
        arr = zarr.open_array(str(shard / name), mode="r+")
        arr.resize((arr.shape[0] + 7, *arr.shape[1:]))
        arr[-7:] = np.nan
    source = zarr.open_array(str(shard / "meta/source"), mode="r+")
    source.resize((source.shape[0] + 1,))
    source[-1] = "video-partial"


def check_batch(dm: HopDataModule, dataset, batch: dict) -> set[str]:
    """Every window of ``batch`` against the episodes the writer made; the sources seen."""
    arrays, index = dm.arrays, batch["index"].numpy()
    rows, _ = dataset.rows(index)
    seen = set()
    for b, episode in enumerate(dataset.episode[index]):
        source = str(arrays.episode_sources[episode])
        first = int(np.flatnonzero(arrays.episode_sources == source)[0])
        want = source_episodes(int(source.split("-")[1]))[episode - first]
        t = rows[b] - arrays.episode_starts[episode]
        np.testing.assert_array_equal(batch["points"][b].numpy(), want.object_pc[t], err_msg=source)
        np.testing.assert_allclose(batch["proprio"][b].numpy(), scale_joints(want.proprio[t]), atol=1e-6)
        seen.add(source)
    return seen


class Recorder(pl.LightningModule):
    """Checks every batch; a linear layer so that there is something to optimise."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(23, 23)
        self.seen: dict[str, set[str]] = {"train": set(), "val": set()}

    def _step(self, batch, side: str, dataset) -> torch.Tensor:
        self.seen[side] |= check_batch(self.trainer.datamodule, dataset, batch)
        return (self.layer(batch["proprio"]) - batch["action"]).abs().mean()

    def training_step(self, batch, _):
        return self._step(batch, "train", self.trainer.datamodule.train_set)

    def validation_step(self, batch, _):
        return self._step(batch, "val", self.trainer.datamodule.val_set)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-3)


class Epochs(pl.Callback):
    """Per epoch: what the datasets hold (checked against the commits); between
    epochs, waits for the writers to commit more; after epoch ``switch_after``,
    SIGKILLs the first writer and starts a second one, whose shard sorts first."""

    def __init__(self, store: Path, writers: list[Writer], switch_after: int):
        self.store, self.writers, self.switch_after = store, writers, switch_after
        self.epochs: list[dict] = []

    def on_train_epoch_start(self, trainer, pl_module):
        dm = trainer.datamodule
        counts = dict(zip(*np.unique(dm.arrays.episode_sources, return_counts=True)))
        committed = TrajectoryStore.open(self.store).committed_sources()
        for source, n in counts.items():  # whole committed sources, nothing else
            assert source in committed and n == int(source.split("-")[1]) % 4, (source, n)
        self.epochs.append({
            "episodes": len(dm.arrays.episode_ends), "train": set(dm.split.train_sources),
            "val": set(dm.split.val_sources), "snapshot": dm.arrays.snapshot,
        })  # fmt: skip

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == self.switch_after:
            self.writers[0].kill()  # SIGKILL, wherever it was (maybe mid-write)
            self.writers.append(Writer(self.store, "writer-a", 1000))
        before = sum(c.episodes for c in self.epochs[-1]["snapshot"].values())

        def more() -> bool:
            now = sum(c.episodes for c in TrajectoryStore.open(self.store).commits().values())
            return now > before and self.writers[-1].committed > 2

        wait_for(more, 60, "the writers committed more episodes")


@pytest.mark.slow
def test_training_follows_a_store_being_written(tmp_path):
    store = tmp_path / "store.zarr"
    TrajectoryStore.create(store, num_points=NUM_POINTS)
    leave_a_partial_write(store)
    writers = [Writer(store, "writer-b", 2)]
    try:
        wait_for(lambda: writers[0].committed >= 10, 60, "a first few sources")
        dm = HopDataModule(
            str(store), batch_size=16, num_workers=1, val_fraction=0.3, seed=0, proprio_noise=0.0, context=CONTEXT,
            pc_ram_bytes=0, cache_bytes=2**20, refresh_each_epoch=True,
        )  # fmt: skip
        epochs = Epochs(store, writers, switch_after=2)
        trainer = pl.Trainer(
            max_epochs=5, limit_train_batches=4, limit_val_batches=2, num_sanity_val_steps=0, accelerator="cpu",
            logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            callbacks=[epochs],
        )  # fmt: skip
        recorder = Recorder()
        trainer.fit(recorder, datamodule=dm)
    finally:
        for writer in writers:
            writer.kill()
    sizes = [e["episodes"] for e in epochs.epochs]
    assert len(sizes) == 5 and all(a < b for a, b in zip(sizes, sizes[1:])), sizes  # more at every epoch
    for before, after in zip(epochs.epochs, epochs.epochs[1:]):  # no source changes side
        assert before["train"] <= after["train"] and before["val"] <= after["val"]
    assert not recorder.seen["train"] & epochs.epochs[-1]["val"] and recorder.seen["val"]
    assert any(int(s.split("-")[1]) >= 1000 for s in epochs.epochs[-1]["train"] | epochs.epochs[-1]["val"])
    assert "video-partial" not in epochs.epochs[-1]["train"] | epochs.epochs[-1]["val"]


def test_a_pinned_reader_keeps_its_rows_while_an_earlier_shard_grows(tmp_path):
    """The reader a DataLoader worker opens later sees the very rows of the snapshot."""
    store = TrajectoryStore.open(tmp_path / "store.zarr", "a", num_points=NUM_POINTS)
    with store.writer("b") as w:
        for k in (1, 2, 3):
            w.append_episodes(source_name(k), source_episodes(k))
    first = store.reader()
    with store.writer("a") as w:  # sorts before "b": every row of "b" moves in an unpinned reader
        w.append_episodes(source_name(5), source_episodes(5))
    pinned, now = store.reader(snapshot=first.snapshot), store.reader()
    assert pinned.snapshot == first.snapshot and now.num_steps > first.num_steps
    rows = first.num_steps
    np.testing.assert_array_equal(pinned.read("object_pc", 0, rows), first.read("object_pc", 0, rows))
    assert pinned.sources == first.sources and not np.array_equal(now.proprio[: first.num_steps], first.proprio)
