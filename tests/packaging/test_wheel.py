"""The bundled DBCs and sample data are found from an installed wheel, not only a checkout."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    (found,) = out.glob("z10_hil-*.whl")
    return found


def test_wheel_installs_and_finds_its_dbcs(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    target = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip())
    # Dependencies come from this interpreter's site-packages (a plain path, so the
    # checkout's editable-install hook there is not processed); the project from the wheel.
    deps = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if Path(p).is_dir()]
    (target / "zz_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, text=True)
    code = (
        "import json, vehicle_io, vehicle_io.dbc as d\n"
        "db = vehicle_io.load_database()\n"
        "print(json.dumps({'pkg': vehicle_io.__file__, 'dir': str(d.bundled_dbc_dir()),"
        " 'buses': sorted({m.bus_name for m in db.messages}), 'n': len(db.messages)}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    result = subprocess.run([str(python), "-c", code], cwd=tmp_path, env=env, check=True,
                            capture_output=True, text=True)
    info = json.loads(result.stdout)
    assert Path(info["pkg"]).is_relative_to(target), info
    assert Path(info["dir"]).is_relative_to(target), info
    assert info["buses"] == ["ads", "body", "pt"] and info["n"] > 20
    lint = subprocess.run([str(env_dir / "bin" / "python"), "-m", "vehicle_io", "dbc", "check"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
