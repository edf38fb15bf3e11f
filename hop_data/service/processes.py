"""Processes on this machine, read from ``/proc`` (Linux): who descends from
whom, who is alive, and ending a known set of them by pid.

The supervisor of the embedded Ray (``supervisor.py``) uses these to find the
Ray servers it must watch and the processes it must end; the tests use them
to check that nothing is left behind. Never a broad name match: a process is
ended only when it descends from a process we started.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1  # prctl options (linux/prctl.h)
PR_SET_CHILD_SUBREAPER = 36


def supported() -> bool:
    """Whether this machine has what the supervisor needs (``/proc``, ``prctl``)."""
    return os.path.isdir("/proc/self") and hasattr(ctypes, "CDLL") and os.uname().sysname == "Linux"


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (state, ppid, ...)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, is not alive)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def started(pid: int) -> int | None:
    """When a process started (clock ticks after boot): with its pid, who it is
    (a pid is reused after its process is gone). None if it is gone."""
    fields = _stat(pid)
    return None if fields is None else int(fields[19])


def name(pid: int) -> str:
    """The kernel's short name of a process (``raylet``, ``gcs_server``, ``ray::IDLE``); '' if gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def descendants(pid: int, zombies: bool = False) -> list[int]:
    """Every living process below ``pid`` in the process tree (children first);
    with ``zombies``, also those dead but not yet reaped by their parent."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and (zombies or fields[0] != "Z"):
                children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(0), []):
            out.append(child)
            todo.append(child)
    return out


def end(pids: list[int], grace_s: float = 3.0) -> list[int]:
    """SIGTERM ``pids``, wait up to ``grace_s`` for them to exit, SIGKILL the rest.
    Returns the pids that had to be killed. Zombies among our own children are reaped."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        _reap(pids)
        time.sleep(0.05)
    stubborn = [p for p in pids if alive(p)]
    for pid in stubborn:
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace_s
    while any(alive(p) for p in stubborn) and time.monotonic() < deadline:
        time.sleep(0.05)
    _reap(pids)
    return stubborn


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(pids: list[int]) -> None:
    """Collect the exit status of those of ``pids`` that are our children (a
    subreaper inherits orphans: their zombies are ours to reap)."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}, {value}) failed")


def become_subreaper() -> None:
    """Orphans of our descendants become our children instead of init's: when a
    Ray server dies, the workers and agents it started stay findable (and endable)
    below this process."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent() -> None:
    """For ``preexec_fn``: the new process gets SIGKILL when its parent dies."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
