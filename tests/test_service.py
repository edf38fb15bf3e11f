"""The data-generation service on a real Ray (loopback only), real stores, synthetic inputs.

One embedded Ray serves the in-process tests; the driver-crash test runs the
driver as a subprocess (its own embedded Ray), the cluster test a
``ray start --head --block`` on 127.0.0.1 that it stops by its process id
(``ray stop`` would stop every Ray on the machine). Every process started
here is ended in teardown, by pid.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from hop_data import hoi, synth  # noqa: E402
from hop_data.service import processes  # noqa: E402
from hop_data.service.actors import SimulatorActor  # noqa: E402
from hop_data.retarget.config import RetargetConfig  # noqa: E402
from hop_data.service.driver import GenerateConfig, generate, start_local_ray  # noqa: E402
from hop_data.store import TrajectoryStore  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _service_helpers import assert_each_source_once, sources_of  # noqa: E402

# The fault-injecting actor and the stub lifting function below travel to Ray's
# workers by value (this test module is not importable there).
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
ATTEMPTS = 8
SHORT_S = 2.5  # seconds of each test video (prepare() wants >= 2 s)


# ---------------------------------------------------------------------- inputs and helpers


def _cut(traj: hoi.HOITrajectory, seconds: float, source: str | None = None) -> hoi.HOITrajectory:
    n = int(round(seconds * traj.fps)) + 1
    return replace(traj, hand_joints=traj.hand_joints[:n], object_pose=traj.object_pose[:n], source=source or traj.source)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, list[str]]:
    """Four short synthetic videos and one longer one (the one a worker is killed in)."""
    root = tmp_path_factory.mktemp("corpus")
    full = synth.synthesize(root / "full", 4, seed=0)
    short = []
    (root / "short").mkdir()
    for path in full:
        short.append(str(hoi.save(root / "short" / path.name, _cut(hoi.load(path), SHORT_S))))
    (root / "long").mkdir()
    long = str(hoi.save(root / "long" / "long.hoi.npz", _cut(hoi.load(full[1]), 4.0, "synth/0/long")))
    return {"short": short, "long": [long]}


@pytest.fixture(scope="module")
def local_ray():
    start_local_ray(num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> Path:
    """The single-process path (`hop-data retarget`), same seed and attempts."""
    from hop_data.cli import main

    store = tmp_path_factory.mktemp("reference") / "store.zarr"
    args = ["retarget", *corpus["short"], *corpus["long"], "--store", str(store), "--attempts", str(ATTEMPTS)]
    assert main([*args, "--threads", "2", "--seed", "0", "--quiet", "--json"]) == 0
    return store


def episodes(store: Path) -> dict[str, list[dict]]:
    """source -> its episodes (sorted by attempt seed), as the store's readers see them."""
    reader = TrajectoryStore.open(store).reader(cache_bytes=0)
    out: dict[str, list[dict]] = {s: [] for s in reader.sources}
    for i in range(reader.num_episodes):
        ep = reader.episode(i)
        out[str(ep["source"])].append(ep)
    return {s: sorted(eps, key=lambda e: int(e["seed"])) for s, eps in out.items()}


def assert_same_episodes(got: dict, want: dict, sources: list[str]) -> None:
    for source in sources:
        assert len(got[source]) == len(want[source]), source
        for a, b in zip(got[source], want[source]):
            for key in ("proprio", "action", "object_pc", "seed", "table_pose", "init_qpos", "max_error", "collision"):
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{source} {key}")


def config(inputs: list[str], store: Path, **kw) -> GenerateConfig:
    return GenerateConfig(inputs=inputs, store=str(store), retarget=RetargetConfig(attempts=ATTEMPTS), seed=0, progress=False, **kw)


# ---------------------------------------------------------------------- local runs


