"""Faults of the service's Ray, on real processes: a real Ray on loopback, real
stores, real SIGKILLs.

- The embedded Ray (``python -m hop_data.service`` without an address): its
  raylet killed while ``ray.init`` runs, just after its first worker starts,
  while the actors are being created; its GCS killed while actors work. Each
  time the command ends within 60 s with status 3 and one message (what died,
  the store intact, how to resume), no traceback, nothing on stdout (--json),
  no process of its Ray left; then one rerun finishes every video exactly once.
- A cluster (``ray.cluster_utils.Cluster`` on 127.0.0.1: a head without CPUs and
  two 1-CPU nodes, each node its own raylet): the node hosting the actor is
  killed, the actor restarts on the other and the run goes on; that node is
  killed too, and the driver stops after ``--placement-timeout-s`` naming the
  missing CPU; a rerun on a new node finishes the rest exactly once.

Every wait polls a condition against a deadline. Every process started here is
ended in teardown, by pid (never ``ray stop``: it would stop every Ray here).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import pytest

ray = pytest.importorskip("ray")

from hop_data import hoi, synth  # noqa: E402
from hop_data.service import processes  # noqa: E402
from hop_data.service.errors import EXIT_RAY_LOST  # noqa: E402
from hop_data.service.ray_runtime import loopback_node  # noqa: E402
from hop_data.store import TrajectoryStore  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _service_helpers import assert_each_source_once, sources_of  # noqa: E402

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
VIDEOS = 6
ATTEMPTS = 6
EXIT_WITHIN_S = 60.0  # the bound: from the kill to the driver's exit
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # Ray keeps 127.0.0.1 as every node's address


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[str]:
    """Six synthetic 2.5 s videos."""
    out = tmp_path_factory.mktemp("videos")
    paths = []
    for index in range(VIDEOS):
        traj = synth.make_trajectory(synth.video_rng(0, index), index, 0)
        n = int(round(2.5 * traj.fps)) + 1
        cut = replace(traj, hand_joints=traj.hand_joints[:n], object_pose=traj.object_pose[:n])
        paths.append(str(hoi.save(out / f"{index:02d}.hoi.npz", cut)))
    return paths


def committed(store: Path) -> dict[str, str]:
    if not (store / "zarr.json").exists():
        return {}
    return TrajectoryStore.open(store).committed_sources()


def wait_for(condition: Callable[[], object], timeout: float, what: str, alive: subprocess.Popen | None = None):
    """Poll ``condition`` until it is true (returns its value); fail after ``timeout``
    seconds, or as soon as ``alive`` (a process the condition needs) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            err = alive.stderr.read().decode(errors="replace") if alive.stderr else ""
            lines = [line for line in err.splitlines() if "(raylet)" not in line and "[state-dump]" not in line]
            pytest.fail(f"{what}: the process exited first (status {alive.returncode}):\n" + "\n".join(lines[-20:]))
        time.sleep(0.05)
    pytest.fail(f"{what}: not within {timeout:.0f} s")


class Family:
    """The processes below a driver, collected while it runs (they are reparented
    when it dies), each known by pid and start time (a pid may be reused)."""

    def __init__(self, root: int):
        self.root = root
        self.seen: dict[int, int | None] = {}

    def look(self) -> list[int]:
        now = processes.descendants(self.root)
        for pid in now:
            self.seen.setdefault(pid, processes.started(pid))
        return now

    def named(self, prefix: str, zombies: bool = False) -> int | None:
        for pid in processes.descendants(self.root, zombies=zombies):
            self.seen.setdefault(pid, processes.started(pid))
            if processes.name(pid).startswith(prefix):
                return pid
        return None

    def left(self) -> list[int]:
        return [p for p, t in self.seen.items() if processes.alive(p) and processes.started(p) == t]

    def end(self) -> None:
        processes.end(self.left(), grace_s=2.0)


def run_service(videos: list[str], store: Path, *options: str, attempts: int = ATTEMPTS) -> list[str]:
    """The command line of a run, its summary as JSON."""
    return [PYTHON, "-m", "hop_data.service", *videos, "--store", str(store), "--attempts", str(attempts), "--json",
            *options]  # fmt: skip


EMBEDDED = ("--actors", "2", "--num-cpus", "2")


# ---------------------------------------------------------------------- the embedded Ray


def _starting(family: Family, store: Path) -> int | None:
    return family.named("raylet", zombies=True)


def _first_worker(family: Family, store: Path) -> int | None:
    return family.named("ray::IDLE") and family.named("raylet")


