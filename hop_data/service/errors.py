"""The service's errors: a run that cannot start, and a run whose Ray went away.

Exit statuses of ``hop-data generate`` (``EXIT_*``): 0 done, 1 every input
failed, 2 the run could not start (options, store, Ray), 3 the run was cut
short by its Ray (a node, the GCS or the driver's own process died, or no
actor could be placed): the store is intact and the same command resumes it.
"""

from __future__ import annotations

EXIT_CANNOT_START = 2
EXIT_RAY_LOST = 3
EXIT_INTERRUPTED = 130  # as a shell reports SIGINT


class ServiceError(RuntimeError):
    """A run that cannot start (bad options, no Ray, a store that cannot be opened)."""

    exit_status = EXIT_CANNOT_START


class RayLostError(ServiceError):
    """The run lost what it needs from Ray (its node, the GCS, every place an
    actor could run).

    Raised where the loss is seen with ``what`` (and maybe a ``remedy``); the
    driver, which knows the store, re-raises it ``at(store)``: the message then
    says what died, that the store is intact and how to resume."""

    exit_status = EXIT_RAY_LOST

    def __init__(self, what: str, remedy: str = "", store: str | None = None):
        self.what, self.remedy, self.store = what, remedy, store
        super().__init__(what if store is None else lost_message(what, store, remedy))

    def at(self, store: str) -> RayLostError:
        return self if self.store is not None else RayLostError(self.what, self.remedy, store)


def lost_message(what: str, store: str, remedy: str = "") -> str:
    """What died, that the store is intact, and how to resume: the one wording
    of every message of a run cut short by its Ray (driver and supervisor).

    A commit is atomic, so whatever was committed is whole and nothing
    half-written is visible; a rerun skips the committed videos and repairs
    shards cut short (docs/reliability.md)."""
    remedy = f"{remedy[:1].upper()}{remedy[1:]}, then run" if remedy else "Run"
    return (
        f"{what}; the run stopped. The store {store} is intact: every committed video is complete and "
        f"nothing half-written is visible. {remedy} the same command again to resume: committed videos are "
        "skipped, the rest are done exactly once."
    )


def server_lost(server: str) -> str:
    """The words for a dead server of the embedded node, e.g. ``raylet (pid 12)``."""
    return f"the embedded Ray's {server} died (killed, e.g. by the out-of-memory killer, or crashed)"