def test_service_matches_single_process(local_ray, corpus, reference, tmp_path):
    inputs = corpus["short"][:3]
    summary = generate(config(inputs, tmp_path / "store.zarr", actors=2, threads=1))
    assert summary["videos"] == 3 and summary["attempts"] == 3 * ATTEMPTS and not summary["failed"]
    assert summary["actors"] == 2 and summary["ray"] == "joined"  # the fixture's Ray
    from hop_data.report import retarget_summary

    assert set(retarget_summary([], [], 1.0)) <= set(summary)  # the shape of `hop-data retarget`'s summary
    want = episodes(reference)
    assert_same_episodes(episodes(tmp_path / "store.zarr"), want, sorted(sources_of(inputs)))
    assert summary["accepted"] == sum(len(want[s]) for s in sources_of(inputs))
    # run again: everything is skipped, nothing is written twice
    again = generate(config(inputs, tmp_path / "store.zarr", actors=1))
    assert again["skipped_already_committed"] == 3 and again["videos"] == 0
    assert_each_source_once(tmp_path / "store.zarr", sources_of(inputs))


def test_worker_killed_mid_video_is_restarted_and_the_video_retried(local_ray, corpus, reference, tmp_path):
    inputs = corpus["long"] + corpus["short"][:2]
    killed: list[int] = []

    def kill_when_busy(slot, work):
        if killed or not work.path.endswith("long.hoi.npz"):
            return

        def shoot():
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # wait until the actor is inside the video, then SIGKILL it
                if ray.get(slot.handle.current.remote()) == os.path.abspath(work.path):
                    time.sleep(0.2)
                    os.kill(slot.pid, signal.SIGKILL)
                    killed.append(slot.pid)
                    return
                time.sleep(0.05)

        killed.append(-1)
        threading.Thread(target=shoot, daemon=True).start()

    summary = generate(config(inputs, tmp_path / "store.zarr", actors=2, threads=1), on_dispatch=kill_when_busy)
    assert killed[-1] > 0, "the actor was never seen working on the long video"
    assert summary["actor_restarts"] >= 1
    assert summary["retries"] == 1 or summary["committed_without_report"] == ["synth/0/long"]
    assert not summary["failed"]
    assert_each_source_once(tmp_path / "store.zarr", sources_of(inputs))
    # the retried video has the very episodes of the single-process run
    assert_same_episodes(episodes(tmp_path / "store.zarr"), episodes(reference), sorted(sources_of(inputs)))
    # every shard is consistent: arrays cut back to what was committed
    s = TrajectoryStore.open(tmp_path / "store.zarr")
    for shard in s.shard_ids():
        rows = json.loads((tmp_path / "store.zarr" / "shards" / shard / "data" / "proprio" / "zarr.json").read_text())
        assert rows["shape"][0] == s.shard_attrs(shard)["committed_steps"]


class PoisonActor(SimulatorActor):
    """Dies (as a segfaulting simulator would) on any input named poison*."""

    def retarget(self, path, seed=0):
        if Path(path).name.startswith("poison"):
            os._exit(1)
        return super().retarget(path, seed)


def test_bad_inputs_are_reported_and_a_poison_video_is_given_up(local_ray, corpus, tmp_path):
    bad = tmp_path / "garbage.hoi.npz"
    bad.write_text("not an npz")
    short = tmp_path / "tooshort.hoi.npz"
    hoi.save(short, _cut(hoi.load(corpus["short"][3]), 1.0, "synth/too-short"))
    poison = tmp_path / "poison.hoi.npz"
    hoi.save(poison, _cut(hoi.load(corpus["short"][0]), SHORT_S, "synth/poison"))
    inputs = [str(bad), str(short), str(poison), corpus["short"][3], str(tmp_path / "missing.hoi.npz")]
    summary = generate(config(inputs, tmp_path / "store.zarr", actors=1, max_failures=2), actor_cls=PoisonActor)
    failed = {Path(f["source"]).name: f["reason"] for f in summary["failed"]}
    assert set(failed) == {"garbage.hoi.npz", "tooshort.hoi.npz", "poison.hoi.npz", "missing.hoi.npz"}
    assert "not a readable .npz" in failed["garbage.hoi.npz"]
    assert "at least 2 s" in failed["tooshort.hoi.npz"]
    assert "no such file" in failed["missing.hoi.npz"]
    assert failed["poison.hoi.npz"].startswith("gave up after 2 failures") and "died" in failed["poison.hoi.npz"]
    assert summary["videos"] == 1 and summary["retries"] == 1 and summary["actor_restarts"] == 2
    assert_each_source_once(tmp_path / "store.zarr", sources_of([corpus["short"][3]]))


