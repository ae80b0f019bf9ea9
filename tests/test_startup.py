"""Start-up: ``--version`` and ``COMMAND --help`` load none of the heavy libraries.

Each command line runs in a fresh interpreter and reports which modules it imported; the
time it takes is measured in ``benchmarks/startup.py``, not here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gammaride.cli import COMMANDS

HEAVY = {"pandas", "numpy", "duckdb", "statsmodels", "sklearn", "scipy", "matplotlib",
         "alpaca", "exchange_calendars", "jinja2", "tqdm", "requests"}

PROBE = """
import json, sys
from gammaride.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def imported_by(*argv: str) -> set[str]:
    """Every module a fresh ``gammaride ARGV`` has imported by the time it exits."""
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                          check=True, timeout=60)
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("argv", [["--version"], ["--help"], *([name, "--help"] for name, _, _ in COMMANDS)],
                         ids=" ".join)
def test_help_and_version_import_no_heavy_library(argv):
    loaded = {name.split(".")[0] for name in imported_by(*argv)}
    assert "gammaride" in loaded
    assert not loaded & HEAVY, f"gammaride {' '.join(argv)} imported {sorted(loaded & HEAVY)}"


def test_a_command_help_imports_only_its_own_command_module():
    commands = {m for m in imported_by("report", "--help") if m.startswith("gammaride.commands.")}
    assert commands == {"gammaride.commands._common", "gammaride.commands.report"}


def test_the_script_and_python_m_end_through_run_with_the_commands_exit_code(tmp_path):
    """``gammaride.cli.run`` ends every command (it spares the interpreter's final collection):
    the installed script and ``python -m gammaride`` both go through it, and the exit code
    and the one-line error are still the command's."""
    from importlib.metadata import entry_points

    assert [ep.value for ep in entry_points(group="console_scripts", name="gammaride")] == ["gammaride.cli:run"]
    missing = tmp_path / "missing.duckdb"
    done = subprocess.run([sys.executable, "-m", "gammaride", "journal", "--journal", str(missing)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 4
    assert done.stderr.splitlines() == [f"gammaride journal: error: journal {missing} does not exist; run "
                                        "'gammaride demo' or 'gammaride replay' first, or pass --journal PATH"]
    assert not missing.exists()
