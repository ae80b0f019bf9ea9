"""One name, one meaning: no two modules of the package define a public function or class
of the same name (an import of the one definition is not a definition)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import gammaride

PACKAGE = Path(gammaride.__file__).parent

# Every command module implements the same two-function interface that cli.py calls:
# one role under one name, not two meanings.
COMMAND_INTERFACE = {"add_arguments", "run"}
# The notebook's Block 5 is the one sizing rule with its inputs fetched from the broker: the
# same meaning under the name the notebook's seed gives it (it calls the rule, it is not a copy).
NOTEBOOK_FACADES = {"calculate_setup": "gammaride.notebook.blocks"}


def public_definitions() -> dict[str, list[str]]:
    """Public top-level function and class names -> the modules that define them."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                if node.name in COMMAND_INTERFACE and module.startswith("gammaride.commands."):
                    continue
                if NOTEBOOK_FACADES.get(node.name) == module:
                    continue
                found[node.name].append(module)
    return found


def test_no_public_function_or_class_name_is_defined_twice():
    repeated = {name: modules for name, modules in public_definitions().items() if len(modules) > 1}
    assert not repeated, "one name, several definitions (rename one, or import the other): " + "; ".join(
        f"{name} in {', '.join(modules)}" for name, modules in sorted(repeated.items()))


def test_the_walk_sees_the_definitions_it_judges():
    defs = public_definitions()
    assert defs["OfflineAlpaca"] == ["gammaride.offline.app"]
    assert defs["parse_occ"] == ["gammaride.rules.contracts"]
    assert defs["SimBroker"] == ["gammaride.offline.broker"]
    assert defs["calculate_setup"] == ["gammaride.rules.setup"]  # the notebook block is its facade
    assert len(defs) > 300


def test_every_rule_in_the_readme_names_the_function_that_implements_it():
    import importlib
    import re

    text = (PACKAGE.parent / "README.md").read_text()
    table = text[text.index("## The rules (exact)"):].split("\n\n")[1]
    rows = [line.split("|")[1:-1] for line in table.splitlines()[2:]]
    assert len(rows) >= 12 and all(len(cells) == 3 for cells in rows)
    for rule, _, implemented in rows:
        names = re.findall(r"`([\w.]+)`", implemented)
        assert names, f"rule {rule.strip()!r} names no function"
        for dotted in names:
            parts = dotted.split(".")
            for cut in range(len(parts) - 1, 0, -1):  # the longest importable module prefix
                try:
                    obj = importlib.import_module("gammaride." + ".".join(parts[:cut]))
                    break
                except ModuleNotFoundError:
                    continue
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
            assert callable(obj), f"{dotted} (rule {rule.strip()!r}) is not a function"