def test_shards_of_dead_writers_are_repaired_and_live_ones_left_alone(tmp_path):
    """What a driver does at start for writers of an earlier run (no Ray needed)."""
    import zarr

    from hop_data.service.driver import repair_orphan_shards
    from hop_data.store import Episode

    store = TrajectoryStore.open(tmp_path / "store.zarr", "a", num_points=8)
    ep = Episode(proprio=np.zeros((5, 23)), action=np.zeros((5, 23)), object_pc=np.zeros((5, 8, 3)), seed=1,
                 table_pose=np.array([0, 0, 0, 1, 0, 0, 0.0]), init_qpos=np.zeros(23), max_error=0.0, mean_error=0.0)  # fmt: skip
    live = store.writer("svc-live")  # a live writer in the middle of an append: must be left alone
    for writer_id in ("svc-dead", "svc-live", "other-dead"):
        if writer_id == "svc-live":
            live.append_episodes(f"video/{writer_id}", [ep])
        else:
            with store.writer(writer_id) as w:
                w.append_episodes(f"video/{writer_id}", [ep])
        # rows past the last commit: a writer killed (or busy) mid-append (here: one array grew first)
        arr = zarr.open_array(str(tmp_path / "store.zarr" / "shards" / writer_id / "data" / "object_pc"), mode="r+")
        arr.resize((9, 8, 3))
    try:
        assert repair_orphan_shards(store, "svc") == ["svc-dead"]  # only this service's shards
        assert repair_orphan_shards(store, "svc") == []  # nothing left to repair
    finally:
        live.close()
    def rows(shard):
        meta = tmp_path / "store.zarr" / "shards" / shard / "data" / "object_pc" / "zarr.json"
        return json.loads(meta.read_text())["shape"][0]

    assert (rows("svc-dead"), rows("svc-live"), rows("other-dead")) == (5, 9, 9)
    assert TrajectoryStore.open(tmp_path / "store.zarr").reader().num_episodes == 3


# ---------------------------------------------------------------------- lifting


def stub_lift(video: str, out_dir: str, options: dict) -> str:
    """Stands in for hop_data.lifting.api.lift_video: a synthetic trajectory per 'video'."""
    name = Path(video).stem
    if name.startswith("nohand"):
        raise ValueError(f"{video}: no hand found in any frame")
    traj = _cut(synth.make_trajectory(synth.video_rng(5, 0), 0, 5), SHORT_S, f"video/{name}")
    return str(hoi.save(Path(out_dir) / f"{name}.hoi.npz", traj))


def test_videos_are_lifted_in_tasks_then_retargeted(local_ray, tmp_path):
    clip, nohand = tmp_path / "clip.mp4", tmp_path / "nohand.mp4"
    clip.write_bytes(b"\0" * 64)
    nohand.write_bytes(b"\0" * 64)
    manifest = tmp_path / "inputs.txt"
    manifest.write_text("# videos\nclip.mp4\nnohand.mp4\n")
    summary = generate(config([], tmp_path / "store.zarr", manifest=str(manifest), actors=1), lift_fn=stub_lift)
    assert summary["videos_lifted"] == 1 and summary["videos"] == 1
    assert summary["failed"] == [{"source": str(nohand), "reason": f"lifting failed: {nohand}: no hand found in any frame"}]
    assert_each_source_once(tmp_path / "store.zarr", {"video/clip"})
    log = (tmp_path / "store.zarr-lifted" / "lifted.jsonl").read_text()
    assert json.loads(log)["video"] == str(clip)


