"""The service's error: a run that cannot start."""

from __future__ import annotations


class ServiceError(RuntimeError):
    """A run that cannot start (bad options, no Ray, a store that cannot be opened)."""
