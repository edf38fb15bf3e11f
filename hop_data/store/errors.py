"""The store's errors: ``ValueError`` subclasses, each message naming the path."""

from __future__ import annotations


class StoreError(ValueError):
    """A path that is not a usable trajectory store, or a store-level misuse."""


class IncompatibleStoreError(StoreError):
    """A trajectory store written for another format version or embodiment."""


class StoreLockedError(StoreError):
    """Another live writer holds the shard."""
