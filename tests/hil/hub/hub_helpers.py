"""Helpers of the hub tests (importable: this directory is on sys.path under pytest)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from hil.hub import Framer, ProtocolError


class RawClient:
    """A socketcand client on a plain TCP socket: what any non-python-can client does."""

    def __init__(self, port: int, host: str = "127.0.0.1", rcvbuf: int | None = None, expect_hi: bool = True) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((host, port))
        self.framer = Framer(max_element_bytes=1 << 20)
        self.pending: list[str] = []
        self.closed_by_peer = False
        if expect_hi:
            assert self.next(5.0) == "< hi >"

    def send(self, text: str | bytes) -> None:
        self.sock.sendall(text.encode() if isinstance(text, str) else text)

    def _fill(self, timeout_s: float) -> None:
        self.sock.settimeout(max(timeout_s, 0.001))
        try:
            data = self.sock.recv(1 << 16)
        except (TimeoutError, BlockingIOError):
            return
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed_by_peer = True
            return
        for item in self.framer.feed(data):
            assert not isinstance(item, ProtocolError), f"the hub sent something that is not an element: {item}"
            self.pending.append(item)

    def next(self, timeout_s: float = 5.0) -> str | None:
        """The next element from the hub, or None when none came within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not self.pending and not self.closed_by_peer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._fill(left)
        return self.pending.pop(0) if self.pending else None

    def collect(self, predicate: Callable[[list[str]], bool], timeout_s: float = 10.0) -> list[str]:
        """Elements until ``predicate(elements)`` holds or ``timeout_s`` passes (bounded wait)."""
        got: list[str] = []
        deadline = time.monotonic() + timeout_s
        while not predicate(got) and time.monotonic() < deadline:
            item = self.next(min(0.2, max(0.0, deadline - time.monotonic())))
            if item is not None:
                got.append(item)
            elif self.closed_by_peer:
                break
        return got

    def quiet(self, wait_s: float = 0.3) -> list[str]:
        """Everything that arrives within ``wait_s`` (used to show that nothing more comes)."""
        return self.collect(lambda _: False, wait_s)

    def request(self, text: str, timeout_s: float = 5.0) -> str | None:
        self.send(text)
        return self.next(timeout_s)

    def open(self, channel: str) -> None:
        assert self.request(f"< open {channel} >") == "< ok >"

    def rawmode(self) -> None:
        assert self.request("< rawmode >") == "< ok >"

    def close(self) -> None:
        self.sock.close()


def frame_fields(element: str) -> tuple[str, str, float, str]:
    """``< frame ID TS DATA >`` -> (kind, id, timestamp, data hex)."""
    words = element[1:-1].split()
    kind = words[0]
    if kind == "fdframe":
        return kind, words[1], float(words[3]), words[4] if len(words) > 4 else ""
    return kind, words[1], float(words[2]), "".join(words[3:])


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll ``predicate`` until true or ``timeout_s`` passes (a bounded wait, not a timing test)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()

