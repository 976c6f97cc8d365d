"""Shared fixtures of the CLI tests: the new subcommands registered, golden-file comparison.

Golden files live in tests/vehicle_io/cli/golden/. To regenerate them after an intended
change of output, run::

    Z10_REGEN_GOLDEN=1 pytest tests/vehicle_io/cli

and review the diff (``git diff tests/vehicle_io/cli/golden``) before committing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from vehicle_io import cli

GOLDEN_DIR = Path(__file__).parent / "golden"
NEW_COMMANDS = ("list", "dump", "send", "log", "replay", "convert", "plot", "monitor")


def mask(text: str, *patterns: str) -> str:
    """Replace what varies between runs (times, counts) by a placeholder."""
    for pattern in patterns:
        text = re.sub(pattern, "<*>", text)
    return text


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    def check(name: str, text: str) -> None:
        path = GOLDEN_DIR / f"{name}.txt"
        if os.environ.get("Z10_REGEN_GOLDEN"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        assert path.exists(), f"{path} missing: run with Z10_REGEN_GOLDEN=1 to create it"
        assert text == path.read_text(encoding="utf-8"), f"output differs from {path}"

    return check


#: Runs the CLI as `z10` would, in a subprocess, with the new commands registered.
SUBPROCESS_MAIN = (
    "import sys\nfrom vehicle_io import cli\n"
    f"for n in {NEW_COMMANDS!r}:\n    cli.COMMANDS.setdefault(n, 'vehicle_io.cli.' + n + '_cmd')\n"
    "sys.exit(cli.main())\n"
)
