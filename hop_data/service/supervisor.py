"""The embedded Ray's supervisor: ``hop-data generate`` without an address runs
its driver in a child process and watches it and the Ray node it starts.

Why a second process: a node's servers can die at any moment (the OOM killer
picks the raylet or the GCS). Ray then either ends the driver with one C++ log
line (``_exit``: no Python cleanup, no message), or makes ``ray.init`` fail
after half a minute, or leaves the driver waiting forever for actors that
cannot start; and the node's agents and idle workers stay behind, orphaned.
None of that can be handled from inside the process Ray ends, so the process
the user started stays out of Ray:

- it starts the driver (``python -m hop_data.service.supervisor``, the run's
  config sent over a pipe) in its own process group (a Ctrl-C reaches it once,
  forwarded from here), and becomes a subreaper: everything the driver's Ray
  starts stays below this process, orphaned or not. The driver dies with it
  (``PR_SET_PDEATHSIG``), so killing this process kills the run, as before;
- it watches the driver and the node's GCS and raylet (found by name among
  its descendants). The driver notices a dead server itself within a second
  and exits with its own message (status 3); one that has not ended
  ``GRACE_S`` after a server died (stuck in a disconnect) is killed, one still
  in ``ray.init`` at once (its failure would take half a minute);
- a driver that ends without reporting its status (killed, or ended by Ray)
  gets its message here: what died, that the store is intact, how to resume;
- at the end, whatever still runs below this process is ended, by pid.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from typing import Any

from . import processes
from .errors import EXIT_RAY_LOST, lost_message, server_lost
from .ray_runtime import SERVERS

POLL_S = 0.2  # how often the driver and the servers are looked at
GRACE_S = 15.0  # after a server died: how long the driver may take to end by itself
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PROG = "hop-data generate"


def supported() -> bool:
    """Supervision needs Linux's /proc and prctl; elsewhere the driver runs in-process."""
    return processes.supported()


def supervise(config: Any, as_json: bool) -> int:
    """Run the driver of ``config`` in a child process under watch; its exit status."""
    return Supervisor(config, as_json).run()


