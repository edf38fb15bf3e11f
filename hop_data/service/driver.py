"""The data-generation driver: inputs -> (lifting tasks) -> simulator actors -> store.

The shape (DESIGN.md, "Ray service shape"):

* one ``SimulatorActor`` per simulator, ``num_cpus`` = its threads (or a GPU
  fraction), ``max_restarts=-1``, ``max_task_retries=0``;
* a bounded set of videos in flight: each goes to a free actor, and the driver
  blocks in ``ray.wait`` until one finishes (backpressure: nothing queues up
  inside Ray);
* the driver owns retries. An actor that dies mid-video (its task raises
  ``RayActorError``) is restarted by Ray; the driver probes it with a cheap call
  before giving it work again, and re-queues the video unless the store shows
  it committed (the actor may die after its commit but before its answer). A
  video that fails ``max_failures`` times is given up and reported. A bad input
  (format error, too short, unreadable, hand-less video) is reported at once and
  never retried. An actor that cannot come back (its process cannot start) is
  replaced by a new one, a bounded number of times.
* Ray itself failing ends the run with ``RayLostError`` (status 3 at the
  command): the embedded node's GCS or raylet died (checked every second), or
  no actor has been up for ``placement_timeout_s`` (lost or too small nodes).
  The message names what died, says the store is intact and how to resume
  (docs/reliability.md);
* a driver that dies is simply run again: actors skip committed videos, so the
  rerun completes without duplicates. Shards of writers that died with an old
  driver are repaired on the next run (local stores, where a lock tells a dead
  writer from a live one).

Without an address (``--address`` / ``RAY_ADDRESS``) the driver starts an
embedded Ray on this machine: loopback only, no dashboard, token
authentication on, sized to the cores. With an address it joins that cluster.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hop_data.inputs import HOI_SUFFIX, VIDEO_SUFFIXES, expand_inputs

from .actors import (
    CONCURRENCY_GROUPS,
    LIFT_INSTALL_HINT,
    Outcome,
    SimulatorActor,
    lift_task,
    lift_with_api,
    lifting_problem,
)

from .config import GenerateConfig
from .errors import RayLostError, ServiceError, server_lost  # noqa: F401 (public here too)
from .ray_runtime import connect, dead_server, local_cpus, shutdown, start_local_ray, token_auth_enabled  # noqa: F401

WAIT_S = 1.0  # ray.wait timeout: the progress bar's refresh period
STALL_WARN_S = 60.0  # say so when nothing finished for this long (e.g. actors waiting for resources)


# ------------------------------------------------------------------------------ inputs


def expand(items: list[str], manifest: str | None = None) -> list[str]:
    """Inputs -> sorted unique paths: ``.hoi.npz`` files and videos.

    Directories give their ``*.hoi.npz`` and video files; patterns their
    matches; a manifest lists one input per line. Anything that matches nothing
    is kept as is, so that it is reported as failed."""
    items = list(items)
    if manifest:
        base = Path(manifest).parent
        try:
            lines = Path(manifest).read_text().splitlines()
        except OSError as exc:
            raise ServiceError(f"{manifest}: cannot read the manifest ({exc})") from None
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line:
                items.append(line if "://" in line or Path(line).is_absolute() else str(base / line))
    return expand_inputs(items, (HOI_SUFFIX, *VIDEO_SUFFIXES))


def is_video(path: str) -> bool:
    """Inputs that are not ``.hoi.npz`` files are videos to lift first."""
    return not path.endswith(HOI_SUFFIX)


def peek_source(path: str) -> str | None:
    """The ``source`` id stored in a ``.hoi.npz`` (None when unreadable)."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as npz:
            return str(npz["source"])
    except Exception:  # any unreadable file: the caller treats it as not committed
        return None


def repair_orphan_shards(store: Any, prefix: str) -> list[str]:
    """The store's repair of shards ``<prefix>-*`` left by dead writers (kept
    under this name for its callers): ``TrajectoryStore.repair_orphan_shards``."""
    return store.repair_orphan_shards(prefix)


# ------------------------------------------------------------------------------ the run


@dataclass
class Work:
    path: str
    kind: str  # "retarget" (a .hoi.npz) or "lift" (a video)
    origin: str | None = None  # the video a lifted file came from
    failures: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """What failures are reported under: the input the user gave."""
        return self.origin or self.path


