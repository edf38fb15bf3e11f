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
from contextlib import contextmanager
from typing import Iterator

from .errors import ServiceError

EMBEDDED_OBJECT_STORE_BYTES = 512 * 2**20  # answers are small (errors, not episodes): keep /dev/shm free
LOOPBACK = "127.0.0.1"


@contextmanager
def _loopback_node() -> Iterator[None]:
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

    with _loopback_node():
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
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=log_to_driver)
        else:
            start_local_ray(num_cpus, log_to_driver=log_to_driver)
    except (ConnectionError, TimeoutError) as exc:
        raise ServiceError(f"cannot join the Ray cluster at {address}: {exc}") from exc
    return True
