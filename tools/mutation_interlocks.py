"""Mutation testing (mutmut 3) of the interlock module ``vehicle_io/control/_kernels.py``.

Why a workspace instead of a plain ``mutmut run`` at the repository root: mutmut 3 never
mutates a decorated function (``file_mutation.py``: "ignore decorated functions", only
``@staticmethod``/``@classmethod`` are exempt), and every kernel function carries
``@njit(...)``, so a plain run would only mutate the undecorated ``warm_up``. Numba could
not compile mutmut's trampolines anyway. The tests run with ``NUMBA_DISABLE_JIT=1``, where
``njit(...)`` returns the function unchanged, so this tool builds a workspace whose copy of
``_kernels.py`` has exactly the ``@njit(...)`` lines removed (the same pure-Python code the
tests run under ``NUMBA_DISABLE_JIT=1``), writes the ``[tool.mutmut]`` configuration there
and runs mutmut in it. The repository, its numba cache and its ``pyproject.toml`` are not
touched; mutmut's ``mutants/`` directory lives inside the workspace (default
``build/mutation-interlocks/``, ignored by git through ``build/``).

The interlock functions are mutated (``step`` and the helpers it calls); ``run_steps`` and
``warm_up`` (benchmark loop, JIT warm-up) are not interlock logic and are not run. A full
run is ~2,200 mutants; ``--sample N`` runs a deterministic, evenly spaced subset so a run fits
a time budget. Results are cached in the workspace: a later run (a larger sample, new tests)
only runs the mutants not killed yet (``--recheck`` reruns all selected).

    python tools/mutation_interlocks.py --sample 300 --max-children 1
    python tools/mutation_interlocks.py --report-only      # counts and survivors of the last run

Prints killed / survived / timeout / other counts of the selected mutants and the diff of
every survivor. Exit code 0 when mutmut ran (survivors are a finding, not a tool failure),
1 on a tool error (message on one line), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import collections
import difflib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNEL = Path("vehicle_io/control/_kernels.py")
MODULE = "vehicle_io.control._kernels"
TESTS = Path("tests/vehicle_io/control")
DECORATOR = '@njit(cache=True, error_model="numpy")\n'
# Functions of the interlock logic; run_steps / warm_up are the benchmark loop and JIT warm-up.
INTERLOCK_FUNCTIONS = ("step", "steer_rate_limit_degps", "_interp4", "_level", "_flag", "_clamp")

# Tests that start a fresh interpreter import the repository's (unmutated) kernel, so they
# cannot see a mutant and only cost time; the docs test reads docs/, which is not copied.
# Not copied at all: test_interlock_mutations.py edits the kernel's source text, which under
# mutmut is the generated trampoline module, not the kernel.
NOT_COPIED = TESTS / "test_interlock_mutations.py"
DESELECT = (
    "tests/vehicle_io/control/test_control_loop.py::test_docs_table_matches_the_code",
    "tests/vehicle_io/control/test_control_loop.py::test_kernel_same_with_and_without_jit",
    "tests/vehicle_io/control/test_control_loop.py::test_importing_control_does_not_import_numba",
)

PYPROJECT = """\
# Written by tools/mutation_interlocks.py: mutation testing of the control kernel.
[tool.mutmut]
source_paths = ["vehicle_io"]
only_mutate = ["vehicle_io/control/_kernels.py"]
pytest_add_cli_args_test_selection = [
    "tests/vehicle_io/control",
{deselect}
]
pytest_add_cli_args = ["-p", "no:cacheprovider"]
also_copy = ["conftest.py", "dbc"]

