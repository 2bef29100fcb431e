"""Every third-party package countdb imports is declared in pyproject.toml's [project] dependencies: the
test environment also holds the test and benchmark packages, so a runtime import they happen to install
(numpy once) works in every test and fails at start-up on a user's fresh install."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {_canonical(re.match(r"[A-Za-z0-9._-]+", requirement).group()) for requirement in project["dependencies"]}


def _imported_top_level_modules() -> dict[str, str]:
    """Top-level module -> the first countdb file importing it, for every absolute import in countdb."""
    found: dict[str, str] = {}
    for path in sorted((REPO / "countdb").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.partition(".")[0], str(path.relative_to(REPO)))
    return found


def test_every_third_party_package_countdb_imports_is_a_declared_dependency():
    declared = _declared()
    distributions = packages_distributions()
    undeclared = []
    for module, where in _imported_top_level_modules().items():
        if module in sys.stdlib_module_names or module == "countdb":
            continue
        providers = {_canonical(name) for name in distributions.get(module, [])}
        if not providers & declared:
            undeclared.append(f"{module} (imported by {where}; installed by {sorted(providers) or 'nothing'})")
    assert not undeclared, "imported at run time but not in pyproject.toml's dependencies: " + "; ".join(undeclared)
