"""Turn Ctrl-C (SIGINT) and SIGTERM into a request that training loops honour at a step boundary."""

from __future__ import annotations

import signal
import threading


class StopRequest:
    """While active, the first SIGINT/SIGTERM sets `.signal_number`; a second one stops at once.

    Training loops poll `requested` after each step, save a checkpoint and exit cleanly.
    """

    def __init__(self):
        self.signal_number: int | None = None
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self.signal_number is not None

    def _handle(self, signum, frame):
        if self.signal_number is not None:  # second signal: the user really wants out
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            raise KeyboardInterrupt
        self.signal_number = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        return False
