"""The z10 command's core: registry, help without heavy imports, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vehicle_io import cli


def test_every_registered_command_builds_its_parser() -> None:
    parser, modules = cli.build_parser()
    assert set(cli.COMMANDS) <= set(modules)
    for name, module in modules.items():
        assert module.HELP and "\n" not in module.HELP, name


def test_help_imports_no_numba_cantools_or_matplotlib() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from vehicle_io.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
        "import json; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numba', 'cantools', 'matplotlib', 'llvmlite', 'can'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == cli.EXIT_USAGE
    assert "COMMAND" in capsys.readouterr().out


def test_input_error_is_one_line(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.log"
    assert cli.main(["decode", str(missing)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "nope.log" in err[0]


def test_console_script_runs_as_subprocess() -> None:
    out = subprocess.run([sys.executable, "-m", "vehicle_io", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("z10 ")


def test_a_broken_plugin_is_listed_and_explains_itself(monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(cli.COMMANDS, "broken", "no_such_module_for_z10")
    assert cli.main(["dbc", "check"]) == 0  # other commands unaffected
    capsys.readouterr()
    assert cli.main(["broken"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err == "error: subcommand 'broken' is not available here: No module named 'no_such_module_for_z10'"


def test_unexpected_exception_is_one_line_and_exit_1(monkeypatch, capsys) -> None:
    """A bug in a command: one `error:` line naming the command, exit 1; --debug re-raises."""
    import vehicle_io.cli as cli
    from vehicle_io.cli import list_cmd

    def broken(args):
        raise AttributeError("'Thing' object has no attribute 'flush'")

    monkeypatch.setattr(list_cmd, "run", broken)
    assert cli.main(["list"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: internal error in `z10 list`") and "flush" in err
    import pytest

    with pytest.raises(AttributeError):
        cli.main(["--debug", "list"])