@pytest.mark.parametrize("missing", ["code", "environment"])
def test_videos_without_a_lifting_install_fail_with_what_to_install(local_ray, tmp_path, monkeypatch, missing):
    if missing == "code":  # the lifting stage is not installed at all
        monkeypatch.setitem(sys.modules, "hop_data.lifting.api", None)
    else:  # installed, but no lifting environment (mediapipe is not in the test environment)
        monkeypatch.setenv("HOP_LIFT_PYTHON", str(tmp_path / "no-such-venv" / "bin" / "python"))
    (tmp_path / "clip.mp4").write_bytes(b"\0" * 64)
    summary = generate(config([str(tmp_path / "clip.mp4")], tmp_path / "store.zarr"))
    [failure] = summary["failed"]
    assert failure["source"] == str(tmp_path / "clip.mp4")
    assert "lifting is not" in failure["reason"]
    assert "make lift-env" in failure["reason"] and "--lift-python" in failure["reason"]


def test_a_real_video_is_lifted_by_the_lifting_environment_then_retargeted(local_ray, tmp_path):
    from hop_data.lifting import api, testclips

    try:
        api.lift_python()
    except FileNotFoundError:
        pytest.skip("no lifting environment (make lift-env)")
    if not (testclips.SHARED_DATA / testclips.DRINK).is_file():
        pytest.skip(f"shared test photos not found at {testclips.SHARED_DATA}")
    clip = testclips.sliding_clip(tmp_path / "slide.mp4", frames=72, step_px=(2.0, 0.0), focal=900.0)
    summary = generate(config([str(clip.path)], tmp_path / "store.zarr", actors=1))
    assert summary["videos_lifted"] == 1 and summary["videos"] == 1, summary["failed"]
    assert_each_source_once(tmp_path / "store.zarr", {"video/slide"})


# ---------------------------------------------------------------------- processes


