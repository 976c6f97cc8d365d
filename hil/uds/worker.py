"""One daemon thread per service, started and stopped the same way everywhere in hil.uds."""

from __future__ import annotations

import threading
from typing import Any, Self


class BackgroundWorker:
    """A service that runs :meth:`_run` on one daemon thread.

    :meth:`start` is idempotent and returns the service (also as a context manager);
    :meth:`shutdown` is idempotent: it sets ``_stop``, joins the thread (2 s at most) and
    then calls :meth:`_on_stop`. ``_run`` loops until ``_stop`` is set.
    """

    #: the thread's name (a subclass may compute it in :meth:`_thread_name`)
    THREAD_NAME = "hil-worker"

    def _init_worker(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def _thread_name(self) -> str:
        return self.THREAD_NAME

    def _on_start(self) -> None:
        """Before the thread starts (once)."""

    def _on_stop(self) -> None:
        """After the thread has stopped (once)."""

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        if self._thread is None:
            self._on_start()
            self._thread = threading.Thread(target=self._run, name=self._thread_name(), daemon=True)
            self._thread.start()
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        """Stop the thread, then release what the service holds (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._on_stop()
