"""Ray for the service: join a cluster, or start the embedded one.

Without an address (``--address`` / ``RAY_ADDRESS``) the driver starts an
embedded Ray on this machine: every server on 127.0.0.1, no dashboard, token
authentication on, sized to the cores. With an address it joins that cluster.
Ray is imported when a function runs, never at import (``hop-data --help``
stays instant). See docs/service.md, "Embedded Ray".
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from typing import Iterator

from .errors import RayLostError, ServiceError

EMBEDDED_OBJECT_STORE_BYTES = 512 * 2**20  # answers are small (errors, not episodes): keep /dev/shm free
LOOPBACK = "127.0.0.1"
# The embedded node's servers: without either, nothing runs. The raylet first: when both are
# found dead at once, the raylet died first (the GCS outlives a raylet; it dies with the driver,
# which Ray ends when its raylet dies).
SERVERS = ("raylet", "gcs_server")
SHUTDOWN_WAIT_S = 2.0  # how long a shutdown after a lost node may take before the driver gives up on it


@contextmanager
def loopback_node() -> Iterator[None]:
    """Make Ray take 127.0.0.1 as this node's address while it starts.

    Ray turns a requested 127.0.0.1 into the machine's routable address unless
    multi-node clusters are switched off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``,
    read once at import): then every Ray server of the node binds to loopback.
    The processes started now inherit it; the driver's setting is restored so a
    later join of a real cluster from this process still works."""
    import ray._private.ray_constants as ray_constants

    var = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
    old_env, old_flag = os.environ.get(var), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[var] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = old_flag
        if old_env is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = old_env


def token_auth_enabled() -> bool | None:
    """Whether this process speaks Ray's token authentication (None: cannot tell)."""
    try:
        from ray._raylet import AuthenticationMode, get_authentication_mode

        return get_authentication_mode() == AuthenticationMode.TOKEN
    except Exception:  # older Ray, or the API moved: say nothing rather than guess
        return None


def local_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def start_local_ray(num_cpus: int | None = None, num_gpus: int | None = None, log_to_driver: bool = True) -> None:
    """The embedded default: a single-node Ray on this machine, every server on
    127.0.0.1, no dashboard (so no job API), token authentication on (Ray >= 2.59
    turns it on for local clusters, and ``hop-data generate`` sets
    ``RAY_AUTH_MODE=token`` before Ray loads; ``RAY_AUTH_MODE=disabled`` opts out,
    with a warning here)."""
    import ray

    with loopback_node():
        ray.init(
            include_dashboard=False,
            _node_ip_address=LOOPBACK,
            num_cpus=num_cpus or local_cpus(),
            num_gpus=num_gpus,
            object_store_memory=EMBEDDED_OBJECT_STORE_BYTES,
            logging_level=logging.WARNING,
            log_to_driver=log_to_driver,
        )
    if token_auth_enabled() is False:
        logging.getLogger(__name__).warning(
            "Ray token authentication is OFF (RAY_AUTH_MODE=%s); the embedded Ray listens on %s only",
            os.environ.get("RAY_AUTH_MODE"), LOOPBACK,
        )  # fmt: skip


def connect(address: str | None = None, num_cpus: int | None = None, log_to_driver: bool = True) -> bool:
    """Join ``address`` (or ``RAY_ADDRESS``), else start the embedded Ray.
    Returns whether this call connected (then the caller shuts down)."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=log_to_driver)
        except (ConnectionError, TimeoutError) as exc:
            raise ServiceError(f"cannot join the Ray cluster at {address}: {exc}") from exc
        return True
    try:
        start_local_ray(num_cpus, log_to_driver=log_to_driver)
    except Exception as exc:  # ray.init raises bare Exceptions (e.g. its raylet died while it started)
        shutdown(lost=True)
        raise RayLostError(f"the embedded Ray did not start ({' '.join(str(exc).split())})") from None
    return True


def dead_server() -> str | None:
    """The embedded node's GCS or raylet that has exited, as ``raylet (pid N, signal 9)``;
    None while both run, or when this process did not start the node.

    The driver asks this every second: killed by the OOM killer, a server is gone
    for good, and Ray itself would either end the driver with one C++ log line
    or leave it waiting forever for actors that cannot start."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    if node is None:
        return None
    for kind in SERVERS:
        for info in node.all_processes.get(kind, []):
            code = info.process.poll()
            if code is not None:
                how = f"signal {-code}" if code < 0 else f"exit status {code}"
                return f"{kind} (pid {info.process.pid}, {how})"
    return None


def shutdown(lost: bool = False) -> None:
    """``ray.shutdown()``; after a loss, bounded: the node's processes are killed
    first, and a disconnect that waits on a dead GCS is abandoned after
    ``SHUTDOWN_WAIT_S`` (the process is about to exit; the supervisor of the
    embedded Ray ends whatever is left)."""
    import ray

    if not lost:
        ray.shutdown()
        return
    node = getattr(ray._private.worker, "_global_node", None)
    if node is not None:
        try:
            node.kill_all_processes(check_alive=False, allow_graceful=False)
        except Exception:  # half-started or already gone: nothing more to kill here
            pass
    done = threading.Thread(target=_quiet_shutdown, daemon=True)
    done.start()
    done.join(SHUTDOWN_WAIT_S)


def _quiet_shutdown() -> None:
    import ray

    try:
        ray.shutdown()
    except Exception:  # its servers are dead: there is nothing left to disconnect from
        pass
