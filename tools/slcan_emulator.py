#!/usr/bin/env python3
"""An SLCAN (Lawicel) USB adapter, emulated on a pseudo-terminal and bridged to a python-can bus.

    python tools/slcan_emulator.py [-c pt] [--sim-port 29536] [-b 500000] [--link PATH]
    python tools/slcan_emulator.py -i INTERFACE -c CHANNEL [-o KEY=VALUE ...] [--fd --data-bitrate N]

Prints the pty path (``/dev/pts/N``); anything that talks to an SLCAN adapter on a serial
port works against it: python-can's ``slcan`` interface
(``can.Bus(interface="slcan", channel="/dev/pts/N", bitrate=500000, sleep_after_open=0)``),
a gateway bench file, a plain serial terminal (``picocom /dev/pts/N``; type ``V``, ``S6``,
``O``, ``t1232ABCD`` and Enter). The bus side is any python-can bus; by default channel
``pt`` of the simulated van that ``z10 sim`` serves on 127.0.0.1 (python-can's
``socketcand`` interface), so the adapter joins the buses every other rig process sees.
``-i hilbus``/``-i virtual`` give a bus of this process only (for scripts that import
:class:`SlcanEmulator` and put their own nodes on it).

The protocol engine is :mod:`hil.slcan` (pure, property-tested); this file is only the I/O:
the pty (opened with ``os.openpty``, raw mode), one thread reading the pty and sending to
the bus, one thread receiving from the bus and writing lines to the pty.

Flow control: while the bus does not take a frame (its transmit queue is full) the emulator
stops reading the pty, so the host's writes block, as a USB adapter NAKs; after
``--send-timeout`` seconds the frame is refused with BEL and the TX-FIFO-full flag (``F``),
as a Lawicel adapter answers a full FIFO. Frames for a host that does not read are kept up
to ``--buffer-kib`` and then dropped, counted, and flagged (data overrun, ``F``).

The port may vanish and come back: when the host closes the pty the emulator notices the
hang-up, discards what it had not delivered (counted), and serves the next open. Ctrl-C or
SIGTERM stops it with a summary of its counters.
"""

from __future__ import annotations

import argparse
import errno
import os
import select
import signal
import socket
import sys
import termios
import threading
import time
import tty
from pathlib import Path
from typing import Any

import can

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from hil.slcan import SlcanEngine, Transmit  # noqa: E402

_POLL_S = 0.05
_HANGUP_POLL_S = 0.02


