#!/usr/bin/env python3
"""Write the bundled sample drive: synthetic Z10 traffic with a few deliberate faults.

    python tools/make_sample_log.py [--duration 10] [--seed 7] [--out vehicle_io/data/z10_sample_drive.log.gz]

The faults show what the gateway counts and rejects: one BMS_Status frame with a corrupted
CRC, an ADC_Command frame repeated (same alive counter), a truncated VCU_Status, a frame
with an id no Z10 DBC defines, and one unreadable line. Deterministic for a seed.
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

from hil import traffic
from vehicle_io import load_database

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "vehicle_io" / "data" / "z10_sample_drive.log.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of traffic")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    db = load_database()
    tr = traffic.generate(db, args.duration, seed=args.seed, start_s=1700000000.0)
    lines = tr.candump_lines()
    id_of = {m.name: m.frame_id for m in db.messages}

    def nth_index(name: str, n: int) -> int:
        hits = [i for i in range(len(tr)) if int(tr.ids[i]) == id_of[name]]
        return hits[n]

    # A CRC error: flip one payload bit, keep the old CRC.
    i = nth_index("BMS_Status", 200)
    line = lines[i]
    head, payload = line.rsplit("#", 1)
    flipped = bytes.fromhex(payload)
    flipped = flipped[:3] + bytes([flipped[3] ^ 0x10]) + flipped[4:]
    lines[i] = f"{head}#{flipped.hex().upper()}"
    # A repeated frame: the same ADC_Command again 0.2 ms later (REPEATED counter).
    j = nth_index("ADC_Command", 600)
    ts_text, rest = lines[j].split(" ", 1)
    ts = float(ts_text.strip("()")) + 0.0002
    lines.insert(j + 1, f"({ts:.6f}) {rest}")
    # A truncated frame and an unknown id.
    k = nth_index("VCU_Status", 700)
    head, payload = lines[k].rsplit("#", 1)
    lines.insert(k + 1, f"({float(head.split(')')[0][1:]) + 0.0001:.6f}) pt 0C0#{payload[:8]}")
    lines.insert(k + 2, f"({float(head.split(')')[0][1:]) + 0.0002:.6f}) pt 3FF#0011223344556677")
    lines.insert(k + 3, "(1700000007.000000) pt 0C0#NOT-HEX")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 keeps the file byte-identical between runs.
    with gzip.GzipFile(args.out, "wb", mtime=0) as raw:
        raw.write(("\n".join(lines) + "\n").encode("ascii"))
    print(f"wrote {len(lines)} lines ({len(tr)} frames, {args.duration:g} s) to {args.out}")


if __name__ == "__main__":
    main()
