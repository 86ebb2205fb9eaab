"""A tiny observer helper for the Qt-free view models.

napari's evented models and ndv's ``models/`` hold the truth and let widgets
follow; we only need "call these functions when X changes", so a ten-line
:class:`Event` replaces a dependency (and keeps :mod:`viewer.model` importable
without Qt, which the import-linter contract enforces).
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["Event"]


class Event:
    """A list of callbacks fired with the same arguments.

    Callbacks run synchronously in the order they were connected; an exception
    in one propagates (the app's excepthook shows it) rather than being
    swallowed, because a silently stale view is worse than an error dialog.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._callbacks: list[Callable[..., Any]] = []
        self._blocked = 0

    def connect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        """Register ``callback``; returns it so it can be used as a decorator."""
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[..., Any]) -> None:
        """Remove ``callback`` if connected (no error otherwise)."""
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        """Call every connected callback with ``args`` (unless blocked)."""
        if self._blocked:
            return
        for cb in list(self._callbacks):
            cb(*args)

    def __len__(self) -> int:
        return len(self._callbacks)
