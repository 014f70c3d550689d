"""Stopping a run on request: SIGTERM / SIGINT end the step in progress at once (optimiser updates finish), the
run saves a checkpoint and ends ``cancelled``."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Stop", "StopNow"]


class StopNow(BaseException):
    """A stop request that interrupted the loop where it was (not an error: the run ends ``cancelled``)."""


class Stop:
    """SIGTERM / SIGINT ask the run to stop without waiting for the current step.

    Inside :meth:`interruptible` blocks (simulating or reading a batch, forward and backward passes, the
    held-out simulation, the regressor's pre-training) the signal handler raises :class:`StopNow` at once, so a
    stop waits at most for the torch operation in progress; inside :meth:`deferred` blocks (an optimiser update)
    it waits for the block to finish. Elsewhere (metrics, checkpoints) it sets ``reason``, read by the loop at
    the next safe point. With several processes (``immediate=False``) every request waits for the end of the
    step, where all ranks agree to stop together.
    """

    def __init__(self, *, immediate: bool = True) -> None:
        self.reason: str | None = None
        self.immediate = immediate
        self._armed = False
        self._previous: dict[int, Any] = {}

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """A block that a stop request ends at once (raises :class:`StopNow`)."""
        self.raise_if_requested()
        self._armed = self.immediate
        try:
            yield
        finally:
            self._armed = False

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """A block inside :meth:`interruptible` that is always finished (an optimiser update)."""
        armed, self._armed = self._armed, False
        try:
            yield
        finally:
            self._armed = armed
        if armed:
            self.raise_if_requested()

    def raise_if_requested(self) -> None:
        """Raise :class:`StopNow` if a stop was requested and this process stops at once."""
        if self.reason is not None and self.immediate:
            raise StopNow(self.reason)

    def install(self) -> None:
        """Install the handlers (only possible in the main thread; elsewhere the run has no signal stop)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        self.reason = f"{signal.Signals(signum).name} received"
        if self._armed:
            self._armed = False
            raise StopNow(self.reason)
