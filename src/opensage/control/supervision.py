"""One supervisor thread per resource: what the training, transform and tuning schedulers and
the endpoint fleet each need, in one place."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Supervision:
    """Starts `run(name)` on a daemon thread unless one already runs for that name, and
    refuses new ones once the server is shutting down."""

    def __init__(self, prefix: str, run: Callable[[str], None]) -> None:
        self.prefix = prefix
        self._run = run
        self.shutting_down = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def launch(self, name: str) -> None:
        with self._lock:
            thread = self._threads.get(name)
            if self.shutting_down.is_set() or (thread is not None and thread.is_alive()):
                return
            thread = threading.Thread(
                target=self._run, args=(name,), name=f"{self.prefix}-{name}", daemon=True
            )
            self._threads[name] = thread
            thread.start()

    def shutdown(self, timeout: float) -> None:
        """Stop launching and give the running supervisors `timeout` seconds in all to end."""
        self.shutting_down.set()
        deadline = time.monotonic() + timeout
        for thread in list(self._threads.values()):
            thread.join(max(0.1, deadline - time.monotonic()))
