"""Every import inside the package runs one way, from the commands down to the rules:

    __main__ -> cli -> commands -> replay, notebook, reports -> connection
             -> scanner, calibration, offline -> data, journal -> rules -> config
             -> keys, outputs -> errors, text

A module may import its own package and any lower layer, never a higher one or a peer
package of its own layer. Imports inside functions count: a lazy import is still a
dependency."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import gammaride

PACKAGE = Path(gammaride.__file__).parent

LAYERS: list[set[str]] = [
    {"gammaride", "errors", "text"},  # "gammaride" is the package's own __init__ (the version)
    {"keys", "outputs"},
    {"config"},
    {"rules"},
    {"data", "journal"},
    {"scanner", "calibration", "offline"},
    {"connection"},
    {"replay", "notebook", "reports"},
    {"commands"},
    {"cli"},
    {"__main__"},
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str:
    """``gammaride.rules.signals`` -> ``rules``; ``gammaride`` -> ``gammaride``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every gammaride import in ``path``, relative ones resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "gammaride":  # from gammaride import x: x may be a subpackage
                found += [(node.lineno, f"gammaride.{a.name}" if a.name in RANK else "gammaride")
                          for a in node.names]
            else:
                found.append((node.lineno, target))
    return [(line, mod) for line, mod in found if mod == "gammaride" or mod.startswith("gammaride.")]


def violations() -> list[str]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = unit_of(module_name(path))
        for line, target in imported_modules(path):
            there = unit_of(target)
            if there == here:
                continue
            if there not in RANK or here not in RANK:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {target} is in no layer")
            elif RANK[there] >= RANK[here]:
                way = "a peer" if RANK[there] == RANK[here] else "a higher layer"
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {here} imports {target}, {way}")
    return bad


def test_every_package_module_has_a_layer():
    units = {unit_of(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert units - set(RANK) == set()


def test_imports_run_from_commands_down_to_the_rules():
    assert violations() == []


def test_the_rules_import_nothing_but_config_errors_and_text():
    allowed = {"gammaride.config", "gammaride.errors", "gammaride.text"}
    for path in (PACKAGE / "rules").glob("*.py"):
        outside = {m for _, m in imported_modules(path) if not m.startswith("gammaride.rules")}
        assert outside <= allowed, path.name


def test_the_checker_catches_an_upward_import(tmp_path, monkeypatch):
    """The walk is real: a rule importing the scanner is reported with its line."""
    fake = tmp_path / "gammaride"
    (fake / "rules").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "rules" / "__init__.py").write_text("")
    (fake / "rules" / "bad.py").write_text("import os\n\n\ndef f():\n    from gammaride.scanner import loop\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert violations() == ["gammaride/rules/bad.py:5: rules imports gammaride.scanner, a higher layer"]
