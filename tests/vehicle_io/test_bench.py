"""Bench files: parsing, errors that name the problem, listen-only opening."""

from __future__ import annotations

import can
import pytest

from vehicle_io.bench import SIM_PORT, load_bench, open_buses, close_buses, simulated_bench, single_bus
from vehicle_io.errors import BusConfigError


def test_bench_file_round_trip(tmp_path) -> None:
    path = tmp_path / "bench.toml"
    path.write_text(
        '[bus.pt]\ninterface = "virtual"\nchannel = "bench-pt"\nbitrate = 500000\n'
        '[bus.ads]\ninterface = "virtual"\nchannel = "bench-ads"\nfd = true\n'
        'bitrate = 500000\ndata_bitrate = 2000000\n'
    )
    specs = load_bench(path)
    assert list(specs) == ["pt", "ads"]
    assert specs["ads"].kwargs() == {"interface": "virtual", "channel": "bench-ads", "bitrate": 500000,
                                     "fd": True, "data_bitrate": 2000000}
    buses = open_buses(specs)
    try:
        buses["pt"].send(can.Message(arbitration_id=1, data=b"\x01"))  # simulated: not passive
    finally:
        close_buses(buses.values())


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "at least one [bus.NAME]"),
        ("[bus.pt]\nchannel = 'x'\n", "'interface'"),
        ("[bus.pt]\ninterface = 'virtual'\nchannel = 'x'\nbitrate = -5\n", "positive integer 'bitrate'"),
        ("[bus.pt]\ninterface = 'virtual'\nchannel = 'x'\nfd = 'yes'\n", "true/false for 'fd'"),
        ("[bus.pt]\ninterface = 'udp_group'\nchannel = 'x'\n", "sends onto the network"),
        ("[bus.pt]\ninterface = 'socketcand'\nchannel = 'pt'\nhost = '10.0.0.7'\n", "loopback host"),
        ("[bus.pt\n", "not valid TOML"),
    ],
)
def test_bad_bench_files(tmp_path, text: str, fragment: str) -> None:
    path = tmp_path / "bench.toml"
    path.write_text(text)
    with pytest.raises(BusConfigError) as info:
        load_bench(path)
    assert fragment in str(info.value) and str(path) in str(info.value)


def test_missing_bench_file(tmp_path) -> None:
    with pytest.raises(BusConfigError, match="no such bench file"):
        load_bench(tmp_path / "absent.toml")


def test_simulated_bench_is_loopback_only() -> None:
    specs = simulated_bench()
    assert set(specs) == {"pt", "body", "ads"} and specs["ads"].fd
    assert all(s.options["host"] == "127.0.0.1" and s.options["port"] == SIM_PORT for s in specs.values())
    assert all(s.is_simulated for s in specs.values())
    with pytest.raises(BusConfigError, match="loopback"):
        simulated_bench(host="10.0.0.1")


def test_real_interfaces_are_not_simulated() -> None:
    assert not single_bus("pt", "socketcan", "can0")["pt"].is_simulated
    assert not single_bus("pt", "slcan", "/dev/ttyACM0")["pt"].is_simulated
    import can

    udp_backends = [name for name in can.interfaces.BACKENDS if name.startswith("udp_")]
    assert udp_backends  # python-can's UDP interface(s): every one of them is refused
    for interface in udp_backends:
        with pytest.raises(BusConfigError, match="sends onto the network"):
            single_bus("pt", interface, "x")
