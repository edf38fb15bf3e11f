"""The service's Ray workers: one simulator actor per store shard, and the lifting task.

``SimulatorActor`` is a plain class; the driver turns it into a Ray actor with
``num_cpus`` = its simulator threads (or a GPU fraction), ``max_restarts=-1``
and ``max_task_retries=0``: Ray restarts a dead actor, the driver decides what
to retry, because only the driver knows which videos are committed.

Each actor owns one store shard. Its writer id is derived from the actor's
identity (``svc-<actor id>``): Ray keeps the actor id when it restarts an
actor, so the restarted process reopens *its own* shard, and opening a shard
repairs it (arrays cut back to the last commit), so a process killed in the
middle of a write leaves nothing half-written behind. The dead process's
``flock`` was dropped by the kernel; if the lock is still held for a moment
(the old process not yet gone, or a driver repairing orphans), the
constructor waits for it, and after ``LOCK_WAIT_S`` takes a new shard
(``<id>-<token>``): the old process lives on (a lost node's worker). A
different actor never shares the id, so two writers never collide on a local
disk; on object storage (no locks) a restarted actor reopens its shard, so a
predecessor that lives on there is the one case a shard has two writers.

Calls run in two concurrency groups: ``retarget`` in the default group (one
video at a time) and the cheap control calls (``info``, ``current``, ``close``)
in ``control``, so that the driver can ask a busy actor who it is.
"""

from __future__ import annotations

import importlib
import os
import secrets
import socket
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import ray

from hop_data.retarget.config import RetargetConfig

LOCK_WAIT_S = 5.0  # how long a (re)starting actor waits for its shard's lock before taking a new shard


@dataclass
class VideoReport:
    """What ``retarget_summary`` needs of one retargeted video, without the episodes
    (they went to the store). Per-frame errors travel as float32: a 700-attempt,
    300-step video is then 1.7 MB instead of 3.4 MB on its way to the driver."""

    source: str
    path: str
    attempts: int
    steps: int
    accepted: np.ndarray  # (N,) bool
    frame_errors: np.ndarray  # (N, T) float32, m
    tracking_errors: np.ndarray  # (N, T) float32, m
    arm_contact: np.ndarray  # (N,) bool
    seconds_physics: float
    seconds_solving: float
    seconds_total: float
    seconds_cpu: float  # CPU time of the actor's process (all its threads) for this video
    episodes_committed: int
    writer_id: str
    simulated: np.ndarray | None = None  # (N,) bool: placed and simulated (the others were refused before)
    video: dict | None = None  # report.video_summary: acceptance, rejections by cause, kept errors

    @property
    def attempt_frames(self) -> int:
        """Attempt-frames simulated."""
        n = self.attempts if self.simulated is None else int(np.count_nonzero(self.simulated))
        return n * self.steps

    @classmethod
    def from_result(
        cls, result: Any, path: str, episodes_committed: int, writer_id: str, seconds_cpu: float, video: dict | None = None
    ) -> VideoReport:
        from hop_data.report import video_summary

        return cls(
            source=result.source, path=path, attempts=result.attempts, steps=result.steps,
            accepted=np.asarray(result.accepted, bool), frame_errors=result.frame_errors.astype(np.float32),
            tracking_errors=result.tracking_errors.astype(np.float32), arm_contact=np.asarray(result.arm_contact, bool),
            seconds_physics=result.seconds_physics, seconds_solving=result.seconds_solving,
            seconds_total=result.seconds_total, seconds_cpu=seconds_cpu, episodes_committed=episodes_committed,
            writer_id=writer_id, simulated=np.asarray(result.simulated, bool),
            video=video if video is not None else video_summary(result, path),
        )  # fmt: skip


@dataclass
class Outcome:
    """The answer of ``SimulatorActor.retarget`` for one input file.

    status: ``done`` (retargeted and committed), ``skipped`` (already committed
    in the store), ``bad`` (the file breaks format 1, is too short or is
    refused by a check — mislabelled hand, no interaction: never retried;
    ``reason`` says why, ``cause`` names the check or ``bad_input``)."""

    status: str
    path: str
    source: str | None = None
    reason: str | None = None
    report: VideoReport | None = None
    cause: str | None = None