[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "--strict-markers"
markers = [
    "slow: long-running test (still part of the default suite)",
    "hardware: needs real CAN hardware or a kernel vcan interface",
]
"""

CONFTEST = '''\
"""Written by tools/mutation_interlocks.py: hypothesis settings of the mutation runs.

Derandomized (the verdict of a mutant must not depend on luck), no example database and no
shrinking: a failing example already kills the mutant; shrinking it only costs time.
"""

from hypothesis import Phase, settings

settings.register_profile(
    "mutation", derandomize=True, database=None, phases=[Phase.explicit, Phase.generate], print_blob=False
)
settings.load_profile("mutation")
'''


class ToolError(Exception):
    """A step of the tool failed; the message is printed as one line."""


def strip_njit(source: str) -> str:
    """The kernel source without its ``@njit(...)`` lines (what NUMBA_DISABLE_JIT=1 runs)."""
    n_dec = source.count(DECORATOR)
    n_njit = source.count("@njit")
    if n_dec == 0 or n_dec != n_njit:
        raise ToolError(f"{KERNEL}: expected every @njit to read {DECORATOR.strip()!r}, but found {n_dec} of {n_njit}")
    stripped = source.replace(DECORATOR, "")
    if any(line.startswith("@") for line in stripped.splitlines()):
        raise ToolError(f"{KERNEL}: expected no other decorator, but one is left after removing @njit")
    return stripped


def _write_if_changed(path: Path, text: str) -> None:
    # Unchanged files keep their mtime, so mutmut keeps its cached results for them.
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _sync_tree(src: Path, dst: Path, skip: Path | None = None) -> None:
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if "__pycache__" in rel.parts or path.suffix in (".pyc", ".nbi", ".nbc") or path == skip:
            continue
        target = dst / rel
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif not target.exists() or target.read_bytes() != path.read_bytes():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def prepare_workspace(work: Path) -> None:
    """Copy the package and the control tests into ``work`` with the njit-free kernel."""
    # The kernel is written below (njit-free) only when it changed: a fresh mtime makes mutmut
    # regenerate every mutant, which takes minutes.
    _sync_tree(ROOT / "vehicle_io", work / "vehicle_io", skip=ROOT / KERNEL)
    _sync_tree(ROOT / TESTS, work / TESTS, skip=ROOT / NOT_COPIED)
    for stale in (work / NOT_COPIED, work / "mutants" / NOT_COPIED):
        stale.unlink(missing_ok=True)
    _sync_tree(ROOT / "dbc", work / "dbc")  # the package finds its DBC files next to itself
    _write_if_changed(work / KERNEL, strip_njit((ROOT / KERNEL).read_text(encoding="utf-8")))
    deselect = "\n".join(f'    "--deselect", "{t}",' for t in DESELECT)
    _write_if_changed(work / "pyproject.toml", PYPROJECT.replace("{deselect}", deselect))
    _write_if_changed(work / "conftest.py", CONFTEST)


def mutant_names(work: Path) -> list[str]:
    """Every mutant name of the kernel, in source order, generating the mutants if needed.

    Generation is mutmut's own (``create_file_mutants``, what ``mutmut run`` calls first); it
    takes minutes for this kernel, and ``mutmut run`` reuses its output while the workspace
    kernel is older than the mutated file.
    """
    mutated = work / "mutants" / KERNEL
    if not mutated.exists() or mutated.stat().st_mtime <= (work / KERNEL).stat().st_mtime:
        print(f"generating mutants of {KERNEL} (takes a few minutes)", flush=True)
        cwd = os.getcwd()
        os.chdir(work)  # mutmut reads its configuration (even on import) and writes mutants/ here
        try:
            from mutmut.__main__ import create_file_mutants
            from mutmut.configuration import reset_config

            reset_config()
            result = create_file_mutants(KERNEL)
        finally:
            os.chdir(cwd)
        if result.error is not None:
            raise ToolError(f"mutmut could not mutate {KERNEL}: {result.error}")
    names = list(load_results(work))
    return sorted(names, key=lambda n: (INTERLOCK_FUNCTIONS.index(function_of(n))
                                        if function_of(n) in INTERLOCK_FUNCTIONS else len(INTERLOCK_FUNCTIONS),
                                        int(n.rsplit("_", 1)[1])))


def function_of(name: str) -> str:
    # vehicle_io.control._kernels.x_step__mutmut_12 -> step
    return name.rsplit(".", 1)[1][2:].rsplit("__mutmut_", 1)[0]


def select(names: list[str], sample: int | None) -> list[str]:
    chosen = [n for n in names if function_of(n) in INTERLOCK_FUNCTIONS]
    if sample is None or sample >= len(chosen):
        return chosen
    # Evenly spaced over the source order, so every part of the kernel is represented.
    return [chosen[(i * len(chosen)) // sample] for i in range(sample)]


def run_mutmut(work: Path, names: list[str], max_children: int) -> int:
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # let the compiled mutants module be cached
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children), *names]
    return subprocess.run(cmd, cwd=work, env=env, check=False).returncode


def load_results(work: Path) -> dict[str, int | None]:
    meta = work / "mutants" / (str(KERNEL) + ".meta")
    if not meta.exists():
        raise ToolError(f"{meta}: expected mutmut results, but the file does not exist (run without --report-only)")
    return json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]


def _function_sources(work: Path, wanted: set[str]) -> dict[str, list[str]]:
    # The mutated module holds every mutant as its own top-level function (tens of MB), so
    # scan it once instead of ``mutmut show`` per mutant (which parses the whole file).
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    with open(work / "mutants" / KERNEL, encoding="utf-8") as f:
        for line in f:
            if line.startswith("def "):
                name = line[4:].split("(", 1)[0]
                current = found.setdefault(name, []) if name in wanted else None
                if current is not None:
                    current.append(line)
            elif current is not None:
                if line.strip() and not line[0].isspace():
                    current = None
                else:
                    current.append(line)
    return found


def diffs(work: Path, names: list[str]) -> dict[str, str]:
    """Unified diff (original -> mutant) of each mutant, named like ``mutmut show``."""
    local = {n: n.rsplit(".", 1)[1] for n in names}
    origs = {f"x_{function_of(n)}__mutmut_orig" for n in names}
    src = _function_sources(work, set(local.values()) | origs)
    out = {}
    for name, fn in local.items():
        orig = src.get(f"x_{function_of(name)}__mutmut_orig", [])
        mutant = src.get(fn, [])
        lines = difflib.unified_diff([l.replace("x_" + function_of(name) + "__mutmut_orig", function_of(name))
                                      for l in orig],
                                     [l.replace(fn, function_of(name)) for l in mutant],
                                     fromfile=str(KERNEL), tofile=str(KERNEL), n=1)
        out[name] = "".join(lines).rstrip()
    return out


def report(work: Path, selected: list[str], total: int) -> dict[str, list[str]]:
    from mutmut.stats import status_by_exit_code

    codes = load_results(work)
    by_status: dict[str, list[str]] = collections.defaultdict(list)
    for name in selected:
        by_status[status_by_exit_code[codes.get(name)]].append(name)
    per_function = collections.Counter(function_of(n) for n in selected)
    print(f"mutants generated for {KERNEL}: {total}; selected (interlock functions): {len(selected)} "
          f"({', '.join(f'{f} {c}' for f, c in per_function.most_common())})")
    order = ["killed", "survived", "timeout", "suspicious", "no tests", "not checked", "segfault", "skipped"]
    counts = {s: len(by_status.get(s, [])) for s in order}
    counts.update({s: len(v) for s, v in by_status.items() if s not in counts})
    print(" ".join(f"{s.replace(' ', '_')}={n}" for s, n in counts.items()))
    checked = sum(n for s, n in counts.items() if s != "not checked")
    if checked:
        print(f"mutation score: {counts['killed'] / checked:.1%} of {checked} checked "
              f"(killed / (killed + survived + timeout + other))")
    shown = [n for s in ("survived", "timeout", "suspicious", "no tests", "segfault") for n in by_status.get(s, [])]
    texts = diffs(work, shown) if shown else {}
    for status in ("survived", "timeout", "suspicious", "no tests", "segfault"):
        for name in by_status.get(status, []):
            print(f"\n# {status}: {name}")
            print(texts[name])
    return by_status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "mutation-interlocks",
                        help="workspace of the run (mutmut's mutants/ goes inside)")
    parser.add_argument("--sample", type=int, default=None,
                        help="run this many evenly spaced mutants of the interlock functions (default: all)")
    parser.add_argument("--max-children", type=int, default=1, help="parallel mutmut workers (default 1)")
    parser.add_argument("--fresh", action="store_true", help="delete the workspace (and mutmut's cache) first")
    parser.add_argument("--report-only", action="store_true", help="print the results of the last run")
    parser.add_argument("--recheck", action="store_true", help="also rerun mutants already killed")
    args = parser.parse_args(argv)
    if args.sample is not None and args.sample < 1:
        parser.error(f"--sample: expected a positive count, but got {args.sample}")
    if args.max_children < 1:
        parser.error(f"--max-children: expected a positive count, but got {args.max_children}")
    try:
        work = args.workdir.resolve()
        if args.fresh and work.exists():
            shutil.rmtree(work)
        prepare_workspace(work)
        names = mutant_names(work)
        selected = select(names, args.sample)
        if not args.report_only:
            from mutmut.stats import status_by_exit_code

            codes = load_results(work)
            # mutmut retests every mutant named on its command line; a killed mutant stays killed
            # while tests are only added, so name only the ones still open (unless --recheck).
            todo = [n for n in selected if args.recheck or status_by_exit_code[codes.get(n)] != "killed"]
            print(f"{len(selected) - len(todo)} selected mutants already killed, {len(todo)} to run", flush=True)
            if todo:
                start = time.monotonic()
                code = run_mutmut(work, todo, args.max_children)
                print(f"\nmutmut run: exit code {code}, {time.monotonic() - start:.0f} s wall, "
                      f"{len(todo)} mutants, --max-children {args.max_children}")
                if code != 0:
                    raise ToolError(f"mutmut run: expected exit code 0, but got {code} (see its output above)")
        report(work, selected, len(names))
    except (ToolError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
