"""Stopping a run cleanly on SIGINT (Ctrl-C) or SIGTERM (`kill`, a cluster's time limit).

The handler only records the signal; the Trainer looks at ``requested`` between two steps, so
the step under way finishes and the run can save its state before the process exits. A second
Ctrl-C stops at once (KeyboardInterrupt), for a run that does not come back.
"""

import signal
import threading
from types import FrameType, TracebackType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    """Context manager: inside it, SIGINT and SIGTERM set ``signal_number`` instead of
    ending the process; the previous handlers come back on exit."""

    def __init__(self) -> None:
        self.signal_number: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal_number is not None

    def __enter__(self) -> "StopOnSignal":
        # Signal handlers can only be set from the main thread; elsewhere (a launcher's
        # worker thread) the run keeps the process' own handling.
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._record)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _record(self, number: int, frame: FrameType | None) -> None:
        if self.requested and number == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: the user does not want to wait
        self.signal_number = number