@dataclass
class ActorInfo:
    pid: int
    host: str
    actor_id: str
    writer_id: str
    threads: int
    reconstructed: bool
    committed_sources: int  # in this actor's shard when it (re)opened it
    extra: dict[str, Any] = field(default_factory=dict)


def writer_id_for(prefix: str, actor_id: str) -> str:
    """The shard of an actor: stable across its restarts, unique across actors."""
    return f"{prefix}-{actor_id}"


class SimulatorActor:
    """One retargeting simulator and the store shard it writes.

    The driver passes every argument from its ``GenerateConfig`` (where the
    defaults are):

    Args:
        store: store path or fsspec URL (created if missing).
        config: how each video is retargeted (``GenerateConfig.retarget``).
        threads: simulator threads of this actor (= its ``num_cpus``).
        writer_prefix: the shard is ``<writer_prefix>-<actor id>``.
        storage_options: fsspec options for an object-storage store.
    """

    def __init__(
        self,
        store: str,
        config: RetargetConfig,
        threads: int,
        writer_prefix: str,
        storage_options: dict[str, Any] | None = None,
    ):
        from hop_data.retarget.engine import Retargeter
        from hop_data.store import TrajectoryStore

        self.config = config
        self.threads = int(threads)
        self.retargeter = Retargeter(self.config, threads=self.threads)
        # outside Ray (tests of the class) the pid stands for the actor id; asking Ray
        # for its runtime context there would start a whole local Ray
        ctx = ray.get_runtime_context() if ray.is_initialized() else None
        in_actor = ctx is not None and ctx.get_actor_id() is not None
        self.actor_id = ctx.get_actor_id() if in_actor else f"pid{os.getpid()}"
        with warnings.catch_warnings():  # the property itself uses a deprecated accessor
            warnings.simplefilter("ignore")
            self.reconstructed = bool(ctx.was_current_actor_reconstructed) if in_actor else False
        self.store = TrajectoryStore.open(
            store, "a", num_points=self.config.scene.num_points, storage_options=storage_options
        )
        self.writer = self._open_shard(writer_id_for(writer_prefix, self.actor_id))
        self.writer_id = self.writer.writer_id
        self._current: str | None = None

    def _open_shard(self, writer_id: str) -> Any:
        """This actor's shard, repaired (opening cuts back what a killed predecessor
        left uncommitted). A lock still held after ``LOCK_WAIT_S`` means the
        predecessor lives on (a lost node's worker that Ray presumed dead): it keeps
        its shard, and this process writes a new one, ``<writer id>-<token>``.
        Exactly-once holds across shards (a commit checks every shard)."""
        from hop_data.store import StoreLockedError

        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                return self.store.writer(writer_id)
            except StoreLockedError:
                if time.monotonic() > deadline:
                    return self.store.writer(f"{writer_id}-{secrets.token_hex(3)}")
                time.sleep(0.5)

    # ------------------------------------------------------------------ control group
    @ray.method(concurrency_group="control")
    def info(self) -> ActorInfo:
        return ActorInfo(
            pid=os.getpid(), host=socket.gethostname(), actor_id=self.actor_id, writer_id=self.writer_id,
            threads=self.threads, reconstructed=self.reconstructed,
            committed_sources=len(self.writer.committed_sources),
        )  # fmt: skip

    @ray.method(concurrency_group="control")
    def current(self) -> str | None:
        """The input this actor is retargeting now (None when idle)."""
        return self._current

    # ------------------------------------------------------------------ work
    def retarget(self, path: str, seed: int) -> Outcome:
        """Retarget one ``.hoi.npz`` (all attempts) and commit its accepted
        episodes to this actor's shard in one commit."""
        from hop_data.report import video_summary
        from hop_data.retarget.checks import RefusedInput, load_for_retargeting

        try:
            traj = load_for_retargeting(path, self.config.allow_no_interaction)
        except RefusedInput as exc:  # a mislabelled hand, no interaction
            return Outcome("bad", path, reason=str(exc), cause=exc.cause)
        except (ValueError, OSError) as exc:  # HOIFormatError is a ValueError; missing files are OSErrors
            return Outcome("bad", path, reason=str(exc), cause="bad_input")
        if self.writer.is_committed(traj.source):
            return Outcome("skipped", path, traj.source)
        self._current = path
        cpu0 = time.process_time()
        try:
            result = self.retargeter.run(traj, seed=seed)
            video = video_summary(result, path)
            try:
                commit = self.writer.append_episodes(traj.source, result.episodes, report=video)
            except Exception:
                self._reopen()  # leave the shard repaired for the retry, then let the driver decide
                raise
        finally:
            self._current = None
        if commit.skipped:  # another shard committed it while we worked (a presumed-dead worker was not)
            return Outcome("skipped", path, traj.source, reason="committed by another shard meanwhile")
        report = VideoReport.from_result(result, path, commit.episodes, self.writer_id, time.process_time() - cpu0, video)
        return Outcome("done", path, traj.source, report=report)

    def _reopen(self) -> None:
        self.writer.close()
        self.writer = self.store.writer(self.writer_id)

    @ray.method(concurrency_group="control")
    def close(self) -> None:
        """Release the shard (the driver calls this before ending the actor)."""
        self.writer.close()