class SlcanEmulator:
    """One emulated adapter: a pty, an :class:`~hil.slcan.SlcanEngine` and a python-can bus.

    ``bus`` stays the caller's unless ``own_bus`` (then :meth:`shutdown` closes it).
    ``bitrate``: the adapter's power-on bit rate (None: the host must send ``S``/``s``
    first); ``O`` with a bit rate other than ``bus_bitrate`` is refused with BEL, as the
    adapter could not join the bus. Use as a context manager or call :meth:`shutdown`.
    """

    def __init__(
        self,
        bus: can.BusABC,
        *,
        bus_bitrate: int | None = None,
        bitrate: int | None = None,
        send_timeout_s: float = 1.0,
        buffer_bytes: int = 64 * 1024,
        link: str | os.PathLike[str] | None = None,
        own_bus: bool = False,
    ) -> None:
        self.bus = bus
        self.bus_bitrate = bus_bitrate
        self.engine = SlcanEngine(bitrate=bitrate, bus_bitrate=bus_bitrate)
        self.send_timeout_s = send_timeout_s
        self.buffer_bytes = buffer_bytes
        self.own_bus = own_bus
        self._lock = threading.Lock()  # engine, output buffer, counters
        self._out = bytearray()
        self._stopping = threading.Event()
        self.master, slave = os.openpty()
        try:
            # Raw mode on the slave before anyone opens it: no echo (our own output would come
            # back as commands), no CR/LF translation, bytes as they are.
            tty.setraw(slave)
            self.path = os.ttyname(slave)
        finally:
            # Closed at once, so a host closing the port shows as a hang-up on the master.
            os.close(slave)
        os.set_blocking(self.master, False)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.link = None if link is None else Path(link)
        if self.link is not None:
            if self.link.is_symlink():
                self.link.unlink()
            self.link.symlink_to(self.path)
        self.port_open = False
        #: I/O counters (the protocol's own are in ``engine.counters``).
        self.opens = 0
        self.hangups = 0
        self.dropped_port_closed = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self._applied: tuple[bool, bool] | None = None
        self._threads = [
            threading.Thread(target=self._pty_loop, name="z10-slcan-pty", daemon=True),
            threading.Thread(target=self._bus_loop, name="z10-slcan-rx", daemon=True),
        ]
        self._started = False
        self._closed = False

    # -- lifetime ---------------------------------------------------------------------------

    def start(self) -> SlcanEmulator:
        if not self._started:
            self._started = True
            self._apply_bus_state()
            for thread in self._threads:
                thread.start()
        return self

    def __enter__(self) -> SlcanEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop both threads, close the pty (and the bus when owned). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._wake()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout_s)
        if self.own_bus:
            self.bus.shutdown()
        for fd in (self.master, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()

    def counters(self) -> dict[str, Any]:
        """Protocol and I/O counters as plain data."""
        with self._lock:
            out: dict[str, Any] = self.engine.counters.as_dict()
            out.update(opens=self.opens, hangups=self.hangups, dropped_port_closed=self.dropped_port_closed,
                       bytes_in=self.bytes_in, bytes_out=self.bytes_out, last_error=self.engine.last_error)
        return out

    def summary(self) -> str:
        c = self.counters()
        return (
            f"{c['lines']} command lines, {c['errors']} answered with BEL (unknown {c['unknown']}, syntax "
            f"{c['bad_syntax']}, wrong state {c['wrong_state']}, overlong {c['overlong']}, refused by the bus "
            f"{c['tx_failed']}); frames to the bus {c['frames_to_bus']}, from the bus {c['frames_from_bus']}, "
            f"dropped: host not reading {c['rx_overflow']}, port closed {c['dropped_port_closed']}, channel closed "
            f"{c['frames_not_delivered']}; port opened {c['opens']} times, hang-ups {c['hangups']}"
        )

    # -- pty side ---------------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"!")
        except OSError:
            pass

    def _pty_loop(self) -> None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        while not self._stopping.is_set():
            if not self.port_open:
                if self._hung_up():
                    self._stopping.wait(_HANGUP_POLL_S)
                    continue
                with self._lock:
                    self.port_open = True
                    self.opens += 1
            mask = select.POLLIN | (select.POLLOUT if self._out else 0)
            poller.register(self.master, mask)
            try:
                ready = dict(poller.poll(_POLL_S * 1000))
            except InterruptedError:
                continue
            if self._wake_r in ready:
                try:
                    os.read(self._wake_r, 4096)
                except BlockingIOError:
                    pass
            events = ready.get(self.master, 0)
            if events & select.POLLIN:
                try:
                    data = os.read(self.master, 4096)
                except BlockingIOError:
                    data = b""
                except OSError as err:
                    if err.errno != errno.EIO:
                        raise
                    self._hang_up()
                    continue
                if data:
                    self._from_host(data)
            elif events & (select.POLLHUP | select.POLLERR):
                self._hang_up()
                continue
            if self._out:
                self._write_out()

    def _hung_up(self) -> bool:
        probe = select.poll()
        probe.register(self.master, select.POLLIN)
        return any(ev & select.POLLHUP for _, ev in probe.poll(0))

    def _hang_up(self) -> None:
        """The host closed the port: drop what it will never read, wait for the next open."""
        with self._lock:
            self.port_open = False
            self.hangups += 1
            if self._out:
                self.dropped_port_closed += self._out.count(b"\r")
                self._out.clear()
        # Lines already in the kernel's pty buffer would reach the next host as stale data: a
        # USB adapter's host driver discards them when the port closes, so do the same.
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return
        try:
            termios.tcflush(fd, termios.TCIFLUSH)
        finally:
            os.close(fd)

    def _from_host(self, data: bytes) -> None:
        with self._lock:
            self.bytes_in += len(data)
            events = self.engine.feed(data)
        for event in events:
            if isinstance(event, Transmit):
                reply = self._transmit(event)
            else:
                reply = event.data
            with self._lock:
                self._out += reply
            if self._out:
                self._write_out()
        self._apply_bus_state()

    def _transmit(self, event: Transmit) -> bytes:
        try:
            # Blocks while the bus's transmit queue is full: we stop reading the pty meanwhile.
            self.bus.send(event.frame.to_message(), timeout=self.send_timeout_s)
        except (can.CanError, ValueError, TypeError) as err:
            full = "queue" in str(err).lower() or "timed out" in str(err).lower()
            with self._lock:
                return self.engine.transmit_failed(str(err), queue_full=full)
        return event.ok_reply

    def _apply_bus_state(self) -> None:
        """Closed or listen-only: the adapter's node neither sends nor acknowledges."""
        state = self.engine.state
        wanted = (state.is_open, state.listen_only)
        if wanted == self._applied:
            return
        self._applied = wanted
        active = state.is_open and not state.listen_only
        try:
            self.bus.state = can.BusState.ACTIVE if active else can.BusState.PASSIVE
        except (NotImplementedError, AttributeError, can.CanError, ValueError):
            pass  # an interface without a passive mode: the engine still refuses to send

    def _write_out(self) -> None:
        with self._lock:
            if not self._out or not self.port_open:
                return
            try:
                written = os.write(self.master, self._out)
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno == errno.EIO:
                    return  # hang-up: the loop notices it on the next poll
                raise
            del self._out[:written]
            self.bytes_out += written

    # -- bus side ---------------------------------------------------------------------------

    def _bus_loop(self) -> None:
        next_state_check = 0.0
        while not self._stopping.is_set():
            try:
                msg = self.bus.recv(_POLL_S)
            except can.CanError:
                if self._stopping.is_set():
                    return
                time.sleep(_POLL_S)
                continue
            now = time.monotonic()
            if now >= next_state_check:
                next_state_check = now + 0.1
                self._note_bus_state()
            if msg is None:
                continue
            with self._lock:
                line = self.engine.encode_frame(msg)
                if line is None:
                    continue
                if not self.port_open:
                    self.dropped_port_closed += 1
                    continue
                if len(self._out) + len(line) > self.buffer_bytes:
                    self.engine.note_rx_overflow()
                    continue
                self._out += line
            self._wake()

    def _note_bus_state(self) -> None:
        tec = getattr(self.bus, "tec", None)
        rec = getattr(self.bus, "rec", None)
        if tec is None or rec is None:
            return
        worst = max(int(tec), int(rec))
        with self._lock:
            self.engine.note_bus_state(error_warning=worst >= 96, error_passive=worst >= 128)


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, but got {text!r}")
    lowered = value.lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            pass
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-i", "--interface", default="socketcand",
                        help="python-can interface of the bus (default socketcand: the hub of `z10 sim`)")
    parser.add_argument("-c", "--channel", default="pt", help="channel of the bus (default pt)")
    parser.add_argument("--sim-port", type=int, default=29536,
                        help="port of `z10 sim` on 127.0.0.1 for -i socketcand (default 29536)")
    parser.add_argument("-b", "--bitrate", type=int, default=500_000, help="bus bit rate (default 500000)")
    parser.add_argument("--data-bitrate", type=int, help="CAN FD data bit rate (implies --fd)")
    parser.add_argument("--fd", action="store_true", help="the bus is CAN FD")
    parser.add_argument("-o", "--bus-option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                        help="extra can.Bus argument (repeatable), e.g. -o host=127.0.0.1 -o port=29536")
    parser.add_argument("--power-on-bitrate", type=int, default=None,
                        help="bit rate the adapter starts with (default: none, the host sends S/s first)")
    parser.add_argument("--send-timeout", type=float, default=1.0, help="seconds a frame may wait for the bus (default 1)")
    parser.add_argument("--buffer-kib", type=int, default=64, help="frames kept for a host that does not read (default 64 KiB)")
    parser.add_argument("--link", help="also make this symlink to the pty (removed on exit)")
    args = parser.parse_args(argv)

    kwargs: dict[str, Any] = {"interface": args.interface, "channel": args.channel, "bitrate": args.bitrate}
    if args.fd or args.data_bitrate:
        kwargs["fd"] = True
        if args.data_bitrate:
            kwargs["data_bitrate"] = args.data_bitrate
    kwargs.update(dict(args.bus_option))
    if args.interface == "socketcand":
        kwargs.setdefault("host", "127.0.0.1")
        kwargs.setdefault("port", args.sim_port)
        # python-can's client retries for 10 s, logging every attempt: ask once first.
        try:
            socket.create_connection((kwargs["host"], kwargs["port"]), timeout=2.0).close()
        except OSError as err:
            print(f"error: no socketcand server at {kwargs['host']}:{kwargs['port']} ({err.strerror or err}); "
                  "expected `z10 sim` running there", file=sys.stderr)
            return 2
    try:
        bus = can.Bus(**kwargs)
    except Exception as err:  # one line, whatever the interface raises
        print(f"error: cannot open the bus ({', '.join(f'{k}={v}' for k, v in kwargs.items())}): {err}", file=sys.stderr)
        return 2
    emulator = SlcanEmulator(bus, bus_bitrate=args.bitrate, bitrate=args.power_on_bitrate,
                             send_timeout_s=args.send_timeout, buffer_bytes=args.buffer_kib * 1024,
                             link=args.link, own_bus=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    emulator.start()
    where = f" (link {args.link})" if args.link else ""
    print(f"slcan emulator: {emulator.path}{where} <-> {args.interface} {args.channel} at {args.bitrate} bit/s")
    print(f'attach: can.Bus(interface="slcan", channel="{emulator.path}", bitrate={args.bitrate}, sleep_after_open=0)',
          flush=True)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        emulator.shutdown()
    print(f"slcan emulator: stopped; {emulator.summary()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