def _actors_starting(family: Family, store: Path) -> int | None:
    return family.named("ray::SimulatorA") and not committed(store) and family.named("raylet")


def _working(family: Family, store: Path) -> int | None:
    return committed(store) and family.named("gcs_server")


def skip_if_ray_could_not_start(driver: subprocess.Popen) -> None:
    """The driver ended before anything was killed. On a machine loaded far beyond
    its cores, Ray's raylet can crash by itself while it starts (a check fails
    when its metrics agent is slow to come up): the service then says so (status 3,
    a server died while Ray was starting), and there is no moment to test."""
    err = driver.stderr.read().decode(errors="replace")
    if driver.returncode == EXIT_RAY_LOST and "(it was starting Ray)" in err:
        last = err.strip().splitlines()[-1][:300]
        pytest.skip(f"the embedded Ray crashed by itself while starting (machine overloaded): {last}")
    pytest.fail(f"the driver exited before the moment to kill (status {driver.returncode}):\n{err[-3000:]}")


MOMENTS = {  # when to kill, and whom: the condition returns the pid to kill
    "raylet-during-ray-init": _starting,
    "raylet-after-first-worker": _first_worker,
    "raylet-while-actors-start": _actors_starting,
    "gcs-while-actors-work": _working,
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_embedded_ray_killed_ends_the_run_cleanly(videos, tmp_path, moment):
    store = tmp_path / "store.zarr"
    env = dict(os.environ, RAY_ADDRESS="")
    driver = subprocess.Popen(run_service(videos, store, *EMBEDDED), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    family = Family(driver.pid)
    try:
        moment_or_end = lambda: MOMENTS[moment](family, store) or driver.poll() is not None  # noqa: E731
        victim = wait_for(moment_or_end, 120, f"{moment}: the moment to kill")
        if driver.poll() is not None:
            skip_if_ray_could_not_start(driver)
        kind = processes.name(victim) or "raylet"
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        out, err = driver.communicate(timeout=EXIT_WITHIN_S + 30)
        took = time.monotonic() - killed_at
        assert driver.returncode == EXIT_RAY_LOST, err.decode()[-3000:]
        assert took < EXIT_WITHIN_S, f"exited {took:.0f} s after the kill"
        err = err.decode()
        message = err.strip().splitlines()[-1]
        assert f"{kind} (pid {victim}" in message, err[-3000:]
        assert f"The store {store} is intact" in message and "the same command again to resume" in message
        assert "Traceback" not in err
        assert out == b""  # --json: stdout is for the summary alone
        wait_for(lambda: not family.left(), 10, "every process of the embedded Ray ended")
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        family.end()
        driver.stdout.close()
        driver.stderr.close()
    if moment != "gcs-while-actors-work":
        return
    # one rerun after a fault finishes exactly once (committed videos skipped, the rest done)
    before = set(committed(store))
    rerun = subprocess.run(run_service(videos, store, *EMBEDDED), env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout)
    assert summary["skipped_already_committed"] == len(before) and summary["videos"] == VIDEOS - len(before)
    assert_each_source_once(store, sources_of(videos))


# ---------------------------------------------------------------------- a cluster


@pytest.fixture
def cluster():
    """A head without CPUs (the driver's node) and two 1-CPU nodes, all on 127.0.0.1.
    The GCS declares a silent node dead after ~1.5 s (the default is ~30 s)."""
    from ray.cluster_utils import Cluster

    with loopback_node():
        c = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False,
            "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                               "health_check_initial_delay_ms": 0},
        })  # fmt: skip
        c.nodes = [c.add_node(num_cpus=1, node_ip_address="127.0.0.1") for _ in range(2)]
    family = Family(os.getpid())
    family.look()
    try:
        yield c
    finally:
        c.shutdown()
        family.look()
        family.end()


def _raylet(node) -> int:
    return node.all_processes["raylet"][0].process.pid


def _actor_node(cluster) -> int | None:
    """The raylet pid of the node whose worker runs the simulator actor now."""
    for node in cluster.nodes:
        raylet = _raylet(node)
        if processes.alive(raylet) and any(
            processes.name(pid).startswith("ray::SimulatorA") for pid in processes.descendants(raylet)
        ):
            return raylet
    return None


def lose_node(raylet: int) -> None:
    """A node is lost: its raylet and every process it started are SIGKILLed at
    once; returns when they are dead (a kill returns before the process has
    died, and a node read in between would still look alive)."""
    pids = [raylet, *processes.descendants(raylet)]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not any(processes.alive(pid) for pid in pids), 10, "the lost node's processes to die")


