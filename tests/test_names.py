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


def public_definitions() -> dict[str, list[str]]:
    """Public top-level function and class names -> the modules that define them."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                if node.name in COMMAND_INTERFACE and module.startswith("gammaride.commands."):
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
    assert len(defs) > 300