class Supervisor:
    """One supervised run: the driver child, the servers seen, what died first."""

    def __init__(self, config: Any, as_json: bool):
        self.config = config
        self.as_json = as_json
        self.servers: dict[int, str] = {}  # pid -> "gcs_server" | "raylet", once seen
        self.lost: str | None = None  # the server that died, as first seen
        self.lost_at: float | None = None
        self.server_first = False  # a server was seen dead before the driver ended
        self.stopped = False  # the driver outlived a dead server by GRACE_S and was killed here

    def run(self) -> int:
        processes.become_subreaper()
        self.child, self.status = self._start_driver()
        handlers = self._forward_signals()
        try:
            self._watch()
            self.status.read()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            self.status.close()
            processes.end(processes.descendants(os.getpid()))
        if self.status.exit_status is not None:
            return self.status.exit_status
        print(f"{PROG}: error: {lost_message(self._what_died(), self.config.store)}", file=sys.stderr)
        return EXIT_RAY_LOST

    # ------------------------------------------------------------------ the driver
    def _start_driver(self) -> tuple[subprocess.Popen, StatusPipe]:
        """The child, its request sent, and its status pipe."""
        request_r, request_w = os.pipe()
        status_r, status_w = os.pipe()
        cmd = [sys.executable, "-m", __name__, str(request_r), str(status_w), str(os.getpid())]
        child = subprocess.Popen(cmd, pass_fds=(request_r, status_w), process_group=0)
        os.close(request_r)
        os.close(status_w)
        try:
            with os.fdopen(request_w, "wb") as pipe:
                pickle.dump((self.config, self.as_json), pipe)
        except BrokenPipeError:  # the child died at once: _watch sees it
            pass
        return child, StatusPipe(status_r)

    def _forward_signals(self) -> dict[int, Any]:
        """Send SIGINT, SIGTERM and SIGHUP on to the driver (its own process group
        does not get the terminal's); a signal ignored here stays ignored there."""
        previous = {}
        for sig in FORWARDED:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.signal(sig, lambda signum, _frame: self.child.send_signal(signum))
        return previous

    def _watch(self) -> None:
        """Until the driver ends; stop it when it outlives a dead server by GRACE_S
        (at once while it is still in ``ray.init``, which then fails only after 30 s)."""
        while self.child.poll() is None:
            self._look_at_servers()
            self.status.read()
            grace = GRACE_S if self.status.up else 0.0
            if self.lost_at is not None and time.monotonic() - self.lost_at > grace:
                self.child.kill()
                self.child.wait()
                self.stopped = True
                return
            time.sleep(POLL_S)
        self.server_first = self.lost is not None  # seen dead while the driver still ran
        self._look_at_servers()

    def _look_at_servers(self) -> None:
        """Find the node's GCS and raylet below us (until both are known; a zombie
        counts: one killed at once is seen too) and note the first to die."""
        if len(self.servers) < len(SERVERS):
            for pid in processes.descendants(os.getpid(), zombies=True):
                if processes.name(pid) in SERVERS:
                    self.servers.setdefault(pid, processes.name(pid))
        if self.lost is None:
            for pid, kind in sorted(self.servers.items(), key=lambda item: SERVERS.index(item[1])):
                if not processes.alive(pid):
                    self.lost, self.lost_at = server_lost(f"{kind} (pid {pid})"), time.monotonic()
                    break

    def _what_died(self) -> str:
        """The cause of a driver's silent end: a server that died first, else the driver itself."""
        code = self.child.returncode
        driver = f"the driver (pid {self.child.pid})"
        if self.stopped:
            return f"{self.lost}; {driver} was ended" + ("" if self.status.up else " (it was starting Ray)")
        killed = code < 0 and code != -signal.SIGABRT  # Ray ends its driver by exit or abort, never a kill
        if killed and not self.server_first:  # its servers die with it (they share its fate)
            return f"{driver} was killed by {signal.Signals(-code).name} (e.g. by the out-of-memory killer)"
        if self.lost is not None:
            return f"{self.lost}; {driver} ended with it"
        return f"{driver} ended unexpectedly with status {code} and no summary"


class StatusPipe:
    """What the driver reports on its status pipe: ``up`` once its Ray runs,
    ``exit N`` just before it ends (a driver that ends without it died)."""

    def __init__(self, fd: int):
        self.fd = fd
        os.set_blocking(fd, False)
        self.lines: list[str] = []
        self._partial = b""

    def read(self) -> None:
        """Take in whatever the driver wrote since the last call (never blocks)."""
        try:
            chunk = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        self.lines += [line.decode(errors="replace") for line in lines]

    @property
    def up(self) -> bool:
        return "up" in self.lines

    @property
    def exit_status(self) -> int | None:
        return next((int(line.split()[1]) for line in self.lines if line.startswith("exit ")), None)

    def close(self) -> None:
        os.close(self.fd)


# ---------------------------------------------------------------------- the child


def child_main(request_fd: int, status_fd: int, parent: int) -> None:
    """The driver process: read the run's config, run it, report the exit status, exit."""
    processes.die_with_parent()
    if os.getppid() != parent:  # the supervisor died before PDEATHSIG was set
        os._exit(EXIT_RAY_LOST)
    os.set_inheritable(status_fd, False)  # Ray's processes must not hold the pipe open
    with os.fdopen(request_fd, "rb") as pipe:
        config, as_json = pickle.load(pipe)
    from .run import run_driver

    code = run_driver(config, as_json, on_ray_up=lambda: os.write(status_fd, b"up\n"))
    os.write(status_fd, f"exit {code}\n".encode())
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # Ray's atexit shutdown ran in the driver already (or must not run: the node is lost)


if __name__ == "__main__":
    child_main(*(int(a) for a in sys.argv[1:4]))