@dataclass
class Slot:
    """One simulator actor, as the driver sees it."""

    index: int
    handle: Any
    state: str = "starting"  # starting | free | busy | probing | dead
    pid: int | None = None
    host: str | None = None
    writer_id: str | None = None
    restarts: int = 0
    work: Work | None = None
    since: float = 0.0


class Generator:
    """One run of the service (``generate`` is the function form).

    ``actor_cls`` and ``lift_fn`` replace the simulator actor class and the
    lifting function (tests inject faults and stubs with them);
    ``on_dispatch(slot, work)`` is called whenever a video is handed to an actor,
    ``on_ray_up()`` once Ray runs (the supervisor of the embedded Ray waits for it)."""

    def __init__(
        self,
        config: GenerateConfig,
        actor_cls: type = SimulatorActor,
        lift_fn: Callable[[str, str, dict[str, Any]], str] | None = None,
        on_dispatch: Callable[[Slot, Work], None] | None = None,
        on_ray_up: Callable[[], object] | None = None,
    ):
        self.cfg = config
        self.actor_cls = actor_cls
        self.lift_fn = lift_fn
        self.on_dispatch = on_dispatch
        self.on_ray_up = on_ray_up
        self.slots: list[Slot] = []
        self.results: list[Any] = []
        self.failed: list[dict[str, str]] = []
        self.skipped = 0
        self.committed_without_report: list[str] = []
        self.retries = 0
        self.replacements = 0
        self.lifted = 0
        self._bar = None
        self._t_first_actor: float | None = None  # when the first actor answered: the summary's clock starts

    # -------------------------------------------------------------- messages
    def say(self, text: str) -> None:
        if not self.cfg.messages:
            return
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    # -------------------------------------------------------------- main
    def run(self) -> dict[str, Any]:
        import ray

        from hop_data.store import TrajectoryStore

        cfg = self.cfg
        t_start = time.perf_counter()
        paths = expand(cfg.inputs, cfg.manifest)
        if not paths:
            raise ServiceError("no inputs given")
        try:
            self.store = TrajectoryStore.open(
                cfg.store, "a", num_points=cfg.retarget.scene.num_points, storage_options=cfg.storage_options
            )
        except ValueError as exc:  # StoreError is a ValueError
            raise ServiceError(str(exc)) from exc
        repaired = self.store.repair_orphan_shards(cfg.writer_prefix) if cfg.repair_orphans else []
        if repaired:
            self.say(f"repaired {len(repaired)} shard(s) left by writers of an earlier run: {', '.join(repaired)}")

        lost = False
        try:
            owns_ray = connect(cfg.address, cfg.num_cpus, cfg.log_to_driver)
            self.embedded = owns_ray and not (cfg.address or os.environ.get("RAY_ADDRESS"))  # we started it
            if self.on_ray_up is not None:
                self.on_ray_up()
            try:
                self.one_machine = _single_local_node()
                queue, lifts = self._plan(paths)
                if queue or lifts:
                    self._start_actors(len(queue) + len(lifts), bool(lifts))
                    self._loop(queue, lifts)
                t_end = time.perf_counter()
                # as hop-data retarget's clock starts after its Retargeter is built, the service's
                # starts when its first actor is up (Ray, actor start and imports: seconds_startup)
                t_ready = self._t_first_actor or t_end
            except RayLostError:
                lost = True
                raise
            finally:
                self._release(owns_ray, lost)
        except RayLostError as exc:
            raise exc.at(cfg.store) from None
        return self._summary(t_end - t_ready, t_ready - t_start, repaired)

    def _release(self, owns_ray: bool, lost: bool) -> None:
        """Stop the actors and, if we started it, Ray. After a loss of the
        embedded node nothing is asked of it (a dead raylet answers nothing):
        its processes are killed and the disconnect is bounded."""
        if not (lost and self.embedded):
            self._stop_actors()
        if self._bar is not None:
            self._bar.close()
        if owns_ray:
            shutdown(lost=lost)

    def _plan(self, paths: list[str]) -> tuple[deque[Work], deque[Work]]:
        """Inputs -> retarget queue and lifting queue (videos whose lifting cannot
        run here are reported at once)."""
        queue: deque[Work] = deque()
        lifts: deque[Work] = deque()
        self._lift_index: dict[str, str] = {}
        for path in paths:
            if self.one_machine and "://" not in path and not os.path.exists(path):
                self.failed.append({"source": path, "reason": f"{path}: no such file or directory"})
            elif not is_video(path):
                queue.append(Work(path, "retarget"))
            else:
                lifts.append(Work(path, "lift"))
        # longest first (file size ~ frames), so that a run does not end waiting on one long video
        queue = deque(sorted(queue, key=lambda w: -_size(w.path)))
        if lifts:
            problem = self._setup_lifting()
            if problem:
                for work in lifts:
                    self.failed.append({"source": work.path, "reason": problem})
                lifts.clear()
            else:  # videos lifted by an earlier run are not lifted again
                for work in list(lifts):
                    done = self._lift_index.get(_here(work.path))
                    if done and os.path.exists(done):
                        lifts.remove(work)
                        queue.append(Work(done, "retarget", origin=work.path))
        self.total = len(paths)
        return queue, lifts

    # -------------------------------------------------------------- lifting
    def _setup_lifting(self) -> str | None:
        """Choose the lifting tasks' environment; a reason when videos cannot be lifted."""
        import ray

        cfg = self.cfg
        if cfg.lift_dir:
            self.lift_dir = cfg.lift_dir
        elif self.store.local_path is not None:
            self.lift_dir = str(self.store.local_path) + "-lifted"
        else:
            return f"videos need --lift-dir (a shared directory for the lifted .hoi.npz) with a store at {cfg.store}"
        os.makedirs(self.lift_dir, exist_ok=True)
        self._lift_log = Path(self.lift_dir) / "lifted.jsonl"
        if self._lift_log.exists():
            for line in self._lift_log.read_text().splitlines():
                try:
                    entry = json.loads(line)
                    self._lift_index[entry["video"]] = entry["hoi"]
                except (ValueError, KeyError):
                    continue  # a line cut short by a killed driver
        # The lifting task runs lift_video, which lifts in-process where MediaPipe is
        # importable and otherwise in its worker in the lifting environment (its own
        # virtualenv: mediapipe needs numpy < 2); only files cross between them.
        runtime_env: dict[str, Any] = dict(cfg.lift_runtime_env or {})
        if self.lift_fn is None:  # (tests inject a function instead)
            self.lift_fn = lift_with_api
            if cfg.lift_python:
                if self.one_machine and not os.path.isfile(cfg.lift_python):
                    return f"video lifting: --lift-python {cfg.lift_python} is not a file; {LIFT_INSTALL_HINT}"
                python = os.path.abspath(cfg.lift_python) if os.path.isfile(cfg.lift_python) else cfg.lift_python
                runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), "HOP_LIFT_PYTHON": python}
            elif not cfg.lift_runtime_env and self.one_machine:
                problem = lifting_problem()
                if problem:
                    return problem
        options: dict[str, Any] = {"num_cpus": cfg.lift_cpus, "max_retries": 0}
        if runtime_env:
            options["runtime_env"] = runtime_env
        self._lift_remote = ray.remote(lift_task).options(**options)
        return None

    def _submit_lift(self, work: Work) -> Any:
        return self._lift_remote.remote(self.lift_fn, _here(work.path), self.lift_dir, dict(self.cfg.lift_options))

    # -------------------------------------------------------------- actors
    def _actor_count(self, inputs: int) -> int:
        import ray

        cfg = self.cfg
        if cfg.actors > 0:
            return cfg.actors
        cpus = float(ray.cluster_resources().get("CPU", 1))
        n = int(cpus // cfg.threads)
        if cfg.gpus_per_actor > 0:
            n = min(n, int(float(ray.cluster_resources().get("GPU", 0)) // cfg.gpus_per_actor))
        return max(1, min(n, inputs))

    def _remote_class(self) -> Any:
        import ray

        cfg = self.cfg
        cls = ray.remote(concurrency_groups=CONCURRENCY_GROUPS)(self.actor_cls)
        options: dict[str, Any] = {"num_cpus": cfg.threads, "max_restarts": -1, "max_task_retries": 0}
        if cfg.gpus_per_actor > 0:
            options["num_gpus"] = cfg.gpus_per_actor
        return cls.options(**options)

    def _new_actor(self, index: int) -> Slot:
        cfg = self.cfg
        handle = self._cls.remote(
            self.store.url if self.store.local_path is None else str(self.store.local_path),
            cfg.retarget, threads=cfg.threads, writer_prefix=cfg.writer_prefix, storage_options=cfg.storage_options,
        )  # fmt: skip
        return Slot(index, handle)

    def _start_actors(self, inputs: int, lifting: bool) -> None:
        from tqdm import tqdm

        cfg = self.cfg
        n = self._actor_count(max(1, inputs))
        if cfg.actors == 0 and lifting and n > 1:
            n -= 1  # actors hold their CPUs for good: leave one to the lifting tasks
        self.max_replacements = cfg.max_actor_replacements or n
        self._cls = self._remote_class()
        self.slots = [self._new_actor(i) for i in range(n)]
        self.pending: dict[Any, tuple[str, Slot | None, Work | None]] = {}
        for slot in self.slots:
            self._probe(slot)  # each gets work as soon as it answers
        self._bar = tqdm(total=self.total, unit="video", desc="generate", disable=not cfg.progress, file=sys.stderr)
        self._bar.update(len(self.failed))

    def _probe(self, slot: Slot) -> None:
        """Ask an actor who it is; it gets work when it answers (after a restart, too)."""
        slot.state = "probing" if slot.state != "starting" else "starting"
        slot.since = time.monotonic()
        self.pending[slot.handle.info.remote()] = ("probe", slot, None)

    def _stop_actors(self) -> None:
        import ray

        live = [s for s in self.slots if s.state in ("free", "busy")]
        closing = [s.handle.close.remote() for s in live]
        if closing:
            ray.wait(closing, num_returns=len(closing), timeout=10)
        for slot in self.slots:
            try:
                ray.kill(slot.handle, no_restart=True)
            except Exception:  # already gone
                pass

    # -------------------------------------------------------------- scheduling
    def _loop(self, queue: deque[Work], lifts: deque[Work]) -> None:
        import ray

        cfg = self.cfg
        in_flight_limit = cfg.max_in_flight or len(self.slots)
        lift_limit = cfg.lift_in_flight or max(1, int(float(ray.cluster_resources().get("CPU", 1)) // 4))
        self._t0 = time.perf_counter()
        last_event = self._last_placed = time.monotonic()
        while queue or lifts or any(kind != "probe" for kind, _, _ in self.pending.values()):
            self._check_ray()
            if not any(s.state != "dead" for s in self.slots):
                self._abandon(queue, lifts, "no simulator actor could be started or restarted")
                return
            busy = sum(1 for kind, _, _ in self.pending.values() if kind == "video")
            for slot in self.slots:
                if not queue or busy >= in_flight_limit:
                    break
                if slot.state == "free":
                    self._dispatch(slot, queue.popleft())
                    busy += 1
            lifting = sum(1 for kind, _, _ in self.pending.values() if kind == "lift")
            while lifts and lifting < lift_limit:
                work = lifts.popleft()
                self.pending[self._submit_lift(work)] = ("lift", None, work)
                lifting += 1
            ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=WAIT_S)
            if not ready:
                if time.monotonic() - last_event > STALL_WARN_S:
                    starting = sum(1 for s in self.slots if s.state == "starting")
                    self.say(
                        f"nothing finished for {STALL_WARN_S:.0f} s: {starting} actor(s) not up yet, {lifting} lifting "
                        f"task(s) out; free resources {ray.available_resources()} of {ray.cluster_resources()} "
                        "(actors hold their CPUs for good: leave some to lifting tasks)"
                    )
                    last_event = time.monotonic()
                continue
            last_event = time.monotonic()
            for ref in ready:
                kind, slot, work = self.pending.pop(ref)
                if kind == "probe":
                    self._on_probe(ref, slot)
                elif kind == "video":
                    self._on_video(ref, slot, work, queue)
                else:
                    self._on_lift(ref, work, queue, lifts)
            self._postfix()

    # -------------------------------------------------------------- Ray's health
    def _check_ray(self) -> None:
        """Raise ``RayLostError`` when the run cannot go on: the embedded node's
        GCS or raylet died, or no actor has been up for ``placement_timeout_s``
        (a cluster whose nodes are gone or full). Cheap: a pid check, and the
        cluster's resources only when a message needs them."""
        if self.embedded:
            dead = dead_server()
            if dead:
                raise RayLostError(server_lost(dead))
        now = time.monotonic()
        if any(s.state in ("free", "busy") for s in self.slots):
            self._last_placed = now
        elif now - self._last_placed > self.cfg.placement_timeout_s:
            raise RayLostError(self._unplaceable(now - self._last_placed), "add nodes (or lower --threads)")

    def _unplaceable(self, waited: float) -> str:
        """Why no actor runs: what one needs, what the alive nodes offer, which nodes are gone."""
        import ray

        cfg = self.cfg
        needs = {"CPU": float(cfg.threads), **({"GPU": cfg.gpus_per_actor} if cfg.gpus_per_actor > 0 else {})}
        nodes = ray.nodes()
        alive = [n for n in nodes if n.get("Alive")]
        gone = [f"{n.get('NodeID', '?')[:12]} at {n.get('NodeManagerAddress', '?')}" for n in nodes if n not in alive]
        free, total = ray.available_resources(), ray.cluster_resources()

        def amounts(resources: dict[str, float]) -> str:
            return ", ".join(f"{k} {resources.get(k, 0.0):g}" for k in needs)

        return (
            f"no simulator actor could be placed for {waited:.0f} s "
            f"(--placement-timeout-s {cfg.placement_timeout_s:g}): each needs {amounts(needs)}; "
            f"the {len(alive)} alive node(s) have {amounts(free)} free of {amounts(total)}"
            + (f"; node(s) lost: {', '.join(gone)}" if gone else "")
        )

    def _dispatch(self, slot: Slot, work: Work) -> None:
        slot.state, slot.work, slot.since = "busy", work, time.monotonic()
        ref = slot.handle.retarget.remote(_here(work.path), self.cfg.seed)
        self.pending[ref] = ("video", slot, work)
        if self.on_dispatch is not None:
            self.on_dispatch(slot, work)

    def _on_probe(self, ref: Any, slot: Slot) -> None:
        import ray

        try:
            info = ray.get(ref)
        except ray.exceptions.ActorUnavailableError:  # restarting: ask again
            time.sleep(0.2)
            self._probe(slot)
            return
        except ray.exceptions.RayActorError as exc:  # it cannot come back (e.g. its constructor fails)
            self._replace(slot, exc)
            return
        if slot.pid is not None and info.pid != slot.pid:
            shard = (
                f"it reopened and repaired its shard {info.writer_id}" if info.writer_id == slot.writer_id else
                f"its shard {slot.writer_id} is still held by its old process (on a lost node?): "
                f"it writes {info.writer_id}"
            )  # fmt: skip
            self.say(f"actor {slot.index} restarted (pid {slot.pid} -> {info.pid}); {shard}")
        slot.pid, slot.host, slot.writer_id, slot.state = info.pid, info.host, info.writer_id, "free"
        if self._t_first_actor is None:
            self._t_first_actor = time.perf_counter()

    def _replace(self, slot: Slot, exc: BaseException) -> None:
        import ray

        reason = _short(exc)
        try:
            ray.kill(slot.handle, no_restart=True)
        except Exception:  # already gone
            pass
        if self.replacements >= self.max_replacements:
            slot.state = "dead"
            self.say(f"actor {slot.index} is dead and not replaced (replacement budget spent): {reason}")
            self._dead_reason = reason
            return
        self.replacements += 1
        self.say(f"actor {slot.index} cannot come back; starting a new one ({reason})")
        new = self._new_actor(slot.index)
        self.slots[self.slots.index(slot)] = new
        self._probe(new)

    def _on_video(self, ref: Any, slot: Slot, work: Work, queue: deque[Work]) -> None:
        import ray

        slot.work = None
        try:
            outcome: Outcome = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            slot.restarts += 1  # Ray restarts it (max_restarts=-1)
            self._probe(slot)  # it gets work again once it answers
            self._failure(work, f"worker died ({_short(exc)})", queue, check_store=True)
            return
        except ray.exceptions.RayTaskError as exc:  # an exception inside retargeting or the commit
            slot.state = "free"
            self._failure(work, f"error: {_short(exc)}", queue, check_store=False)
            return
        except ray.exceptions.RayError as exc:  # lost for another reason (node gone, memory monitor)
            self._probe(slot)
            self._failure(work, f"lost ({_short(exc)})", queue, check_store=True)
            return
        slot.state = "free"
        if outcome.status == "done":
            self.results.append(outcome.report)
        elif outcome.status == "skipped":
            self.skipped += 1
        else:
            self.failed.append({"source": work.name, "reason": outcome.reason or "bad input", "cause": outcome.cause or "bad_input"})
        self._bar.update(1)

    def _on_lift(self, ref: Any, work: Work, queue: deque[Work], lifts: deque[Work]) -> None:
        import ray

        try:
            answer = ray.get(ref)
        except (ray.exceptions.RuntimeEnvSetupError,) as exc:
            reason = f"lifting environment failed: {_short(exc)}; {LIFT_INSTALL_HINT}"
            self.failed.append({"source": work.path, "reason": reason})
            self._bar.update(1)
            return
        except ray.exceptions.RayError as exc:  # an error inside lifting, or its worker died: retried
            self._failure(work, f"lifting: {_short(exc)}", lifts, check_store=False)
            return
        if "bad" in answer:
            self.failed.append({"source": work.path, "reason": answer["bad"]})
            self._bar.update(1)
            return
        self.lifted += 1
        with open(self._lift_log, "a") as log:  # a rerun does not lift this video again
            log.write(json.dumps({"video": _here(work.path), "hoi": answer["path"]}) + "\n")
        queue.append(Work(answer["path"], "retarget", origin=work.path))

    def _failure(self, work: Work, reason: str, queue: deque[Work], check_store: bool) -> None:
        """A video's worker died or erred: done if committed, else retried up to max_failures."""
        if check_store and work.kind == "retarget":
            source = peek_source(work.path)
            if source is not None and self.store.is_committed(source):
                self.say(f"{work.name}: worker died after committing it; not retargeted again")
                self.committed_without_report.append(source)
                self._bar.update(1)
                return
        work.failures += 1
        work.errors.append(reason)
        if work.failures >= self.cfg.max_failures:
            self.failed.append({
                "source": work.name,
                "reason": f"gave up after {work.failures} failures: " + "; ".join(dict.fromkeys(work.errors)),
            })  # fmt: skip
            self.say(f"{work.name}: given up after {work.failures} failures ({reason})")
            self._bar.update(1)
            return
        self.retries += 1
        self.say(f"{work.name}: {reason}; retrying ({work.failures}/{self.cfg.max_failures} failures)")
        queue.append(work)

    def _abandon(self, queue: deque[Work], lifts: deque[Work], reason: str) -> None:
        reason = f"{reason}: {getattr(self, '_dead_reason', 'unknown')}"
        for work in [*queue, *lifts, *(w for k, _, w in self.pending.values() if w is not None)]:
            self.failed.append({"source": work.name, "reason": reason})
            self._bar.update(1)
        queue.clear()
        lifts.clear()
        self.pending.clear()

    def _postfix(self) -> None:
        if self._bar is None or self._bar.disable:
            return
        attempts = sum(r.attempts for r in self.results)
        accepted = sum(int(r.accepted.sum()) for r in self.results)
        elapsed = max(1e-9, time.perf_counter() - self._t0)
        self._bar.set_postfix(
            done=len(self.results), failed=len(self.failed), skipped=self.skipped,
            attempts_per_s=f"{attempts / elapsed:.0f}", acceptance=f"{accepted / attempts:.1%}" if attempts else "-",
            restarts=sum(s.restarts for s in self.slots),
        )  # fmt: skip

    # -------------------------------------------------------------- summary
    def _summary(self, wall: float, startup: float, repaired: list[str]) -> dict[str, Any]:
        from hop_data.report import retarget_summary

        summary = retarget_summary(self.results, self.failed, wall)
        summary["skipped_already_committed"] = self.skipped
        summary["store"] = str(self.cfg.store)
        summary.update({
            "committed_without_report": self.committed_without_report,
            "actors": len(self.slots),
            "threads_per_actor": self.cfg.threads,
            "actor_restarts": sum(s.restarts for s in self.slots),
            "actors_replaced": self.replacements,
            "retries": self.retries,
            "videos_lifted": self.lifted,
            "orphan_shards_repaired": len(repaired),
            "seconds_startup": startup,
            "seconds_cpu": sum(r.seconds_cpu for r in self.results),  # actors' CPU time on the reported videos
            "ray": "embedded" if self.embedded else "joined",  # started here, or an existing cluster
        })  # fmt: skip
        return summary


def _here(path: str) -> str:
    """An absolute path where the driver sees the file (same on one machine or a
    shared filesystem); anything else (URLs, worker-only paths) as given."""
    return os.path.abspath(path) if "://" not in path and os.path.exists(path) else path


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:  # not visible from the driver: keep its place
        return 0


def _single_local_node() -> bool:
    """True when the Ray cluster is this machine alone (paths the driver sees, workers see)."""
    import ray

    here = ray.util.get_node_ip_address()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return len(nodes) == 1 and nodes[0].get("NodeManagerAddress") == here


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


def generate(config: GenerateConfig, **kwargs: Any) -> dict[str, Any]:
    """Run the service once; returns the JSON summary (``hop-data retarget``'s, plus service counts)."""
    return Generator(config, **kwargs).run()
