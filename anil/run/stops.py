"""Stop requests (SIGINT, SIGTERM) during training: honoured at the end of the current iteration,
or at once inside a long section (an inner loop, a validation) that cannot wait."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)


class StopNow(Exception):
    """A stop request that could not wait for the current iteration or evaluation to end."""


class StopRequests:
    """SIGINT / SIGTERM ask the loop to stop after the current iteration; a second SIGINT stops at once.

    An iteration (or a validation) that is still running GRACE seconds after the request is
    abandoned: inside a `preemptible()` section a timer raises StopNow, so a run with a huge N or
    eval_tasks still stops promptly. Nothing inside such a section changes the model."""

    GRACE = 5.0  # seconds an iteration may still take after a stop request

    def __init__(self, can_preempt: bool = True) -> None:
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}
        self._main = threading.current_thread() is threading.main_thread()
        self._can_preempt = can_preempt and self._main
        self._in_section = False
        self._requested_at = 0.0  # time.monotonic() of the latest request

    def __enter__(self) -> StopRequests:
        if self._main:
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._request)
            if self._can_preempt:
                self._previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, self._overdue)
        return self

    def _request(self, number: int, frame: FrameType | None) -> None:
        if self.signal is not None and number == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signal.Signals(number).name
        self._requested_at = time.monotonic()
        log.warning("%s received: finishing this iteration, then checkpointing", self.signal)
        if self._in_section:
            self._arm()

    def _arm(self) -> None:
        """Raise StopNow when what is left of the latest request's grace runs out."""
        if self._can_preempt:
            left = self.GRACE - (time.monotonic() - self._requested_at)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))

    def _overdue(self, number: int, frame: FrameType | None) -> None:
        if self._in_section:
            raise StopNow(f"stopped by {self.signal} during an iteration that ran {self.GRACE:g} s past the request")

    @contextlib.contextmanager
    def preemptible(self) -> Iterator[None]:
        """A stretch of work a stop request may abandon (when it overruns GRACE). A request that came
        before the section (between an iteration and its validation, or while the run was being
        built) keeps what is left of its grace: the section is abandoned when that runs out."""
        self._in_section = True
        if self.signal is not None:
            self._arm()
        try:
            yield
        finally:
            self._in_section = False
            if self._can_preempt:
                signal.setitimer(signal.ITIMER_REAL, 0)

    def __exit__(self, *exc: object) -> None:
        if self._can_preempt:
            signal.setitimer(signal.ITIMER_REAL, 0)
        for number, handler in self._previous.items():
            signal.signal(number, handler)
