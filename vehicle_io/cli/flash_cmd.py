"""``z10 flash``: program an ECU over UDS with a signed image; ``z10 flash sign`` signs one.

::

    z10 flash sign --ecu bms fw.hex --key ~/keys/z10-release.pem   # writes fw.hex.sig
    z10 flash --ecu bms fw.hex                                     # uses fw.hex.sig
    z10 flash --ecu vcu app.bin --base-address 0x0 --dev-key       # simulator: sign on the fly
    z10 flash --ecu bms fw.s19 --bench van.toml --arm pt           # a real van

Before anything is sent the command listens to the pt bus (~0.5 s) and refuses unless the van
stands still in P with the parking brake applied, the drive system is not ready and the SOC is
at least ``--min-soc`` (docs/flashing.md). Flashing transmits, so on any bus that is not the
simulator's the ECU's bus must be armed (``--arm NAME``).

Exit codes: 0 flashed (the ECU runs the new image); 1 the flash failed or the ECU refused the
image (it keeps its previous image: run the same command again); 2 usage or input error (bad
image, missing signature, bus not armed); 3 a pre-flight interlock refused (nothing was sent).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vehicle_io.cli.busopts import add_bus_arguments, bus_specs

HELP = "flash an ECU over UDS (signed Intel HEX, S-record or raw binary); `z10 flash sign` signs an image"

EXIT_OK = 0
EXIT_FLASH_FAILED = 1
EXIT_USAGE = 2
EXIT_PREFLIGHT = 3

#: the bus whose broadcast frames the pre-flight interlocks read
PREFLIGHT_BUS = "pt"


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an address such as 0x8000, but got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("words", nargs="+", metavar="[sign] IMAGE",
                        help="the image to flash; `sign IMAGE` writes its signature file instead")
    parser.add_argument("--ecu", required=True, help="ECU name: vcu, bms or cbc")
    parser.add_argument("--format", choices=("ihex", "srec", "binary"),
                        help="image format (default: from the extension: .hex, .s19/.srec, .bin)")
    parser.add_argument("--base-address", type=_int, metavar="ADDR", help="load address of a raw binary")
    sig = parser.add_argument_group("signatures (docs/flashing.md)")
    sig.add_argument("--signature", metavar="FILE", help="signature file (default IMAGE.sig)")
    sig.add_argument("--key", metavar="FILE",
                     help="sign: Ed25519 private key (PEM or 32 raw bytes; default $Z10_FLASH_SIGNING_KEY)")
    sig.add_argument("--dev-key", action="store_true",
                     help="use the public DEVELOPMENT key (simulator only): sign, or sign on the fly when flashing")
    sig.add_argument("--unsigned", action="store_true",
                     help="send no signature (only for development ECUs without a signature check)")
    sig.add_argument("-o", "--output", metavar="FILE", help="sign: where to write the signature (default IMAGE.sig)")
    pre = parser.add_argument_group("pre-flight interlocks")
    pre.add_argument("--min-soc", type=float, default=30.0, metavar="PCT",
                     help="lowest state of charge to flash at (default 30 %%)")
    pre.add_argument("--listen", type=float, default=0.5, metavar="S",
                     help="seconds to read the van's frames before deciding (default 0.5)")
    parser.add_argument("--read-back", action="store_true",
                        help="after the reset, read the image back (ReadMemoryByAddress) and compare")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each answer (default 2)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    add_bus_arguments(parser)


def _signature_path(args: argparse.Namespace, image_path: str) -> Path:
    return Path(args.signature or args.output or f"{image_path}.sig")


def _load(args: argparse.Namespace, image_path: str) -> Any:
    from vehicle_io.flash.image import load_image

    return load_image(image_path, fmt=args.format, base_address=args.base_address)


def _sign(args: argparse.Namespace, image_path: str) -> int:
    from vehicle_io.diag import ecu_by_name
    from vehicle_io.flash import signing

    ecu = ecu_by_name(args.ecu)
    image = _load(args, image_path)
    if args.dev_key:
        if args.key:
            raise ValueError("give either --key FILE or --dev-key, not both")
        key = signing.dev_private_key()
    else:
        key_path = Path(args.key) if args.key else signing.key_from_environment()
        if key_path is None:
            raise signing.SigningError(f"no signing key: expected --key FILE or ${signing.KEY_ENV}, but got neither "
                                       "(--dev-key signs for the simulator only)")
        key = signing.load_private_key(key_path)
    result = signing.sign_image(key, ecu.name, image.address, image.data)
    out = Path(args.output or f"{image_path}.sig")
    out.write_text(result.to_json(), encoding="utf-8")
    summary = {"signature": str(out), "ecu": ecu.name, "address": f"0x{image.address:08X}", "length": image.length,
               "public_key": result.public_key, "development_key": bool(args.dev_key)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        note = "  (DEVELOPMENT key: the simulator only)" if args.dev_key else ""
        print(f"wrote {out}: {ecu.name} image 0x{image.address:08X} + {image.length} bytes, "
              f"public key {result.public_key[:16]}...{note}")
    return EXIT_OK


def _signature_for(args: argparse.Namespace, image_path: str, image: Any, ecu: str, simulated: bool) -> bytes | None:
    from vehicle_io.flash import signing

    chosen = [flag for flag, on in (("--unsigned", args.unsigned), ("--dev-key", args.dev_key),
                                     ("--signature", args.signature is not None)) if on]
    if len(chosen) > 1:
        raise ValueError(f"give one of --unsigned, --dev-key, --signature, but got {' and '.join(chosen)}")
    if args.unsigned:
        return None
    if args.dev_key:
        if not simulated:
            raise signing.SigningError("--dev-key signs with the public development key: the simulator only, "
                                       "but the ECU's bus is not the simulator's; sign with `z10 flash sign --key`")
        return signing.sign_image(signing.dev_private_key(), ecu, image.address, image.data).signature
    path = _signature_path(args, image_path)
    if not path.exists():
        raise signing.SigningError(f"{path}: expected a signature file, but there is none; "
                                   f"sign with `z10 flash sign --ecu {ecu} {image_path} --key FILE`")
    record = signing.SignatureFile.read(path)
    record.check_matches(ecu, image.address, image.data, str(path))
    return record.signature


def _open(spec: Any, transmit: bool, args: argparse.Namespace) -> Any:
    import can

    from vehicle_io.bench import open_bus
    from vehicle_io.errors import TransmitBlocked

    if transmit and not spec.is_simulated and spec.name not in args.arm:
        raise TransmitBlocked(f"bus {spec.name!r} ({spec.interface}:{spec.channel}) is not armed: "
                              f"flashing transmits; add --arm {spec.name}")
    bus = open_bus(spec)
    if transmit and not spec.is_simulated:
        try:
            bus.state = can.BusState.ACTIVE  # armed: leave the listen-only state open_bus chose
        except (NotImplementedError, can.CanError, AttributeError):
            pass
    return bus


class _Progress:
    """A rich progress bar with bytes/s on stderr (only on a terminal and without --quiet)."""

    def __init__(self, enabled: bool, label: str) -> None:
        self._bar: Any = None
        self._task: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._bar = Progress(TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                 TimeRemainingColumn(), console=Console(file=sys.stderr), transient=False)
            self._bar.start()

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            return
        if self._task is None:
            self._task = self._bar.add_task("flash", total=total)
        self._bar.update(self._task, completed=done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def run(args: argparse.Namespace) -> int:
    words = list(args.words)
    if words[0] == "sign":
        if len(words) != 2:
            raise ValueError(f"expected `z10 flash sign IMAGE`, but got {len(words) - 1} image arguments")
        return _sign(args, words[1])
    if len(words) != 1:
        raise ValueError(f"expected one IMAGE (or `sign IMAGE`), but got {' '.join(words)}")
    return _flash(args, words[0])


def _flash(args: argparse.Namespace, image_path: str) -> int:
    from vehicle_io import diag
    from vehicle_io.bench import close_buses
    from vehicle_io.flash import preflight
    from vehicle_io.flash.sequence import Flasher, FlashError

    ecu = diag.ecu_by_name(args.ecu)
    image = _load(args, image_path)
    specs = bus_specs(args)
    unknown = sorted(set(args.arm) - set(specs))
    if unknown:
        raise ValueError(f"--arm: expected bus names among {sorted(specs)}, but got {unknown}")
    spec = specs.get(ecu.bus)
    if spec is None:
        raise ValueError(f"{ecu.name} sits on bus {ecu.bus!r}, but the buses given are {sorted(specs)}")
    signature = _signature_for(args, image_path, image, ecu.name, spec.is_simulated)
    if not args.min_soc >= 0:
        raise ValueError(f"--min-soc: expected a percentage >= 0, but got {args.min_soc}")
    pt_spec = specs.get(PREFLIGHT_BUS)
    opened: dict[str, Any] = {}
    try:
        # Arm check first: nothing is opened for a flash that may not transmit.
        opened[spec.name] = _open(spec, True, args)
        if pt_spec is None:
            result = preflight.evaluate({}, min_soc_pct=args.min_soc)
            reason = (f"pre-flight refused: the interlocks are read on the {PREFLIGHT_BUS} bus, "
                      f"but the buses given are {sorted(specs)}")
        else:
            if pt_spec.name not in opened:
                opened[pt_spec.name] = _open(pt_spec, False, args)
            readings = preflight.read_van(opened[pt_spec.name], listen_s=args.listen)
            result = preflight.evaluate(readings, min_soc_pct=args.min_soc)
            reason = result.refusal()
        if not result.ok:
            if args.json:
                print(json.dumps({"ecu": ecu.name, "flashed": False, "preflight": result.as_dict(), "error": reason},
                                 indent=2))
            print(f"error: {reason}", file=sys.stderr)
            return EXIT_PREFLIGHT
        bus = opened[spec.name]
        progress = _Progress(sys.stderr.isatty() and not args.quiet and not args.json, f"{ecu.name}")
        try:
            with diag.open_client(bus, ecu, timeout_s=args.timeout, fd=spec.fd) as client:
                flasher = Flasher(client, ecu.name, progress=progress,
                                  functional=lambda payload: diag.send_functional(bus, payload, fd=spec.fd),
                                  max_block_length=65535 if spec.fd else 4095)
                report = flasher.flash(image, signature, read_back=args.read_back)
        except FlashError as err:
            progress.close()
            message = f"{err}; the ECU keeps its previous image: run the same command again"
            if args.json:
                print(json.dumps({"ecu": ecu.name, "flashed": False, "step": err.step,
                                  "nrc": None if err.code is None else f"0x{err.code:02X}", "error": message},
                                 indent=2))
            print(f"error: {message}", file=sys.stderr)
            return EXIT_FLASH_FAILED
        progress.close()
    finally:
        close_buses(opened.values())
    if args.json:
        print(json.dumps({"flashed": True, "preflight": result.as_dict(), **report.as_dict()}, indent=2))
    else:
        print(f"{ecu.name}: flashed {image.length} bytes at 0x{image.address:08X} (CRC-32 0x{image.crc32:08X}, "
              f"{'signed' if signature else 'unsigned'}), {report.blocks} blocks of {report.block_length} bytes, "
              f"{report.transfer_bytes_per_s / 1000:.1f} kB/s; ECU reset: it runs the new image"
              + ("; read-back identical" if report.read_back else ""))
    return EXIT_OK