CONCURRENCY_GROUPS = {"control": 1}  # ray.remote(concurrency_groups=...) of the actor class


# ---------------------------------------------------------------------- lifting

LIFT_INSTALL_HINT = (
    "create the lifting environment with `make lift-env` (.venv-lift beside the source tree: "
    "mediapipe==0.10.21, numpy<2), or point --lift-python (HOP_LIFT_PYTHON) at such a Python; "
    "on a cluster, create it on every node in cluster/cluster.yaml's setup commands"
)


class LiftingUnavailable(RuntimeError):
    """The lifting stage (code, environment or hand backend) is not installed where the task ran."""


def lift_with_api(video: str, out_dir: str, options: dict[str, Any]) -> str:
    """Default lifting function: ``hop_data.lifting.api.lift_video``, which runs
    in-process where MediaPipe is importable and otherwise runs its worker in the
    lifting environment (``HOP_LIFT_PYTHON`` or ``.venv-lift``), exchanging files.
    Returns the written ``.hoi.npz`` path."""
    try:
        api = importlib.import_module("hop_data.lifting.api")
    except ImportError as exc:
        raise LiftingUnavailable(f"video lifting is not installed ({exc}); {LIFT_INSTALL_HINT}") from None
    try:
        return str(api.lift_video(video, out_dir, **options))
    except (api.HandBackendUnavailable, FileNotFoundError) as exc:  # no backend / no lifting environment
        raise LiftingUnavailable(f"video lifting is not available: {exc}; {LIFT_INSTALL_HINT}") from None


def lifting_problem() -> str | None:
    """Why videos cannot be lifted from this machine (None: they can)."""
    try:
        api = importlib.import_module("hop_data.lifting.api")
    except ImportError as exc:
        return f"video lifting is not installed ({exc}); {LIFT_INSTALL_HINT}"
    if api.lifting_available():
        return None
    try:
        api.lift_python()
    except FileNotFoundError as exc:
        return f"video lifting is not available: {exc}; {LIFT_INSTALL_HINT}"
    return None


def lift_task(fn: Callable[[str, str, dict[str, Any]], str], video: str, out_dir: str, options: dict[str, Any]) -> dict:
    """Body of the lifting Ray task: {"path": written .hoi.npz} or {"bad": reason}.

    A ``ValueError`` (unreadable video, no hand found, bad option) and a missing
    lifting install are the input's or the setup's fault: reported, never
    retried. Any other exception propagates and the driver retries the video."""
    try:
        return {"path": str(fn(video, out_dir, options))}
    except LiftingUnavailable as exc:
        return {"bad": str(exc)}
    except ValueError as exc:
        return {"bad": f"lifting failed: {exc}"}