def _started_under(temp: Path) -> list[int]:
    """Processes whose command line names our own Ray temp dir (unique to this test)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if str(temp).encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    out.append(int(entry))
            except OSError:
                continue
    return out


def assert_loopback_only(pids: list[int]) -> None:
    """Every TCP socket these processes listen on is bound to 127.0.0.1."""
    try:
        out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("ss is not available to list listening sockets")
    mine = [line for line in out.splitlines() if any(f"pid={p}," in line for p in pids)]
    assert mine, "no listening sockets found for the Ray processes"
    for line in mine:
        local = line.split()[3]
        assert local.rsplit(":", 1)[0] in ("127.0.0.1", "[::ffff:127.0.0.1]"), line


def test_killed_driver_then_rerun_completes_without_duplicates(local_ray, corpus, tmp_path):
    store = tmp_path / "store.zarr"
    cmd = [PYTHON, "-m", "hop_data.service", *corpus["short"], "--store", str(store), "--attempts", str(ATTEMPTS),
           "--actors", "1", "--num-cpus", "1", "--json"]  # fmt: skip
    env = dict(os.environ, RAY_ADDRESS="")  # its own embedded Ray
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    family: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and driver.poll() is None:
            family = sorted(set(family) | set(processes.descendants(driver.pid)))
            if (store / "zarr.json").exists() and TrajectoryStore.open(store).committed_sources():
                break
            time.sleep(0.1)
        assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
        family = sorted(set(family) | set(processes.descendants(driver.pid)))
        assert_loopback_only([driver.pid, *family])  # the embedded Ray listens on loopback only
        driver.kill()  # SIGKILL: no cleanup of any kind in the driver
        driver.wait()
    finally:
        # the GCS and raylet follow their driver; Ray's dashboard and runtime-env agents linger: end them
        processes.end([driver.pid, *family])
        driver.stdout.close()
        driver.stderr.close()
    first = set(TrajectoryStore.open(store).committed_sources())
    assert 1 <= len(first) < 4
    # the rerun, through `hop-data generate` this time: its --json stdout is one JSON object
    hop_data = str(Path(PYTHON).parent / "hop-data")
    rerun = subprocess.run([hop_data, "generate", *cmd[3:]], env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout)
    assert summary["skipped_already_committed"] == len(first) and summary["videos"] == 4 - len(first)
    assert summary["ray"] == "embedded"
    assert not summary["failed"]
    assert_each_source_once(store, sources_of(corpus["short"]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_job_submitted_to_a_loopback_cluster_through_submit_sh(corpus, tmp_path):
    """`ray start --head` on 127.0.0.1 with token auth, then cluster/submit.sh."""
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = dict(
        os.environ,
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token),
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",  # keep 127.0.0.1 as the node address (Ray maps it to the LAN IP otherwise)
        PATH=f"{Path(PYTHON).parent}:{os.environ['PATH']}",  # the job's `python` is this environment's
    )
    env.pop("RAY_ADDRESS", None)
    dashboard = _free_port()
    temp = Path(f"/tmp/hop-ray-{os.getpid()}-{secrets.token_hex(3)}")  # short: Ray's socket paths have a length limit
    head_cmd = [str(Path(PYTHON).parent / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                "--port", str(_free_port()), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
                "--dashboard-agent-listen-port", str(_free_port()), "--ray-client-server-port", str(_free_port()),
                "--num-cpus", "2", "--temp-dir", str(temp), "--disable-usage-stats", "--include-dashboard", "true"]  # fmt: skip
    head = subprocess.Popen(head_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    family: list[int] = []
    try:
        url = f"http://127.0.0.1:{dashboard}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{url}/api/version", timeout=2)
                break
            except urllib.error.HTTPError:  # 401: up, and refusing requests without the token
                break
            except OSError:
                assert head.poll() is None, "ray start --head exited"
                time.sleep(0.5)
        family = processes.descendants(head.pid)
        assert_loopback_only(family)
        store = tmp_path / "store.zarr"
        run = subprocess.run(
            ["bash", str(REPO / "cluster" / "submit.sh"), *corpus["short"][:2], "--store", str(store),
             "--attempts", str(ATTEMPTS), "--actors", "1", "--json"],  # fmt: skip
            cwd=REPO, env=dict(env, RAY_ADDRESS=url), capture_output=True, text=True, timeout=300,
        )
        family = sorted(set(family) | set(processes.descendants(head.pid)))
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert '"ray": "joined"' in run.stdout  # (the job's log: Ray's lines, then the JSON summary)
        assert_each_source_once(store, sources_of(corpus["short"][:2]))
        # without the token the cluster refuses the job API
        denied = subprocess.run([str(Path(PYTHON).parent / "ray"), "job", "list", "--address", url],
                                env=dict(env, RAY_AUTH_TOKEN="not-the-token"), capture_output=True, text=True)  # fmt: skip
        assert denied.returncode != 0
    finally:
        family = sorted(set(family) | set(processes.descendants(head.pid)))
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            head.kill()
        processes.end([head.pid, *family, *_started_under(temp)])
        subprocess.run(["rm", "-rf", str(temp)], check=False)


def test_json_stdout_holds_the_summary_alone():
    """With --json, whatever else writes to file descriptor 1 (a print, C code, a
    child process: Ray's forwarded lines and logs) lands on stderr."""
    script = (
        "import os, subprocess, sys\n"
        "from hop_data.service.run import json_stdout\n"
        "out = json_stdout(True)\n"
        "print('a print')\n"
        "os.write(1, b'fd 1\\n')\n"
        "subprocess.run([sys.executable, '-c', 'print(\"a child\")'])\n"
        "print('{\"videos\": 1}', file=out)\n"
        "out.flush()\n"
    )
    run = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"videos": 1}
    assert all(line in run.stderr for line in ("a print", "fd 1", "a child"))
