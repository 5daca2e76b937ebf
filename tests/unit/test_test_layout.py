"""Test hygiene: no file under ``tests/`` imports a test module.

Helpers shared between test modules live in support modules (``tests/support.py``,
``tests/integration/*_support.py``, ``tests/unit/api_fakes.py``) or in fixtures in a
``conftest.py``; importing a ``test_*`` module runs its collection-time code twice and
ties one test file's helpers to another's tests.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _is_test_module(dotted: str) -> bool:
    return any(part.startswith("test_") for part in dotted.split("."))


def imports_of_test_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, module)`` for every import in ``tree`` that names a ``test_*`` module."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if _is_test_module(a.name)]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            if _is_test_module(base):
                found.append((node.lineno, base))
            else:  # ``from package import test_x`` imports the module test_x
                sep = "." if node.module else ""
                found += [
                    (node.lineno, f"{base}{sep}{a.name}")
                    for a in node.names
                    if a.name.startswith("test_")
                ]
    return found


def test_the_checker_sees_every_form_of_import() -> None:
    """The checker itself sees every way of importing a test module."""
    bad = [
        "import tests.integration.test_x",
        "from tests.integration.test_x import helper",
        "from tests.integration import test_x",
        "from .test_x import helper",
        "from . import test_x",
        "import test_fw as fw",
    ]
    good = [
        "import tests.support",
        "from tests.support import eventually",
        "from .api_support import running_api",
        "from . import api_fakes",
        "import pytest",
        "from testing import contest",
    ]
    for source in bad:
        assert imports_of_test_modules(ast.parse(source)), source
    for source in good:
        assert imports_of_test_modules(ast.parse(source)) == [], source


def test_no_test_file_imports_a_test_module() -> None:
    found = [
        f"{path.relative_to(TESTS.parent)}:{line}: {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, name in imports_of_test_modules(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert found == [], "move shared helpers to a *_support.py module or a fixture"