def test_lost_nodes_actor_restarts_elsewhere_then_no_place_left_stops_the_run(videos, cluster, tmp_path):
    store = tmp_path / "store.zarr"
    env = dict(os.environ, **LOOPBACK_ENV)
    env.pop("RAY_ADDRESS", None)
    # 24 attempts a video (~1.5 s here): work is left when the second node is lost
    cmd = run_service(videos, store, "--address", cluster.address, "--actors", "1", "--placement-timeout-s", "15",
                      attempts=24)  # fmt: skip
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = wait_for(lambda: committed(store) and _actor_node(cluster), 120, "a first commit", alive=driver)
        lose_node(first)  # the node of the only actor: it restarts on the other node
        second = wait_for(lambda: _actor_node(cluster), 120, "the actor restarted on the other node", alive=driver)
        assert second != first, "the lost node still runs the actor"
        done = len(committed(store))
        wait_for(lambda: len(committed(store)) > done, 120, "a commit by the restarted actor", alive=driver)
        assert len(committed(store)) < VIDEOS, "no work left to lose"
        lose_node(second)  # no node left for the actor
        lost_at = time.monotonic()
        out, err = driver.communicate(timeout=EXIT_WITHIN_S + 30)
        assert time.monotonic() - lost_at < EXIT_WITHIN_S
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    err = err.decode()
    assert driver.returncode == EXIT_RAY_LOST, err[-3000:]
    message = err.strip().splitlines()[-1]
    assert "no simulator actor could be placed" in message and "each needs CPU 1" in message, message
    assert "node(s) lost" in message and f"The store {store} is intact" in message
    assert "Traceback" not in err and out == b""
    # a new node, the same command: the rest of the videos, each exactly once
    with loopback_node():
        cluster.nodes.append(cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1"))
    before = set(committed(store))
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout)
    assert summary["skipped_already_committed"] == len(before) and summary["ray"] == "joined"
    assert_each_source_once(store, sources_of(videos))


def test_a_restarted_actor_whose_predecessor_lives_on_writes_a_new_shard(tmp_path, monkeypatch):
    """A lost node's worker can live on, holding its shard's lock: the actor Ray
    restarted elsewhere (same actor id, same shard name) must not wait for it forever."""
    from hop_data.retarget.config import RetargetConfig
    from hop_data.service import actors

    monkeypatch.setattr(actors, "LOCK_WAIT_S", 0.2)
    config = RetargetConfig(attempts=2)
    store = tmp_path / "store.zarr"
    TrajectoryStore.create(store, num_points=config.scene.num_points)
    shard = actors.writer_id_for("svc", f"pid{os.getpid()}")  # the actor id outside Ray
    holder = subprocess.Popen(
        [PYTHON, "-c", "import sys; from hop_data.store import TrajectoryStore; "
         f"w = TrajectoryStore.open({str(store)!r}, 'a').writer({shard!r}); "
         "print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ready"
        actor = actors.SimulatorActor(str(store), config, threads=1, writer_prefix="svc")
        assert actor.writer_id.startswith(f"{shard}-") and actor.writer_id != shard
        assert not ray.is_initialized()  # the class outside Ray starts no Ray
        actor.close()
    finally:
        holder.stdin.close()
        holder.wait(30)


# ---------------------------------------------------------------------- chaos


def test_chaos_soak_quick_loses_and_duplicates_nothing(tmp_path):
    """bench/chaos_service.py --quick: random actors SIGKILLed every 3 s and one
    in the middle of a commit; every episode of the fault-free run, exactly once."""
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as err:  # a file, not a pipe: Ray's lines would fill a pipe nobody reads yet
        bench = subprocess.Popen([PYTHON, str(REPO / "bench" / "chaos_service.py"), "--quick"], cwd=REPO,
                                 stdout=subprocess.PIPE, stderr=err, start_new_session=True)  # fmt: skip
    family = Family(bench.pid)
    try:
        wait_for(lambda: family.look() is None or bench.poll() is not None, 300, "the quick chaos soak")
        out = bench.stdout.read()
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        bench.stdout.close()
        family.end()
    assert bench.returncode == 0, log.read_text()[-3000:]
    result = json.loads(out)
    assert result["exactly_once"] and result["episodes_written"] == result["episodes_expected"] > 0
    assert result["episodes_lost"] == result["episodes_duplicated"] == result["episodes_differing"] == 0
    assert result["kills"]["writer_in_commit"] == 1 and result["kills"]["random_actors"] >= 1
    assert not result["videos_failed"]
    wait_for(lambda: not family.left(), 10, "every process of the bench's Ray ended")
