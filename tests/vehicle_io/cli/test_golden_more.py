"""Golden output of the subcommands whose output is deterministic without a live bus:
`z10 dbc check`, `z10 gateway --replay` (on the log's own clock), `z10 hil list`."""

from __future__ import annotations

import json

from tests.vehicle_io.cli.conftest import NEW_COMMANDS, mask
from vehicle_io import cli
from vehicle_io.cli import main


def test_every_technician_command_is_registered() -> None:
    assert set(NEW_COMMANDS) | {"flash", "gateway", "diag", "dbc", "decode"} <= set(cli.COMMANDS)


def test_dbc_check_golden(capsys, golden) -> None:
    assert main(["dbc", "check"]) == 0
    golden("dbc_check", capsys.readouterr().out)


def test_gateway_replay_golden(capsys, golden) -> None:
    assert main(["gateway", "--replay", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    doc["source"].pop("wall_s", None)
    doc["source"]["replay"] = doc["source"]["replay"].rsplit("/", 1)[-1]  # the checkout's place varies
    golden("gateway_replay_json", json.dumps(doc, indent=1, sort_keys=True) + "\n")


def test_gateway_replay_table_golden(capsys, golden) -> None:
    assert main(["gateway", "--replay"]) == 0
    golden("gateway_replay_table", mask(capsys.readouterr().out, r'"wall_s": [0-9.]+', r'"replay": "[^"]*/'))


def test_hil_list_golden(capsys, golden) -> None:
    assert main(["hil", "list"]) == 0
    golden("hil_list", capsys.readouterr().out)
